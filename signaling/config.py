"""Hub settings: one frozen ``Config`` built from flags with ``SIGNALING_*`` fallbacks."""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

from .turn import TurnConfigError, TurnCredentials, check_turn_url, secret_fault

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
LOG_LEVELS = ("debug", "info", "warning", "error")
# auto: lean unless transport.lean_mismatch() says the libraries moved, then stock.
TRANSPORTS = ("auto", "lean", "stock")


class ConfigError(ValueError):
    """A setting has a value the hub cannot use; the message names the flag or variable."""


T = TypeVar("T")


@dataclass(frozen=True)
class Given(Generic[T]):
    """A setting's raw value and ``label``, the name its errors start with.

    ``label`` is the flag (``--port``) when the flag gave the value, and
    ``VARIABLE (--flag)`` (``SIGNALING_PORT (--port)``) when the environment variable
    did: the user is told what they actually set, and which flag it stands for.
    """

    value: T
    label: str


class Sources:
    """Settings read from parsed flags, else from ``PREFIX_NAME`` environment variables.

    Shared by the hub (``SIGNALING_``) and the peer (``PEER_``) so both name a bad
    value the same way. ``dest`` is the argparse destination (``ice_server``); the
    flag is ``--ice-server`` and the variable ``prefix + name`` (default
    ``dest.upper()``).
    """

    def __init__(self, args: argparse.Namespace, env: Mapping[str, str], prefix: str) -> None:
        self.args = args
        self._env = env
        self._prefix = prefix

    def one(self, dest: str, name: str | None = None) -> Given[str] | None:
        """The flag's value, else the variable's, else ``None`` when neither is set."""
        return self._pick(dest, name, str)

    def many(self, dest: str, name: str) -> Given[list[str]] | None:
        """A repeatable flag's values, else the variable split on whitespace."""
        return self._pick(dest, name, str.split)

    def _pick(self, dest: str, name: str | None, from_env: Callable[[str], T]) -> Given[T] | None:
        flag = "--" + dest.replace("_", "-")
        value = getattr(self.args, dest)
        if value is not None:
            return Given(value, flag)
        var = self._prefix + (name or dest.upper())
        if var in self._env:
            return Given(from_env(self._env[var]), f"{var} ({flag})")
        return None


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
        if self.token is not None:
            check_token(self.token)


def check_token(token: str, label: str = "--token") -> str:
    """A token of at least ``MIN_TOKEN_CHARS`` characters; the error never quotes it."""
    if not token:
        raise ConfigError(f"{label}: must not be empty (omit it to turn the token off)")
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"{label}: must be at least {MIN_TOKEN_CHARS} characters "
            f"(got {len(token)}); a short token can be guessed online"
        )
    return token


# RFC 7064 / 7065 URI grammar: scheme ":" host [ ":" port ] [ "?transport=" transport ].
# host is RFC 3986's IP-literal / IPv4address / reg-name; reg-name is narrowed here to
# unreserved characters and %XX, since no DNS name or address holds its sub-delims.
ICE_URL_PARTS = re.compile(
    r"(?P<host>\[[^\]]*\]|[^\[\]:?]*)(?::(?P<port>[^?]*))?(?:\?(?P<query>.*))?"
)
REG_NAME = re.compile(r"(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2})+")
STUN_FORM = "stun:HOST[:PORT] or stuns:HOST[:PORT] (RFC 7064)"
TURN_FORM = "turn:[USER:SECRET@]HOST[:PORT][?transport=udp|tcp], or turns: the same (RFC 7065)"


def parse_ice_server(url: str, label: str = "--ice-server") -> dict[str, Any]:
    """``stun:HOST[:PORT]`` or ``turn:[USER:SECRET@]HOST[:PORT][?transport=udp|tcp]``.

    Checked against RFC 7064 (``stun:``, ``stuns:``, no query) and RFC 7065 (``turn:``,
    ``turns:``, ``?transport=`` ``udp`` or ``tcp``; the RFC's transport-ext is refused
    since browsers know only those two). HOST is a DNS name, a dotted-quad IPv4 address
    or a bracketed IPv6 literal (``[::1]``), PORT is 1-65535. TURN credentials riding
    in the URL are this project's extension, so one flag describes one server; they are
    split out into the browser's ``RTCIceServer`` shape
    (``{"urls": [...], "username": ..., "credential": ...}``). Each refusal is one
    :class:`ConfigError` starting with ``label``; it never quotes the credentials.
    """
    scheme, colon, rest = url.partition(":")
    if not colon or scheme not in ("stun", "stuns", "turn", "turns"):
        raise ConfigError(
            f"{label}: {_redacted(url)!r} is not a STUN/TURN URL; expected {STUN_FORM}, "
            f"or {TURN_FORM}"
        )
    stun = scheme.startswith("stun")
    form = STUN_FORM if stun else TURN_FORM
    creds, at, address = rest.rpartition("@")
    shown = f"{scheme}:{'USER:***@' if at else ''}{address}"
    if at:
        if stun:
            raise ConfigError(
                f"{label}: STUN URLs carry no credentials ({shown!r}); expected {form}"
            )
        user, sep, secret = creds.partition(":")
        if not (sep and user and secret):
            raise ConfigError(
                f"{label}: TURN credentials in {shown!r} must be USER:SECRET@, both non-empty; "
                f"expected {form}"
            )
    _check_ice_address(address, stun, f"{label}: {shown!r}", form)
    if not at:
        return {"urls": [url]}
    return {
        "urls": [f"{scheme}:{address}"],
        "username": unquote(user),
        "credential": unquote(secret),
    }


def _check_ice_address(address: str, stun: bool, where: str, form: str) -> None:
    """``HOST[:PORT][?transport=udp|tcp]`` of a STUN/TURN URL; ``where`` starts each error."""
    parts = ICE_URL_PARTS.fullmatch(address)
    if parts is None:
        raise ConfigError(f"{where}: not HOST[:PORT]; expected {form}")
    host, port, query = parts["host"], parts["port"], parts["query"]
    if not host:
        if port and ":" in port:  # stun:::1 - an IPv6 address left bare
            raise ConfigError(f"{where} has no host; an IPv6 address goes in brackets, [::1]:3478")
        raise ConfigError(f"{where} has no host; expected {form}")
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ConfigError(f"{where}: {host} is not an IPv6 address; expected {form}") from None
    elif not REG_NAME.fullmatch(host):
        raise ConfigError(
            f"{where}: host {host!r} is not a DNS name, IPv4 address or [IPv6] literal"
        )
    elif re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ConfigError(f"{where}: {host!r} is not an IPv4 address a.b.c.d") from None
    if port is not None and not (re.fullmatch(r"[0-9]{1,5}", port) and 0 < int(port) < 65536):
        raise ConfigError(f"{where}: port must be 1-65535, got {port!r}")
    if query is None:
        return
    if stun:
        raise ConfigError(f"{where}: STUN URLs take no query; expected {form}")
    name, eq, transport = query.partition("=")
    if name != "transport" or not eq:
        raise ConfigError(
            f"{where}: the only query a TURN URL takes is ?transport=udp|tcp (RFC 7065)"
        )
    if transport not in ("udp", "tcp"):
        raise ConfigError(f"{where}: transport must be udp or tcp, got {transport!r}")


def _redacted(url: str) -> str:
    """``url`` fit for an error: whatever precedes its last ``@`` may be a secret."""
    _, at, tail = url.rpartition("@")
    return f"***@{tail}" if at else url


def parse_redis_url(url: str, label: str = "--redis") -> str:
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
            f"{label}: expected redis://[:PASSWORD@]HOST[:PORT][/DB] (rediss:// for TLS, "
            "or unix:///PATH)"
        )
    port = match.group(3)
    if port is not None and not 0 < int(port) < 65536:
        raise ConfigError(f"{label}: port must be 1-65535, got {port}")
    return url


def _positive_number(label: str, text: str, *, integer: bool = False, zero: bool = False) -> Any:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{label}: expected {kind}, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise ConfigError(f"{label}: must be {'>= 0' if zero else '> 0'}, got {text!r}")
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


def config_from_args(
    argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Flags win over ``SIGNALING_*`` variables, which win over defaults.

    A bad value raises :class:`ConfigError` naming what gave it: ``--port: ...``
    or ``SIGNALING_PORT (--port): ...`` (see :class:`Given`).
    """
    env = os.environ if environ is None else environ
    src = Sources(build_parser().parse_args(argv), env, "SIGNALING_")
    kwargs: dict[str, Any] = {}
    if (host := src.one("host")) is not None:
        if not host.value:
            raise ConfigError(f"{host.label}: must not be empty")
        kwargs["host"] = host.value
    if (port := src.one("port")) is not None:
        value = _positive_number(port.label, port.value, integer=True, zero=True)
        if value > 65535:
            raise ConfigError(f"{port.label}: must be 0-65535, got {port.value!r}")
        kwargs["port"] = value
    if (ttl := src.one("offer_ttl")) is not None:
        kwargs["offer_ttl"] = _positive_number(ttl.label, ttl.value)
    if (grace := src.one("resume_grace")) is not None:
        kwargs["resume_grace"] = _positive_number(grace.label, grace.value, zero=True)
    if (token := src.one("token")) is not None:
        kwargs["token"] = check_token(token.value, token.label)
    if (urls := src.many("ice_server", "ICE_SERVERS")) is not None and urls.value:
        kwargs["ice_servers"] = tuple(parse_ice_server(u, urls.label) for u in urls.value)
    kwargs["turn"] = _turn_from(src)
    if (level := src.one("log_level")) is not None:
        if level.value.lower() not in LOG_LEVELS:
            raise ConfigError(
                f"{level.label}: expected one of {', '.join(LOG_LEVELS)}, got {level.value!r}"
            )
        kwargs["log_level"] = level.value.lower()
    if (transport := src.one("transport")) is not None:
        if transport.value.lower() not in TRANSPORTS:
            raise ConfigError(
                f"{transport.label}: expected one of {', '.join(TRANSPORTS)}, "
                f"got {transport.value!r}"
            )
        kwargs["transport"] = transport.value.lower()
    if (redis := src.one("redis")) is not None:
        kwargs["redis"] = parse_redis_url(redis.value, redis.label)
    for nf in NUMBER_FLAGS:
        if (number := src.one(nf.field)) is not None:
            kwargs[nf.field] = _positive_number(
                number.label, number.value, integer=nf.integer, zero=nf.zero
            )
    if (hosts := src.many("allowed_host", "ALLOWED_HOSTS")) is not None and hosts.value:
        kwargs["allowed_hosts"] = tuple(check_allowed_host(h, hosts.label) for h in hosts.value)
    if (origins := src.many("cors_origin", "CORS_ORIGINS")) is not None and origins.value:
        for origin in origins.value:
            if not re.fullmatch(r"https?://[^/\s,]+", origin):
                raise ConfigError(
                    f"{origins.label}: expected scheme://host[:port] with no path, got {origin!r}"
                )
        kwargs["cors_origins"] = tuple(origins.value)
    return Config(**kwargs)


def check_allowed_host(host: str, label: str) -> str:
    """One ``--allowed-host`` value, lower-cased; ConfigError if it cannot be a host.

    Several are given by repeating the flag, or space-separated in
    SIGNALING_ALLOWED_HOSTS; an empty value or one with a comma or a space would
    make the hub answer 421 to every request.
    """
    if not host.strip():
        raise ConfigError(f"{label}: must not be empty; expected a host name or IP address")
    if "," in host or any(c.isspace() for c in host):
        raise ConfigError(
            f"{label}: {host[:80]!r} is not one host (a comma or space cannot be in one); "
            "give several by repeating --allowed-host, or space-separated in "
            "SIGNALING_ALLOWED_HOSTS"
        )
    host = host.lower()
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in bare:
        try:
            # the short form: a request's [0:0:0:0:0:0:0:1] arrives as ::1
            return ipaddress.IPv6Address(bare).compressed
        except ValueError:
            name = host.rsplit(":", 1)[0].strip("[]")
            example = f", e.g. {name[:80]!r}" if name else ""
            raise ConfigError(
                f"{label}: {host[:80]!r} carries a port; expected the host alone "
                f"(a request's port is not compared){example}"
            ) from None
    if not bare or "[" in bare or "]" in bare:
        raise ConfigError(
            f"{label}: {host[:80]!r} is not a host; expected a name, an IPv4 address "
            "or an [IPv6] address"
        )
    return bare


def _turn_from(src: Sources) -> TurnCredentials | None:
    """``--turn-secret`` with ``--turn-url`` (and ``--turn-ttl``): how to mint TURN users."""
    secret = src.one("turn_secret")
    given_urls = src.many("turn_url", "TURN_URLS")
    urls = given_urls.value if given_urls is not None else []
    ttl_text = src.one("turn_ttl")
    if secret is None:
        orphan = ttl_text or (given_urls if urls else None)
        if orphan is not None:
            raise ConfigError(f"{orphan.label}: need --turn-secret (SIGNALING_TURN_SECRET)")
        return None
    if (fault := secret_fault(secret.value)) is not None:
        raise ConfigError(f"{secret.label}: {fault}")
    ttl = (
        3600 if ttl_text is None else _positive_number(ttl_text.label, ttl_text.value, integer=True)
    )
    try:
        if given_urls is not None:
            for url in urls:
                check_turn_url(url, given_urls.label)
        return TurnCredentials(secret=secret.value, urls=tuple(urls), ttl=ttl)
    except TurnConfigError as exc:
        raise ConfigError(str(exc)) from None
