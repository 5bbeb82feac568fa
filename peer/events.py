"""What can happen to a call, as typed values: the inbox of :class:`peer.call.Call`.

The hub's pushed events, the connection's state changes, a local hang-up and the loss
of the hub all become one of these, so the call handles them with one ``match`` in
arrival order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .protocol import Event, HangupReason
from .signaling import DISCONNECT, RESUMED, SESSION_LOST, Pushed


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
    """The hub link is gone for good (no reconnect: the session moved to another socket)."""

    reason: str


@dataclass(frozen=True)
class HubReconnecting:
    """The hub link dropped; the client reconnects and resumes by itself."""

    reason: str


@dataclass(frozen=True)
class HubResumed:
    """The session was resumed: whatever the hub relayed meanwhile follows, once, in order."""


@dataclass(frozen=True)
class SessionGone:
    """A reconnect could not resume the session (``unknown``: hub restart; ``expired``)."""

    reason: str


@dataclass(frozen=True)
class PeerAway:
    """The other party's hub link dropped; it may come back within the hub's grace."""


@dataclass(frozen=True)
class PeerBack:
    """The other party resumed its session."""


CallEvent = (
    OfferArrived
    | AnswerArrived
    | CandidateArrived
    | RemoteHangup
    | ConnectionChanged
    | HangupRequested
    | HubLost
    | HubReconnecting
    | HubResumed
    | SessionGone
    | PeerAway
    | PeerBack
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
        case HubReconnecting():
            return "a dropped hub connection"
        case HubResumed():
            return "the resumed hub session"
        case SessionGone(reason):
            return f"the hub session lost ({reason})"
        case PeerAway():
            return "the other side's dropped hub connection"
        case PeerBack():
            return "the other side's resumed hub session"


def from_hub(item: Pushed, room: str) -> CallEvent | None:
    """The call event for one pushed hub event; ``None`` for another room's or unknown."""
    payload = item.payload
    if item.event == DISCONNECT:
        reason = str(payload.get("reason", ""))
        return HubReconnecting(reason) if payload.get("reconnecting") else HubLost(reason)
    if item.event == RESUMED:
        return HubResumed()
    if item.event == SESSION_LOST:
        return SessionGone(str(payload.get("reason", "unknown")))
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
        case Event.PEER_AWAY:
            return PeerAway()
        case Event.PEER_BACK:
            return PeerBack()
    return None
