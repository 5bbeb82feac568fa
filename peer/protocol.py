"""The peer's side of the wire: names, and conversions to and from aiortc objects.

Event names, error codes and hang-up reasons come from :mod:`signaling.protocol`
(the pure wire module the hub uses), so the peer never spells a wire name itself.

Browsers send ``RTCIceCandidateInit`` objects whose ``candidate`` string starts
with ``candidate:``. ``null`` means end-of-candidates for the whole generation; an
empty string means end-of-candidates for the m-section (``sdpMid`` /
``sdpMLineIndex``) and ICE generation (``usernameFragment``) it names (W3C
webrtc-pc, ``addIceCandidate``; RFC 8838). aiortc wants
:class:`~aiortc.RTCIceCandidate` values without the prefix. mDNS host candidates
(``<uuid>.local``) are passed on: aioice resolves them by multicast DNS, and a name
it cannot resolve only costs that one candidate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiortc import RTCIceCandidate, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

from signaling.protocol import ErrorCode, Event, HangupReason

from .errors import SignalingError

__all__ = [
    "PREFIX",
    "PUSHED_EVENTS",
    "EndOfCandidates",
    "ErrorCode",
    "Event",
    "HangupReason",
    "candidate_from_json",
    "candidate_from_line",
    "candidate_to_json",
    "description_from_json",
    "description_to_json",
    "parse_candidate",
]

PREFIX = "candidate:"
# a stand-in foundation for candidates that carry none (``candidate: 1 udp ...``)
EMPTY_FOUNDATION = "-"


# the hub -> client room events the peer handles (contract: "Hub -> client events")
PUSHED_EVENTS = (
    Event.OFFER,
    Event.ANSWER,
    Event.CANDIDATE,
    Event.HANGUP,
    Event.PEER_AWAY,
    Event.PEER_BACK,
)


@dataclass(frozen=True)
class EndOfCandidates:
    """End-of-candidates: for every m-section (``everything``) or for one m-section.

    ``mid`` / ``mline_index`` name the m-section of an empty-string candidate;
    ``ufrag`` its ICE generation, when the sender said it.
    """

    everything: bool = True
    mid: str | None = None
    mline_index: int | None = None
    ufrag: str | None = None

    def describe(self) -> str:
        if self.everything:
            return "end-of-candidates"
        where = f"mid {self.mid!r}" if self.mid is not None else f"m-line {self.mline_index}"
        return f"end-of-candidates for {where}"


def description_to_json(description: RTCSessionDescription) -> dict[str, str]:
    return {"type": description.type, "sdp": description.sdp}


def description_from_json(raw: Any, expected: str) -> RTCSessionDescription:
    """An ``RTCSessionDescriptionInit`` of type ``expected`` from the hub."""
    if (
        not isinstance(raw, dict)
        or raw.get("type") != expected
        or not isinstance(raw.get("sdp"), str)
    ):
        raise SignalingError(
            ErrorCode.INVALID,
            f'expected a description {{"type": "{expected}", "sdp": ...}}, got {raw!r:.80}',
        )
    return RTCSessionDescription(sdp=raw["sdp"], type=expected)


def candidate_to_json(candidate: RTCIceCandidate | None) -> dict[str, Any] | None:
    """The browser shape of ``candidate``; ``None`` stays ``None`` (end-of-candidates)."""
    if candidate is None:
        return None
    return {
        "candidate": PREFIX + candidate_to_sdp(candidate),
        "sdpMid": candidate.sdpMid,
        "sdpMLineIndex": candidate.sdpMLineIndex,
    }


def candidate_from_line(text: str) -> RTCIceCandidate:
    """One candidate attribute value (``candidate:`` prefix optional), RFC 8839 section 5.1.

    A missing foundation (``candidate: 1 udp ...``, sent by some stacks) is accepted:
    the foundation only groups candidates for freezing, so a stand-in does no harm.
    Raises :class:`SignalingError` (code ``invalid``) for a line aiortc cannot read.
    """
    body = text[len(PREFIX) :] if text.startswith(PREFIX) else text
    empty_foundation = body.startswith(" ")
    if empty_foundation:
        body = EMPTY_FOUNDATION + body
    try:
        candidate = candidate_from_sdp(body.strip())
    except (AssertionError, ValueError, IndexError) as exc:
        raise SignalingError(ErrorCode.INVALID, f"unreadable ICE candidate {text!r:.80}") from exc
    return candidate


def parse_candidate(raw: Any) -> RTCIceCandidate | EndOfCandidates:
    """Parse a browser ``RTCIceCandidateInit``, or ``null`` (end-of-candidates).

    Raises :class:`SignalingError` (code ``invalid``) for a shape or a
    candidate line aiortc cannot read.
    """
    if raw is None:
        return EndOfCandidates()
    if not isinstance(raw, dict) or not isinstance(raw.get("candidate"), str):
        raise SignalingError(
            ErrorCode.INVALID, f"expected an RTCIceCandidateInit or null, got {raw!r:.80}"
        )
    mid = raw.get("sdpMid")
    index = raw.get("sdpMLineIndex")
    ufrag = raw.get("usernameFragment")
    mid = mid if isinstance(mid, str) else None
    index = index if isinstance(index, int) and not isinstance(index, bool) else None
    text = raw["candidate"].strip()
    if not text:
        if mid is None and index is None:
            return EndOfCandidates()
        return EndOfCandidates(
            everything=False,
            mid=mid,
            mline_index=index,
            ufrag=ufrag if isinstance(ufrag, str) and ufrag else None,
        )
    candidate = candidate_from_line(text)
    candidate.sdpMid = mid
    candidate.sdpMLineIndex = index
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        candidate.sdpMLineIndex = 0  # BUNDLE: every m-line shares the first transport
    return candidate


def candidate_from_json(raw: Any) -> RTCIceCandidate | None:
    """Like :func:`parse_candidate`, with any end-of-candidates as ``None``."""
    parsed = parse_candidate(raw)
    return None if isinstance(parsed, EndOfCandidates) else parsed
