"""Conversions between aiortc objects and the browser JSON shapes on the wire.

Browsers send ``RTCIceCandidateInit`` objects whose ``candidate`` string starts
with ``candidate:``; an empty string or ``null`` means end-of-candidates. aiortc
wants :class:`~aiortc.RTCIceCandidate` values without the prefix. mDNS host
candidates (``<uuid>.local``) are passed on: aioice resolves them by multicast
DNS, and a name it cannot resolve only costs that one candidate.
"""

from __future__ import annotations

from typing import Any

from aiortc import RTCIceCandidate, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp, candidate_to_sdp

from .errors import SignalingError

PREFIX = "candidate:"


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
            "invalid",
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


def candidate_from_json(raw: Any) -> RTCIceCandidate | None:
    """Parse a browser ``RTCIceCandidateInit``; ``None`` means end-of-candidates.

    Raises :class:`SignalingError` (code ``invalid``) for a shape or a
    candidate line aiortc cannot read.
    """
    if raw is None:
        return None
    if not isinstance(raw, dict) or not isinstance(raw.get("candidate"), str):
        raise SignalingError("invalid", f"expected an RTCIceCandidateInit or null, got {raw!r:.80}")
    text = raw["candidate"].strip()
    if not text:
        return None
    if text.startswith(PREFIX):
        text = text[len(PREFIX) :]
    try:
        candidate = candidate_from_sdp(text)
    except (AssertionError, ValueError, IndexError) as exc:
        raise SignalingError("invalid", f"unreadable ICE candidate {text!r:.80}") from exc
    mid = raw.get("sdpMid")
    index = raw.get("sdpMLineIndex")
    candidate.sdpMid = mid if isinstance(mid, str) else None
    candidate.sdpMLineIndex = index if isinstance(index, int) else None
    if candidate.sdpMid is None and candidate.sdpMLineIndex is None:
        candidate.sdpMLineIndex = 0  # BUNDLE: every m-line shares the first transport
    return candidate
