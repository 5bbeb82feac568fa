"""Which TURN URL the peer hands to aiortc, chosen by trying each one.

aiortc (aioice) uses only the first ``turn:``/``turns:`` URL it is given. A hub
may offer several (UDP, TCP, TLS) so that peers behind a firewall that drops UDP
still get a relay. :func:`choose_turn` allocates on every candidate URL at once
(RFC 8656 Allocate with the long-term credentials from ``welcome``), prefers UDP,
then TCP, then TLS, and returns the first in that order that worked. The reasons
the others failed are kept, so a failing call can say "TURN authentication
failed" instead of only "no route".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

PROBE_TIMEOUT = 4.0  # seconds one Allocate may take before the next URL is preferred
PREFERENCE = ("udp", "tcp", "tls")


@dataclass(frozen=True)
class TurnUrl:
    """One TURN URL with the credentials of the ``RTCIceServer`` it came from."""

    url: str
    host: str
    port: int
    transport: str  # "udp", "tcp" or "tls" (turns:)
    username: str | None
    credential: str | None

    @property
    def server(self) -> dict[str, Any]:
        """This URL alone, as an ``RTCIceServer`` dict."""
        return {"urls": [self.url], "username": self.username, "credential": self.credential}


@dataclass(frozen=True)
class TurnChoice:
    """The URL to use (``None`` when none worked) and why the others were not used."""

    chosen: TurnUrl | None
    failures: tuple[str, ...] = ()
    auth_failed: bool = False


def parse_turn_url(url: str, username: str | None, credential: str | None) -> TurnUrl | None:
    """``turn:HOST[:PORT][?transport=udp|tcp]`` or ``turns:HOST[:PORT]``; ``None`` if not TURN."""
    if not url.startswith(("turn:", "turns:")):
        return None
    scheme, rest = url.split(":", 1)
    try:
        parts = urlsplit(f"//{rest.split('?', 1)[0]}")
        host, port = parts.hostname, parts.port
    except ValueError:  # a bad port or bracket: not a URL we can use
        log.warning("ignoring malformed TURN URL %r", url)
        return None
    query = parse_qs(rest.split("?", 1)[1]) if "?" in rest else {}
    secure = scheme == "turns"
    transport = "tls" if secure else query.get("transport", ["udp"])[0].lower()
    if host is None or transport not in PREFERENCE:
        return None
    port = port or (5349 if secure else 3478)
    return TurnUrl(url, host, port, transport, username, credential)


def turn_urls(servers: Sequence[dict[str, Any]]) -> list[TurnUrl]:
    """Every TURN URL of an ``iceServers`` list, UDP first, then TCP, then TLS."""
    found: list[TurnUrl] = []
    for server in servers:
        urls = server.get("urls") or []
        for url in [urls] if isinstance(urls, str) else urls:
            turn = parse_turn_url(str(url), server.get("username"), server.get("credential"))
            if turn is not None:
                found.append(turn)
    return sorted(found, key=lambda t: PREFERENCE.index(t.transport))


def usable_by_aiortc(servers: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``servers`` (``RTCIceServer`` dicts) without the URLs aiortc cannot parse.

    aiortc's URL pattern takes no ``:`` in the host, so an IPv6 literal
    (``stun:[::1]:3478``, which RFC 7064 and browsers accept) makes the whole call fail
    with ``ValueError: malformed uri`` when the connection gathers. A hub's list is
    meant for browsers too, so such a URL is skipped here with one warning naming it,
    and the rest are used; a server left with no URL is dropped.
    """
    kept: list[dict[str, Any]] = []
    for server in servers:
        urls = server.get("urls") or []
        good = [
            str(u) for u in ([urls] if isinstance(urls, str) else urls) if _aiortc_takes(str(u))
        ]
        if good:
            kept.append({**server, "urls": good})
    return kept


def _aiortc_takes(url: str) -> bool:
    """Whether aiortc parses ``url``; if not, say so in one warning line naming it."""
    from aiortc.rtcicetransport import parse_stun_turn_uri

    try:
        parse_stun_turn_uri(url)
    except ValueError as exc:
        why = "IPv6 literals are not supported by its ICE agent" if "[" in url else str(exc)
        log.warning("skipping ICE server %r from the hub: aiortc cannot use it (%s)", url, why)
        return False
    return True


def for_aiortc(servers: Sequence[dict[str, Any]], turn: TurnUrl | None) -> list[dict[str, Any]]:
    """The first STUN URL and only ``turn``: exactly what aiortc will use, nothing hidden."""
    out: list[dict[str, Any]] = []
    for server in servers:
        urls = server.get("urls") or []
        stun = [u for u in ([urls] if isinstance(urls, str) else urls) if u.startswith("stun")]
        if stun:
            out.append({"urls": stun[:1]})
            break
    if turn is not None:
        out.append(turn.server)
    return out


def expiry_note(username: str | None, now: float) -> str:
    """`` (credentials expired N s ago)`` for a TURN REST username past its expiry, else ``""``."""
    head, sep, _ = (username or "").partition(":")
    if not (sep and head.isdigit()) or int(head) > now:
        return ""
    at = datetime.fromtimestamp(int(head), UTC).strftime("%H:%M:%S UTC")
    return f" (the credentials expired at {at}, {now - int(head):.0f} s ago)"


async def allocate(turn: TurnUrl) -> None:
    """One TURN Allocate on ``turn``, released at once; raises what aioice raised."""
    from aioice import turn as aioice_turn

    transport, _ = await aioice_turn.create_turn_endpoint(
        asyncio.DatagramProtocol,
        server_addr=(turn.host, turn.port),
        username=turn.username,
        password=turn.credential,
        ssl=turn.transport == "tls",
        transport="udp" if turn.transport == "udp" else "tcp",
    )
    transport.close()


def describe_failure(turn: TurnUrl, exc: BaseException, timeout: float) -> tuple[str, bool]:
    """A sentence for one failed Allocate, and whether it was an authentication failure."""
    from aioice import stun

    if isinstance(exc, stun.TransactionFailed) and exc.response.error_code == 401:
        note = expiry_note(turn.username, time.time())
        return (
            f"TURN authentication failed at {turn.url} (401 Unauthorized){note}: coturn refused "
            "the username/credential; a hub minting them needs --turn-secret equal to coturn's "
            "static-auth-secret, and they last --turn-ttl seconds",
            True,
        )
    if isinstance(exc, TimeoutError):
        return f"{turn.url} did not answer a TURN Allocate within {timeout:g} s", False
    return f"{turn.url} refused a TURN Allocate: {type(exc).__name__}: {exc}", False


async def choose_turn(
    servers: Sequence[dict[str, Any]], probe_timeout: float = PROBE_TIMEOUT
) -> TurnChoice:
    """Try every TURN URL at once; choose the first in UDP > TCP > TLS order that allocates."""
    candidates = turn_urls(servers)
    if not candidates:
        return TurnChoice(None)
    probes = [
        asyncio.create_task(
            asyncio.wait_for(allocate(t), probe_timeout), name=f"turn-probe {t.url}"
        )
        for t in candidates
    ]
    failures: list[str] = []
    auth_failed = False
    chosen: TurnUrl | None = None
    try:
        for turn, probe in zip(candidates, probes, strict=True):
            try:
                await probe
            except Exception as exc:  # every failure is a reason to try the next URL
                reason, auth = describe_failure(turn, exc, probe_timeout)
                auth_failed = auth_failed or auth
                failures.append(reason)
                log.info("TURN %s not usable: %s", turn.url, reason)
                continue
            chosen = turn
            break
    finally:
        for probe in probes:
            probe.cancel()
        for probe in probes:
            with contextlib.suppress(BaseException):
                await probe
    if chosen is not None and failures:
        log.warning("TURN: using %s, because %s", chosen.url, "; ".join(failures))
    elif chosen is not None:
        log.info("TURN: using %s", chosen.url)
    return TurnChoice(chosen, tuple(failures), auth_failed)
