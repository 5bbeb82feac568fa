"""What can happen to a call, as typed values: the inbox of :class:`peer.call.Call`.

The hub's pushed events, the connection's state changes, a local hang-up and the loss
of the hub all become one of these, so the call handles them with one ``match`` in
arrival order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .protocol import Event, HangupReason
from .signaling import DISCONNECT, Pushed


@dataclass(frozen=True)
class OfferArrived:
    """The caller's offer (``description``) and the candidates the hub held with it."""

    description: Any
    candidates: tuple[Any, ...] = ()


@dataclass(frozen=True)
class AnswerArrived:
    description: Any


@dataclass(frozen=True)
class CandidateArrived:
    """A trickled ``RTCIceCandidateInit``, or ``None`` (end-of-candidates)."""

    candidate: Any


@dataclass(frozen=True)
class RemoteHangup:
    reason: str


@dataclass(frozen=True)
class ConnectionChanged:
    """``RTCPeerConnection.connectionState`` changed to ``state``."""

    state: str


@dataclass(frozen=True)
class HangupRequested:
    """This side hangs up (Ctrl-C, a closed window, ``--duration``, the library)."""

    reason: str


@dataclass(frozen=True)
class HubLost:
    reason: str


CallEvent = (
    OfferArrived
    | AnswerArrived
    | CandidateArrived
    | RemoteHangup
    | ConnectionChanged
    | HangupRequested
    | HubLost
)


def describe(event: CallEvent) -> str:
    """How an error message names the event it was handling."""
    match event:
        case OfferArrived():
            return "the caller's offer"
        case AnswerArrived():
            return "the answerer's answer"
        case CandidateArrived():
            return "a remote ICE candidate"
        case RemoteHangup(reason):
            return f"the other side's hang-up ({reason})"
        case ConnectionChanged(state):
            return f"the connection state {state!r}"
        case HangupRequested(reason):
            return f"a local hang-up ({reason})"
        case HubLost():
            return "the loss of the hub"


def from_hub(item: Pushed, room: str) -> CallEvent | None:
    """The call event for one pushed hub event; ``None`` for another room's or unknown."""
    payload = item.payload
    if item.event == DISCONNECT:
        return HubLost(str(payload.get("reason", "")))
    if payload.get("room") != room:
        return None
    match item.event:
        case Event.OFFER:
            raw = payload.get("candidates")
            candidates = tuple(raw) if isinstance(raw, list) else ()
            return OfferArrived(payload.get("description"), candidates)
        case Event.ANSWER:
            return AnswerArrived(payload.get("description"))
        case Event.CANDIDATE:
            return CandidateArrived(payload.get("candidate"))
        case Event.HANGUP:
            return RemoteHangup(str(payload.get("reason", HangupReason.HANGUP)))
    return None
