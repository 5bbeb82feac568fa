"""Sessions: a party's identity in its rooms, outliving the socket that carries it.

The contract's "Sessions and resume" rules (protocol v1.1), as a pure state
machine over :class:`~signaling.rooms.Rooms`: no sockets, no asyncio, no clock
read (``now`` is passed in). The adapter tells it which socket connected with
which ``auth`` and which socket went away; it answers with the socket-addressed
events to emit, in order.

- Each session numbers its hub→client room events 1, 2, 3... (``seq``) and keeps
  the last ones in a bounded replay log, so a client that resumes with
  ``lastSeq`` gets exactly what it missed, in order, once.
- Each session remembers the acks of its last :data:`ACK_MEMORY` numbered
  requests, within :data:`ACK_BYTES` of their text (the newest ack is always
  kept): a retried request is answered from memory (``duplicate: true``) and
  never run twice; one the memory no longer holds (or never processed) gets ``stale``.
- A session in a room whose socket goes away without ``hangup`` is *away* for the
  grace period: its rooms stay, the other party hears ``peer_away`` then
  ``peer_back``, and events for it wait in its log (at most the per-room limit
  of held candidates; past that the room ends with ``peer_left``).

Rooms know parties by :attr:`Session.key`, a short id derived from the secret
token: safe in logs, useless for taking a session over.
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .protocol import ErrorCode, Event, HangupReason, SignalingError
from .rooms import Outcome, Payload, Rooms, Send

ACK_MEMORY = 64  # acks kept per session for retried requests (contract: at least 64)
ACK_BYTES = 256 * 1024  # rough cap on the text those acks keep (an offer, candidates, a lobby)
TOKEN_BYTES = 18  # 144 random bits (contract: at least 128)
MAX_SEQ = 2**53  # the highest seq accepted: within what a browser's JSON numbers hold exactly
ENDED_MEMORY = 10_000  # ended sessions remembered, to answer "expired" rather than "unknown"
RESERVE_EVENTS = 8  # log room per room beyond its candidates: offer, answer, away/back, hangup
LOG_BYTES = 2 * 1024 * 1024  # rough cap on a replay log's SDP and candidate text
EVENT_OVERHEAD = 64  # bytes counted per logged event besides its SDP or candidate text


class ResumeError(StrEnum):
    UNKNOWN = "unknown"
    EXPIRED = "expired"


class Ended(StrEnum):
    """Why a session ended: a resume of it is ``expired``, and ``resumeMessage`` says why."""

    NO_ROOM = "no_room"
    LEFT = "left"
    NO_GRACE = "no_grace"
    GRACE_OVER = "grace_over"
    BYE = "bye"
    GAP = "gap"


def resume_message(error: ResumeError, ended: Ended | None, grace: float) -> str:
    """The sentence sent with ``resumeError``: what happened to the session, what now."""
    if error is ResumeError.UNKNOWN:
        return (
            "this hub has no record of that session (the hub restarted, it ended long ago, "
            "or it was never issued); you are connected as a new session"
        )
    why = {
        Ended.NO_ROOM: "nothing to resume: the session was in no room when its connection "
        "closed, so it ended with it",
        Ended.LEFT: "the session ended when its client disconnected on purpose",
        Ended.NO_GRACE: "the session ended with its connection: this hub keeps no session "
        "after a disconnect (--resume-grace 0)",
        Ended.GRACE_OVER: f"the session's rooms were kept for {grace:g} s after its "
        "connection closed (--resume-grace) and it was not resumed in time",
        Ended.BYE: "the session was ended by its own bye",
        Ended.GAP: "events after your lastSeq are no longer kept, so the session's rooms "
        "could not be resumed without a gap and have ended",
        None: "the session has ended",
    }[ended]
    return f"{why}; you are connected as a new session, in no room"


def new_session_token() -> str:
    """A session's secret: :data:`TOKEN_BYTES` random bytes, URL-safe."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def session_key(token: str) -> str:
    """The loggable id of a session: a digest prefix, not the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Emit(Send):
    """A :class:`Send` addressed to a socket (``to`` is a sid), not to a session."""


@dataclass(slots=True)
class Session:
    token: str = field(repr=False)
    key: str
    log_limit: int
    socket: str | None = None
    seq: int = 0
    log: deque[tuple[int, str, Payload]] = field(default_factory=deque)
    log_bytes: int = 0
    last_request: int = 0
    acks: OrderedDict[int, Payload] = field(default_factory=OrderedDict)
    ack_bytes: int = 0
    ack_costs: dict[int, int] = field(default_factory=dict)
    away_since: float | None = None
    queued: dict[str, int] = field(default_factory=dict)  # room -> events queued while away

    @property
    def away(self) -> bool:
        return self.away_since is not None


@dataclass(slots=True)
class Connected:
    """What a connect resolved to: the session, and what to send around it."""

    session: Session
    resumed: bool
    resume_error: ResumeError | None = None
    ended: Ended | None = None  # with resume_error EXPIRED: why the session had ended
    replay: list[Emit] = field(default_factory=list)  # to the new socket, right after welcome
    others: list[Emit] = field(default_factory=list)  # peer_back, hangups of a gap
    kicked: str | None = None  # an older socket of this session, to disconnect


class Sessions:
    """Every session of one hub, on top of its room core."""

    def __init__(
        self,
        rooms: Rooms,
        grace: float,
        new_token: Callable[[], str] = new_session_token,
    ) -> None:
        self.rooms = rooms
        self.grace = grace
        self._new_token = new_token
        self._by_token: dict[str, Session] = {}
        self._by_key: dict[str, Session] = {}
        self._by_socket: dict[str, Session] = {}
        self._ended: OrderedDict[str, Ended] = OrderedDict()  # keys of sessions that ended
        self._away: dict[str, Session] = {}  # key -> session, oldest away first
        limits = rooms.limits
        self.queue_limit = limits.max_candidates
        self.log_limit = limits.max_rooms_per_socket * (limits.max_candidates + RESERVE_EVENTS)

    def set_new_token(self, new_token: Callable[[], str]) -> None:
        self._new_token = new_token

    def __getstate__(self) -> dict[str, Any]:
        """A snapshot holds the state, not the token source (a hub's own method)."""
        state = dict(self.__dict__)
        state["_new_token"] = None
        return state

    # -- sockets -----------------------------------------------------------

    def connect(
        self,
        socket: str,
        token: str | None,
        last_seq: int,
        name: str | None,
        now: float,
    ) -> Connected:
        """Attach ``socket`` to the session ``token`` names, or to a new one.

        Raises ``ValueError`` (a sentence, nothing changed) when ``last_seq`` is above
        the highest seq the session was ever sent: a client that claims events it
        never got would drop the new ones that take those numbers.
        """
        session = self._by_token.get(token) if token is not None else None
        if session is not None and last_seq > session.seq:
            raise ValueError(
                f"auth.lastSeq {last_seq} is above the highest seq this session has been "
                f"sent ({session.seq}); send the highest seq you processed (0 when none)"
            )
        if session is None:
            error = ended = None
            if token is not None:
                ended = self._ended.get(session_key(token))
                error = ResumeError.UNKNOWN if ended is None else ResumeError.EXPIRED
            return Connected(self._open(socket, name), False, error, ended)
        connected = Connected(session, True)
        if session.socket is not None:
            connected.kicked = session.socket
            del self._by_socket[session.socket]
        session.socket = socket
        self._by_socket[socket] = session
        oldest = session.log[0][0] if session.log else session.seq + 1
        if last_seq < oldest - 1:
            # The client missed events the log no longer has: its rooms cannot be
            # made whole, so they end, and it starts again as a new session.
            connected.others = self._end(session, HangupReason.PEER_LEFT, Ended.GAP)
            connected.resumed = False
            connected.resume_error = ResumeError.EXPIRED
            connected.ended = Ended.GAP
            connected.session = self._open(socket, name)
            return connected
        connected.replay = [Emit(socket, e, p) for s, e, p in session.log if s > last_seq]
        if session.away:
            session.away_since = None
            session.queued.clear()
            self._away.pop(session.key, None)
            connected.others = self._tell_others(session, Event.PEER_BACK)
        return connected

    def disconnect(self, socket: str, now: float, *, leaving: bool) -> list[Emit]:
        """``socket`` is gone. ``leaving``: the client closed it on purpose, or grace is 0."""
        session = self._by_socket.pop(socket, None)
        if session is None or session.socket != socket:
            return []  # taken over by a newer socket, or already ended
        session.socket = None
        if leaving or self.grace <= 0 or not self.rooms.rooms_of(session.key):
            # a session with no room has nothing to keep (contract: it ends on "hangup
            # of all its rooms plus a client disconnect")
            if leaving:
                why = Ended.LEFT
            elif not self.rooms.rooms_of(session.key):
                why = Ended.NO_ROOM
            else:
                why = Ended.NO_GRACE
            return self._end(session, HangupReason.PEER_LEFT, why)
        session.away_since = now
        self._away[session.key] = session
        return self._tell_others(session, Event.PEER_AWAY)

    def bye(self, socket: str, name: str | None) -> tuple[Session, list[Emit]]:
        """End the socket's session and its rooms at once; the socket gets a fresh one."""
        session = self._session_of(socket)
        emits = self._end(session, HangupReason.PEER_LEFT, Ended.BYE)
        return self._open(socket, name), emits

    def expire(self, now: float) -> list[Emit]:
        """End away sessions whose grace is over, and rooms whose offer TTL is over."""
        emits: list[Emit] = []
        deadline = now - self.grace
        for session in list(self._away.values()):  # in the order they went away
            if session.away_since is None or session.away_since > deadline:
                break
            emits.extend(self._end(session, HangupReason.PEER_LEFT, Ended.GRACE_OVER))
        emits.extend(self.deliver(self.rooms.expire(now)))
        return emits

    # -- requests ----------------------------------------------------------

    def request(
        self, socket: str, seq: int | None, run: Callable[[Session], Outcome]
    ) -> tuple[Payload, list[Emit]]:
        """Run one request of ``socket``'s session once; a retry gets the first ack."""
        session = self._session_of(socket)
        if seq is not None and seq <= session.last_request:
            first = session.acks.get(seq)
            if first is None:
                raise SignalingError(ErrorCode.STALE, _stale_message(session, seq))
            return {**first, "duplicate": True}, []
        try:
            outcome = run(session)
        except SignalingError as exc:
            outcome = Outcome(exc.to_ack())
        if seq is not None:
            session.last_request = seq
            _remember(session, seq, outcome.ack)
        return outcome.ack, self.deliver(outcome.sends)

    def deliver(self, sends: list[Send]) -> list[Emit]:
        """Number and log each room event; the ones for attached sessions go out now."""
        emits: list[Emit] = []
        pending = deque(sends)
        while pending:
            send = pending.popleft()
            session = self._by_key.get(send.to)
            if session is None:
                continue
            room = send.payload.get("room")
            if session.away and send.event != Event.HANGUP and isinstance(room, str):
                count = session.queued.get(room, 0) + 1
                session.queued[room] = count
                if count > self.queue_limit:
                    # Too much waits for a party that is away: end the room for both.
                    pending.extend(self.rooms.end(room, None, HangupReason.PEER_LEFT))
                    continue
            emit = self._stamp(session, send.event, send.payload)
            if emit is not None:
                emits.append(emit)
        return emits

    # -- introspection -----------------------------------------------------

    def of_socket(self, socket: str) -> Session | None:
        return self._by_socket.get(socket)

    def of_key(self, key: str) -> Session | None:
        return self._by_key.get(key)

    def __len__(self) -> int:
        return len(self._by_token)

    @property
    def socket_count(self) -> int:
        return len(self._by_socket)

    @property
    def away_count(self) -> int:
        return len(self._away)

    # -- internals ---------------------------------------------------------

    def _session_of(self, socket: str) -> Session:
        session = self._by_socket.get(socket)
        if session is None:
            # a late packet from a socket whose session a newer connection took over
            raise SignalingError(
                ErrorCode.NOT_IN_ROOM,
                "this connection's session was taken over by a newer connection; "
                "send requests on that one",
            )
        return session

    def _open(self, socket: str, name: str | None) -> Session:
        token = self._new_token()
        session = Session(token, session_key(token), self.log_limit, socket)
        self._by_token[token] = session
        self._by_key[session.key] = session
        self._by_socket[socket] = session
        self.rooms.connect(session.key, name)
        return session

    def _end(self, session: Session, reason: HangupReason, why: Ended) -> list[Emit]:
        """Free the session; its rooms end, the other parties hear ``reason``."""
        self._by_token.pop(session.token, None)
        self._by_key.pop(session.key, None)
        self._away.pop(session.key, None)
        if session.socket is not None:
            self._by_socket.pop(session.socket, None)
        self._ended[session.key] = why
        if len(self._ended) > ENDED_MEMORY:
            self._ended.popitem(last=False)
        return self.deliver(self.rooms.disconnect(session.key, reason))

    def _tell_others(self, session: Session, event: Event) -> list[Emit]:
        sends = []
        for name in sorted(self.rooms.rooms_of(session.key)):
            room = self.rooms.get(name)
            other = room.other(session.key) if room is not None else None
            if other is not None:
                sends.append(Send(other, event, {"room": name}))
        return self.deliver(sends)

    def _stamp(self, session: Session, event: str, payload: Payload) -> Emit | None:
        session.seq += 1
        payload["seq"] = session.seq
        session.log.append((session.seq, event, payload))
        session.log_bytes += _cost(payload)
        while len(session.log) > session.log_limit or (
            session.log_bytes > LOG_BYTES and len(session.log) > 1
        ):
            # A resume from before what is left fails plainly (see connect): never a gap.
            session.log_bytes -= _cost(session.log.popleft()[2])
        if session.socket is None:
            return None
        return Emit(session.socket, event, payload)


def _remember(session: Session, seq: int, ack: Payload) -> None:
    """Keep ``ack`` for a retry of ``seq``; forget the oldest past the count or byte cap."""
    cost = _size(ack)
    session.acks[seq] = ack
    session.ack_costs[seq] = cost
    session.ack_bytes += cost
    while len(session.acks) > ACK_MEMORY or (
        session.ack_bytes > ACK_BYTES and len(session.acks) > 1
    ):
        old, _ = session.acks.popitem(last=False)
        session.ack_bytes -= session.ack_costs.pop(old)


def _stale_message(session: Session, seq: int) -> str:
    oldest = next(iter(session.acks), None)
    if oldest is not None and seq > oldest:
        why = "it was never processed (that seq was skipped)"
    else:
        why = (
            "it was never processed, or its ack is no longer remembered (the hub keeps the "
            f"acks of the last {ACK_MEMORY} requests, within {ACK_BYTES // 1024} KiB)"
        )
    return (
        f"request seq {seq} is not above the highest seq this session has processed "
        f"({session.last_request}) and the hub has no ack for it: {why}; "
        "send new requests with a higher seq"
    )


def _size(value: Any) -> int:
    """Roughly how many bytes ``value`` (a JSON-like ack) keeps alive."""
    if isinstance(value, str):
        return len(value) + 8
    if isinstance(value, dict):
        return EVENT_OVERHEAD + sum(len(k) + _size(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return 8 + sum(_size(v) for v in value)
    return 8


def _cost(payload: Payload) -> int:
    """What one logged event keeps alive, roughly: its SDP or candidate text."""
    description = payload.get("description")
    if isinstance(description, dict):
        return EVENT_OVERHEAD + len(description.get("sdp", ""))
    candidate = payload.get("candidate")
    if isinstance(candidate, dict):
        return EVENT_OVERHEAD + len(candidate.get("candidate", ""))
    return EVENT_OVERHEAD


def parse_resume(auth: dict[str, Any]) -> tuple[str | None, int]:
    """``auth.session`` and ``auth.lastSeq`` of a connect; raises ``ValueError`` with a sentence."""
    token = auth.get("session")
    if token is not None and not isinstance(token, str):
        raise ValueError("auth.session must be the string a welcome gave (or absent)")
    # A string the hub never issued (any length: the message size bounds it) is an
    # unknown session, answered as the contract says, not a refused connect.
    last_seq = auth.get("lastSeq", 0)
    if last_seq is None:
        last_seq = 0
    if isinstance(last_seq, bool) or not isinstance(last_seq, int) or not 0 <= last_seq <= MAX_SEQ:
        raise ValueError(
            "auth.lastSeq must be an integer from 0 to 2^53 (the highest seq processed), "
            f"got {last_seq!r:.40}"
        )
    return token, last_seq


def parse_request_seq(payload: dict[str, Any], event: str) -> int | None:
    """A request's optional ``seq``: a positive integer, increasing per session."""
    seq = payload.get("seq")
    if seq is None:
        return None
    if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
        raise SignalingError(
            ErrorCode.INVALID,
            f"{event}: seq must be a positive integer (increasing per session), got {seq!r:.40}",
        )
    return seq
