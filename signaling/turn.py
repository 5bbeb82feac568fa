"""TURN REST credentials: short-lived TURN users minted from a secret shared with coturn.

The scheme is the one coturn's ``use-auth-secret`` / ``static-auth-secret`` checks
(draft-uberti-behave-turn-rest, coturn's "TURN REST API"): ``username`` is
``"<unix expiry>:<id>"`` and ``credential`` is ``base64(HMAC-SHA1(secret, username))``.
coturn recomputes the HMAC and refuses a username whose expiry has passed (401),
so nobody who copies a credential can use it for longer than the TTL.

Pure: no clock read and no randomness inside; the caller passes ``now`` and ``id``.
Contract: "TURN credentials" in the protocol (v1.1).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

TURN_SCHEMES = ("turn:", "turns:")
# an <id> travels in the clear and lands in TURN logs: keep it to a short safe token
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# A minted credential is HMAC-SHA1(secret, username) sent to every client: whoever holds
# one can test guesses of the secret offline, so it gets the access token's floor at least.
MIN_SECRET_CHARS = 16


def secret_fault(secret: str) -> str | None:
    """None for a usable ``--turn-secret``; else what is wrong, without quoting it."""
    if not secret:
        return "must not be empty"
    if len(secret) < MIN_SECRET_CHARS:
        return (
            f"must be at least {MIN_SECRET_CHARS} characters (got {len(secret)}); every "
            "minted credential lets its holder guess a short secret offline"
        )
    return None


class TurnConfigError(ValueError):
    """A TURN setting the hub cannot use; the message names what was wrong."""


@dataclass(frozen=True)
class TurnCredentials:
    """How the hub mints TURN users: ``secret`` shared with coturn, ``urls``, ``ttl`` seconds."""

    secret: str = field(repr=False)
    urls: tuple[str, ...]
    ttl: int = 3600

    def __post_init__(self) -> None:
        if (fault := secret_fault(self.secret)) is not None:
            raise TurnConfigError(f"--turn-secret: {fault}")
        if not self.urls:
            raise TurnConfigError("--turn-secret needs at least one --turn-url turn:HOST[:PORT]")
        for url in self.urls:
            check_turn_url(url)
        if self.ttl < 1:
            raise TurnConfigError(f"--turn-ttl: must be at least 1 second, got {self.ttl!r}")

    def mint(self, now: float, conn_id: str) -> dict[str, Any]:
        """One ``RTCIceServer`` for all ``urls``, valid until ``now + ttl`` (unix seconds).

        ``conn_id`` names the connection in coturn's logs; it must not be the
        session or anything else that grants access to the hub.
        """
        if not ID_PATTERN.match(conn_id):
            raise ValueError(f"TURN id {conn_id!r} must be 1-64 of A-Z a-z 0-9 _ -")
        username = f"{math.floor(now) + self.ttl}:{conn_id}"
        return {
            "urls": list(self.urls),
            "username": username,
            "credential": credential_for(self.secret, username),
        }


def credential_for(secret: str, username: str) -> str:
    """``base64(HMAC-SHA1(secret, username))``, the password coturn expects for ``username``."""
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def check_turn_url(url: str, label: str = "--turn-url") -> str:
    """A ``turn:``/``turns:`` URL without credentials in it (the hub mints those).

    ``label`` starts each error: the flag, or the variable that gave ``url``.
    """
    if not url.startswith(TURN_SCHEMES):
        raise TurnConfigError(
            f"{label}: {url!r} is not a TURN URL; expected turn:HOST[:PORT][?transport=udp|tcp]"
            " or turns:HOST[:PORT]"
        )
    rest = url.split(":", 1)[1]
    if "@" in rest:
        raise TurnConfigError(
            f"{label}: must not carry USER:SECRET@ (the hub mints credentials from "
            "--turn-secret); expected turn:HOST[:PORT][?transport=udp|tcp] or turns:HOST[:PORT]"
        )
    if not rest or rest.startswith(("?", ":")):
        raise TurnConfigError(f"{label}: {url!r} has no host")
    return url


def expiry_of(username: str) -> int | None:
    """The unix expiry in a TURN REST ``username``, or ``None`` if it is not of that shape."""
    head, sep, _ = username.partition(":")
    return int(head) if sep and head.isdigit() else None


def ice_servers(
    static: Sequence[dict[str, Any]], turn: TurnCredentials | None, now: float, conn_id: str
) -> list[dict[str, Any]]:
    """The ``welcome`` ``iceServers``: the static servers, then freshly minted TURN."""
    servers = [dict(s) for s in static]
    if turn is not None:
        servers.append(turn.mint(now, conn_id))
    return servers
