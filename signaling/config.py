"""Hub settings: one frozen ``Config`` built from flags with ``SIGNALING_*`` fallbacks."""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from .turn import TurnConfigError, TurnCredentials

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
LOG_LEVELS = ("debug", "info", "warning", "error")
ICE_SCHEMES = ("stun:", "stuns:", "turn:", "turns:")


class ConfigError(ValueError):
    """A setting has a value the hub cannot use; the message names the flag."""


@dataclass(frozen=True)
class Config:
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
    resume_grace: float = 30.0
    turn: TurnCredentials | None = None


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


def _positive_number(flag: str, text: str, *, integer: bool = False, zero: bool = False) -> Any:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{flag}: expected {kind}, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise ConfigError(f"{flag}: must be {'>= 0' if zero else '> 0'}, got {text!r}")
    return value


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
    return p


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
    urls = args.ice_server
    if urls is None and env.get("SIGNALING_ICE_SERVERS"):
        urls = env["SIGNALING_ICE_SERVERS"].split()
    if urls:
        kwargs["ice_servers"] = tuple(parse_ice_server(u) for u in urls)
    kwargs["turn"] = _turn_from(args, env, pick)
    if (level := pick(args.log_level, "LOG_LEVEL")) is not None:
        if level.lower() not in LOG_LEVELS:
            raise ConfigError(
                f"--log-level: expected one of {', '.join(LOG_LEVELS)}, got {level!r}"
            )
        kwargs["log_level"] = level.lower()
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
