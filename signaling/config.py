"""Hub settings: one frozen ``Config`` built from flags with ``SIGNALING_*`` fallbacks."""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .turn import TurnConfigError, TurnCredentials

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
LOG_LEVELS = ("debug", "info", "warning", "error")
# auto: lean unless transport.lean_mismatch() says the libraries moved, then stock.
TRANSPORTS = ("auto", "lean", "stock")
ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


class ConfigError(ValueError):
    """A setting has a value the hub cannot use; the message names the flag."""


MIN_TOKEN_CHARS = 16  # ~95 bits of printable ASCII: out of reach of online guessing


@dataclass(frozen=True)
class Config:
    """Every hub setting; ``docs/security.md`` lists the limits with their flags and codes."""

    host: str = "127.0.0.1"
    port: int = 8080
    offer_ttl: float = 600.0
    token: str | None = field(default=None, repr=False)
    ice_servers: tuple[dict[str, Any], ...] = ()
    log_level: str = "info"
    max_sdp_bytes: int = 65536
    max_candidates: int = 200
    max_rooms_per_socket: int = 8
    static_dir: Path = STATIC_DIR
    sweep_interval: float = 1.0
    lobby_interval: float = 0.5
    # Engine.IO heartbeat: a frozen peer is noticed within interval + timeout seconds.
    ping_interval: float = 12.0
    ping_timeout: float = 10.0
    # Flow control and resource caps at the edge (0 turns a per-address cap off).
    max_queued_bytes: int = 1 << 20
    send_timeout: float = 20.0
    request_timeout: float = 10.0
    max_connections_per_address: int = 256
    max_held_bytes: int = 256 << 20
    max_held_bytes_per_address: int = 32 << 20
    max_token_failures: int = 10
    token_failure_window: float = 60.0
    drain_timeout: float = 5.0
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    resume_grace: float = 30.0
    turn: TurnCredentials | None = None
    transport: str = "auto"
    # redis://[:PASSWORD@]HOST[:PORT][/DB]: rooms and sessions shared by every hub on it
    redis: str | None = field(default=None, repr=False)
    redis_prefix: str = "p2pcall"  # the keys of one hub group; tests give each group its own

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token) < MIN_TOKEN_CHARS:
            raise ConfigError(
                f"--token: must be at least {MIN_TOKEN_CHARS} characters "
                f"(got {len(self.token)}); a short token can be guessed online"
            )


def parse_ice_server(url: str) -> dict[str, Any]:
    """``stun:host:port`` or ``turn:user:secret@host:port[?transport=udp]``.

    TURN credentials ride in the URL so one flag describes one server; they are
    split out into the browser's ``RTCIceServer`` shape.
    """
    if not url.startswith(ICE_SCHEMES):
        raise ConfigError(
            f"--ice-server: {url!r} is not a STUN/TURN URL; expected stun:HOST[:PORT] "
            "or turn:[USER:SECRET@]HOST[:PORT][?transport=udp|tcp]"
        )
    scheme, rest = url.split(":", 1)
    if not rest or rest.startswith("@"):
        raise ConfigError(f"--ice-server: {url!r} has no host")
    if "@" in rest:
        if scheme in ("stun", "stuns"):
            raise ConfigError(f"--ice-server: STUN URLs carry no credentials: {scheme}:...@...")
        creds, host = rest.rsplit("@", 1)
        user, sep, secret = creds.partition(":")
        if not sep or not user or not host:
            raise ConfigError("--ice-server: TURN credentials must be USER:SECRET@HOST[:PORT]")
        return {
            "urls": [f"{scheme}:{host}"],
            "username": unquote(user),
            "credential": unquote(secret),
        }
    return {"urls": [url]}


def parse_redis_url(url: str) -> str:
    """``redis://`` or ``rediss://`` (TLS) with a host, optional port and database number,
    or ``unix:///path/to/redis.sock``."""
    if url.startswith("unix:///"):
        return url
    match = re.fullmatch(
        r"(rediss?)://(?:[^@/]*@)?([^:/@]+|\[[0-9a-fA-F:]+\])(?::(\d+))?(?:/(\d*))?", url
    )
    if match is None:
        # the URL may hold a password: never echo it
        raise ConfigError(
            "--redis: expected redis://[:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS, "
            "or unix:///PATH)"
        )
    port = match.group(3)
    if port is not None and not 0 < int(port) < 65536:
        raise ConfigError(f"--redis: port must be 1-65535, got {port}")
    return url


def _positive_number(flag: str, text: str, *, integer: bool = False, zero: bool = False) -> Any:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{flag}: expected {kind}, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise ConfigError(f"{flag}: must be {'>= 0' if zero else '> 0'}, got {text!r}")
    return value


@dataclass(frozen=True)
class NumberFlag:
    """One numeric setting: ``--flag`` / ``SIGNALING_ENV`` -> ``Config.field``."""

    field: str
    help: str
    integer: bool = False
    zero: bool = False

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")

    @property
    def env(self) -> str:
        return "SIGNALING_" + self.field.upper()


NUMBER_FLAGS = (
    NumberFlag("ping_interval", "seconds between Engine.IO pings (default 12)"),
    NumberFlag(
        "ping_timeout",
        "seconds a client may take to answer a ping before it is dropped; a frozen peer "
        "is noticed within interval + timeout (default 10)",
    ),
    NumberFlag(
        "max_queued_bytes",
        "bytes waiting to be sent to one socket before it is closed as a slow reader "
        "(default 1048576)",
        integer=True,
    ),
    NumberFlag(
        "send_timeout",
        "seconds one WebSocket write may wait on a client that does not read before that "
        "socket is closed (default 20)",
    ),
    NumberFlag(
        "request_timeout",
        "seconds a connection may take to send a request's headers, or stay idle between "
        "requests (default 10)",
    ),
    NumberFlag(
        "max_connections_per_address",
        "open connections per client address, 0 for no cap (default 256)",
        integer=True,
        zero=True,
    ),
    NumberFlag(
        "max_held_bytes",
        "bytes of held offers and candidates in the whole hub (default 268435456)",
        integer=True,
    ),
    NumberFlag(
        "max_held_bytes_per_address",
        "bytes of held offers and candidates per client address, 0 for no cap (default 33554432)",
        integer=True,
        zero=True,
    ),
    NumberFlag(
        "max_token_failures",
        "wrong tokens one address may send per --token-failure-window before its connects "
        "are refused with limit (default 10)",
        integer=True,
    ),
    NumberFlag("token_failure_window", "seconds over which wrong tokens count (default 60)"),
    NumberFlag(
        "drain_timeout", "seconds shutdown waits for sockets to close (default 5)", zero=True
    ),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="p2pcall-signaling",
        description="Signaling hub for p2pcall: holds offers and candidates until the "
        "answerer arrives, and serves the browser call page.",
    )
    p.add_argument("--host", help="address to bind (env SIGNALING_HOST; default 127.0.0.1)")
    p.add_argument("--port", help="TCP port, 0 picks a free one (env SIGNALING_PORT; default 8080)")
    p.add_argument(
        "--offer-ttl",
        help="seconds a room may wait for its other party (env SIGNALING_OFFER_TTL; default 600)",
    )
    p.add_argument(
        "--resume-grace",
        help="seconds a party that dropped without hanging up keeps its rooms and may resume; "
        "0 ends its rooms at once (env SIGNALING_RESUME_GRACE; default 30)",
    )
    p.add_argument(
        "--token", help="access token clients must present (env SIGNALING_TOKEN; default off)"
    )
    p.add_argument(
        "--ice-server",
        action="append",
        help="STUN/TURN URL handed to clients, repeatable; turn:USER:SECRET@HOST:PORT "
        "(env SIGNALING_ICE_SERVERS, space-separated; default none)",
    )
    p.add_argument(
        "--turn-secret",
        help="secret shared with coturn (use-auth-secret / static-auth-secret): each welcome "
        "carries TURN credentials minted from it; prefer the env variable, flags show in ps "
        "(env SIGNALING_TURN_SECRET; default off)",
    )
    p.add_argument(
        "--turn-url",
        action="append",
        help="TURN URL the minted credentials are for, repeatable: turn:HOST:PORT, "
        "turn:HOST:PORT?transport=tcp, turns:HOST:PORT (env SIGNALING_TURN_URLS, "
        "space-separated; needed with --turn-secret)",
    )
    p.add_argument(
        "--turn-ttl",
        help="seconds minted TURN credentials stay valid (env SIGNALING_TURN_TTL; default 3600)",
    )
    p.add_argument(
        "--log-level",
        help=f"one of {', '.join(LOG_LEVELS)} (env SIGNALING_LOG_LEVEL; default info)",
    )
    p.add_argument(
        "--transport",
        help=f"one of {', '.join(TRANSPORTS)} (env SIGNALING_TRANSPORT; default auto)",
    )
    p.add_argument(
        "--redis",
        help="redis://[:PASSWORD@]HOST[:PORT][/DB]: share rooms and sessions with every hub "
        "on that Redis (env SIGNALING_REDIS; default off, everything in memory)",
    )
    for nf in NUMBER_FLAGS:
        p.add_argument(nf.flag, help=f"{nf.help} (env {nf.env})")
    p.add_argument(
        "--allowed-host",
        action="append",
        help="Host header value the hub answers to, repeatable: a guard against DNS "
        "rebinding (env SIGNALING_ALLOWED_HOSTS, space-separated; default any)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        help="origin of a page served elsewhere that may connect, repeatable "
        "(env SIGNALING_CORS_ORIGINS, space-separated; default same origin only)",
    )
    return p


def _list(values: list[str] | None, env: Mapping[str, str], name: str) -> list[str] | None:
    if values is None and env.get(f"SIGNALING_{name}"):
        values = env[f"SIGNALING_{name}"].split()
    return values


def config_from_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Flags win over ``SIGNALING_*`` variables, which win over defaults."""
    env = os.environ if environ is None else environ
    args = build_parser().parse_args(argv)

    def pick(flag_value: Any, name: str) -> Any:
        return flag_value if flag_value is not None else env.get(f"SIGNALING_{name}")

    kwargs: dict[str, Any] = {}
    if (host := pick(args.host, "HOST")) is not None:
        if not host:
            raise ConfigError("--host: must not be empty")
        kwargs["host"] = host
    if (port := pick(args.port, "PORT")) is not None:
        value = _positive_number("--port", port, integer=True, zero=True)
        if value > 65535:
            raise ConfigError(f"--port: must be 0-65535, got {port!r}")
        kwargs["port"] = value
    if (ttl := pick(args.offer_ttl, "OFFER_TTL")) is not None:
        kwargs["offer_ttl"] = _positive_number("--offer-ttl", ttl)
    if (grace := pick(args.resume_grace, "RESUME_GRACE")) is not None:
        kwargs["resume_grace"] = _positive_number("--resume-grace", grace, zero=True)
    if (token := pick(args.token, "TOKEN")) is not None:
        if not token:
            raise ConfigError("--token: must not be empty (omit it to turn the token off)")
        kwargs["token"] = token
    urls = _list(args.ice_server, env, "ICE_SERVERS")
    if urls:
        kwargs["ice_servers"] = tuple(parse_ice_server(u) for u in urls)
    kwargs["turn"] = _turn_from(args, env, pick)
    if (level := pick(args.log_level, "LOG_LEVEL")) is not None:
        if level.lower() not in LOG_LEVELS:
            raise ConfigError(
                f"--log-level: expected one of {', '.join(LOG_LEVELS)}, got {level!r}"
            )
        kwargs["log_level"] = level.lower()
    if (transport := pick(args.transport, "TRANSPORT")) is not None:
        if transport.lower() not in TRANSPORTS:
            raise ConfigError(
                f"--transport: expected one of {', '.join(TRANSPORTS)}, got {transport!r}"
            )
        kwargs["transport"] = transport.lower()
    if (redis := pick(args.redis, "REDIS")) is not None:
        kwargs["redis"] = parse_redis_url(redis)
    for nf in NUMBER_FLAGS:
        if (text := pick(getattr(args, nf.field), nf.field.upper())) is not None:
            kwargs[nf.field] = _positive_number(nf.flag, text, integer=nf.integer, zero=nf.zero)
    if hosts := _list(args.allowed_host, env, "ALLOWED_HOSTS"):
        kwargs["allowed_hosts"] = tuple(h.lower() for h in hosts)
    if origins := _list(args.cors_origin, env, "CORS_ORIGINS"):
        for origin in origins:
            if not re.fullmatch(r"https?://[^/\s]+", origin):
                raise ConfigError(
                    f"--cors-origin: expected scheme://host[:port] with no path, got {origin!r}"
                )
        kwargs["cors_origins"] = tuple(origins)
    return Config(**kwargs)


def _turn_from(
    args: argparse.Namespace, env: Mapping[str, str], pick: Any
) -> TurnCredentials | None:
    """``--turn-secret`` with ``--turn-url`` (and ``--turn-ttl``): how to mint TURN users."""
    secret = pick(args.turn_secret, "TURN_SECRET")
    urls = args.turn_url
    if urls is None and env.get("SIGNALING_TURN_URLS"):
        urls = env["SIGNALING_TURN_URLS"].split()
    ttl_text = pick(args.turn_ttl, "TURN_TTL")
    if secret is None:
        if urls or ttl_text is not None:
            raise ConfigError("--turn-url/--turn-ttl: need --turn-secret (SIGNALING_TURN_SECRET)")
        return None
    ttl = 3600 if ttl_text is None else _positive_number("--turn-ttl", ttl_text, integer=True)
    try:
        return TurnCredentials(secret=secret, urls=tuple(urls or ()), ttl=ttl)
    except TurnConfigError as exc:
        raise ConfigError(str(exc)) from None
