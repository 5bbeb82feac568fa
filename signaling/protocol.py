"""Wire messages of the signaling contract: event names, error codes, parsing.

Everything a client sends is checked here before the room rules see it, so the
core only ever handles well-formed values. Parsed values are small slotted
objects: a held offer is kept for minutes, so its size matters (see
``docs/performance.md``).
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# matched with ``fullmatch``: ``$`` alone would also accept a trailing newline
ROOM_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
NAME_MAX_CHARS = 64
BAD_NAME_CATEGORIES = frozenset({"Cc", "Cs", "Co", "Cn"})
BIDI_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069]")
MAX_LOBBY_ROOMS = 100  # rooms one lobby reply or push lists (oldest first); "more" counts the rest
DEFAULT_MAX_SDP_BYTES = 65536
MAX_CANDIDATE_BYTES = 1024
MAX_FIELD_CHARS = 256  # sdpMid, usernameFragment
PRIVATE_ROOM_BYTES = 16  # 128 bits: a private room's name cannot be guessed or enumerated
NEW_ROOM = "new"  # the peer's --room value that asks for a fresh private room


class Event(StrEnum):
    """Event names, both directions."""

    WELCOME = "welcome"
    OFFER = "offer"
    JOIN = "join"
    ANSWER = "answer"
    CANDIDATE = "candidate"
    HANGUP = "hangup"
    ROOMS = "rooms"
    PEER_AWAY = "peer_away"
    PEER_BACK = "peer_back"
    BYE = "bye"


class ErrorCode(StrEnum):
    """Error codes carried in failure acks (``error.code``)."""

    INVALID = "invalid"
    TOO_LARGE = "too_large"
    ROOM_BUSY = "room_busy"
    ROOM_FULL = "room_full"
    NOT_IN_ROOM = "not_in_room"
    WRONG_ROLE = "wrong_role"
    NO_PEER = "no_peer"
    LIMIT = "limit"
    UNAUTHORIZED = "unauthorized"
    UNKNOWN_EVENT = "unknown_event"
    STALE = "stale"
    UNAVAILABLE = "unavailable"  # v1.1, with --redis: the shared store cannot be reached


class HangupReason(StrEnum):
    HANGUP = "hangup"
    PEER_LEFT = "peer_left"
    EXPIRED = "expired"


class SignalingError(Exception):
    """A request the hub refuses; becomes ``{"ok": false, "error": ...}``."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_ack(self) -> dict[str, Any]:
        return {"ok": False, "error": {"code": self.code.value, "message": self.message}}


def _invalid(message: str) -> SignalingError:
    return SignalingError(ErrorCode.INVALID, message)


def _quote(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True, slots=True)
class Description:
    """An ``RTCSessionDescriptionInit``: ``{"type", "sdp"}``."""

    type: str
    sdp: str

    def to_json(self) -> dict[str, str]:
        return {"type": self.type, "sdp": self.sdp}


@dataclass(frozen=True, slots=True)
class Candidate:
    """An ``RTCIceCandidateInit``; ``usernameFragment`` is kept only when sent."""

    candidate: str
    sdp_mid: str | None
    sdp_mline_index: int | None
    username_fragment: str | None = None
    has_ufrag: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "candidate": self.candidate,
            "sdpMid": self.sdp_mid,
            "sdpMLineIndex": self.sdp_mline_index,
        }
        if self.has_ufrag:
            out["usernameFragment"] = self.username_fragment
        return out


def candidate_json(candidate: Candidate | None) -> dict[str, Any] | None:
    return None if candidate is None else candidate.to_json()


def require_object(payload: Any, event: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise _invalid(
            f"{event}: payload must be a JSON object, got {type(payload).__name__} "
            f"{_quote(payload)}"
        )
    return payload


def parse_room(payload: dict[str, Any], event: str) -> str:
    if "room" not in payload:
        raise _invalid(f'{event}: missing field "room" (a name of 1-64 letters, digits, _ or -)')
    room = payload["room"]
    if not isinstance(room, str) or not ROOM_PATTERN.fullmatch(room):
        raise _invalid(
            f"{event}: room {_quote(room)} is malformed; a room name is 1-64 characters "
            "of A-Z, a-z, 0-9, _ or -"
        )
    return room


def _check_size(text: str, limit: int, what: str) -> None:
    """Limits are in UTF-8 bytes, as on the wire; ASCII (nearly all SDP) is counted for free."""
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise SignalingError(
            ErrorCode.TOO_LARGE, f"{what} is {size} bytes; at most {limit} bytes are accepted"
        )


def parse_description(
    payload: dict[str, Any], event: str, expected_type: str, max_sdp_bytes: int
) -> Description:
    raw = payload.get("description")
    if not isinstance(raw, dict):
        raise _invalid(
            f'{event}: field "description" must be an object {{"type": "{expected_type}", '
            f'"sdp": string}}, got {_quote(raw)}'
        )
    kind = raw.get("type")
    if kind != expected_type:
        raise _invalid(f'{event}: description.type must be "{expected_type}", got {_quote(kind)}')
    sdp = raw.get("sdp")
    if not isinstance(sdp, str):
        raise _invalid(f"{event}: description.sdp must be a string, got {_quote(sdp)}")
    _check_size(sdp, max_sdp_bytes, f"{event}: SDP")
    return Description(expected_type, sdp)


def _optional_str(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _invalid(f"candidate: {key} must be a string or null, got {_quote(value)}")
    if len(value) > MAX_FIELD_CHARS:
        raise SignalingError(
            ErrorCode.TOO_LARGE,
            f"candidate: {key} is {len(value)} characters; at most {MAX_FIELD_CHARS} accepted",
        )
    return value


def parse_candidate(payload: dict[str, Any]) -> Candidate | None:
    """Parse ``payload["candidate"]``; ``None`` is end-of-candidates."""
    if "candidate" not in payload:
        raise _invalid(
            'candidate: missing field "candidate" (an RTCIceCandidateInit object, '
            "or null for end-of-candidates)"
        )
    raw = payload["candidate"]
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _invalid(
            "candidate: field candidate must be an object "
            '{"candidate": string, "sdpMid": string|null, "sdpMLineIndex": int|null} '
            f"or null, got {_quote(raw)}"
        )
    text = raw.get("candidate")
    if not isinstance(text, str):
        raise _invalid(f"candidate: candidate.candidate must be a string, got {_quote(text)}")
    _check_size(text, MAX_CANDIDATE_BYTES, "candidate: candidate string")
    mid = _optional_str(raw, "sdpMid")
    index = raw.get("sdpMLineIndex")
    if index is not None and (
        isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= 65535
    ):
        raise _invalid(
            f"candidate: sdpMLineIndex must be an integer 0-65535 or null, got {_quote(index)}"
        )
    has_ufrag = "usernameFragment" in raw
    ufrag = _optional_str(raw, "usernameFragment")
    return Candidate(text, mid, index, ufrag, has_ufrag)


def parse_name(auth: Any) -> str | None:
    """The display name from the connect ``auth`` object, if valid: 1-64 characters with
    no control, surrogate, private-use, unassigned or bidi-override/isolate character
    (Unicode categories Cc, Cs, Co, Cn; U+202A-U+202E, U+2066-U+2069), which could
    spoof what the lobby shows or break its JSON."""
    if not isinstance(auth, dict):
        return None
    name = auth.get("name")
    if (
        isinstance(name, str)
        and 1 <= len(name) <= NAME_MAX_CHARS
        and not any(unicodedata.category(c) in BAD_NAME_CATEGORIES for c in name)
        and not BIDI_CONTROLS.search(name)
    ):
        return name
    return None


def new_private_room() -> str:
    """An unguessable room name (base64url, 22 characters); ``static/protocol.js`` mirrors it.

    Room names are the only secret between caller and answerer: whoever joins a
    room first receives the next offer and its candidates (IP addresses).
    """
    return secrets.token_urlsafe(PRIVATE_ROOM_BYTES)


def answer_link(base_url: str, room: str) -> str:
    """The page URL that opens straight into answering in ``room``."""
    return f"{base_url.rstrip('/')}/?room={room}&role=answerer&auto=1"


def ok(**fields: Any) -> dict[str, Any]:
    return {"ok": True, **fields}
