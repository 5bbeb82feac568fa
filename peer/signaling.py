"""Signaling client: the peer's side of the hub's Socket.IO contract, with resume.

Requests are acks turned into return values or :mod:`peer.errors` exceptions.
Events the hub pushes (``offer``, ``answer``, ``candidate``, ``hangup``,
``peer_away``, ``peer_back``) land in one :class:`asyncio.Queue` in arrival order:
python-socketio starts one task per incoming message, in arrival order, and our
handlers are plain functions that enqueue without awaiting, so each message is
queued by the first step of its task, before the next task runs.

Resume (contract v1.1 "Sessions and resume"): when the connection drops, the
Socket.IO client reconnects by itself (exponential backoff with jitter) and
presents the session and the highest room-event ``seq`` processed; the hub
replays what was missed. Every request carries a ``seq``; requests whose ack
never came are sent again, in order, once the session is resumed (the hub
answers a repeat from memory and never runs it twice). Connection changes are
pushed too: ``disconnect`` (reconnecting), ``resumed``, and ``session_lost``
when the hub could not resume the session (its rooms are gone).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import socketio

from .diagnose import why_connect_failed
from .errors import HubUnreachable, SessionLost, SignalingError, Unauthorized, signaling_error
from .protocol import PUSHED_EVENTS, ErrorCode, Event

log = logging.getLogger(__name__)

# Not wire events: the client's own notes about its hub link, pushed like hub events.
DISCONNECT = "disconnect"  # the connection dropped (``reconnecting`` says if it retries)
RESUMED = "resumed"  # a reconnect resumed the session: nothing was lost
SESSION_LOST = "session_lost"  # a reconnect could not resume it: its rooms are gone
RECONNECT_DELAY = 0.5  # first retry after ~0.5 s, doubling up to RECONNECT_DELAY_MAX
RECONNECT_DELAY_MAX = 4.0
RECONNECT_JITTER = 0.5  # python-socketio's randomization factor: +-50 % of each delay


@dataclass(frozen=True)
class Welcome:
    """What the hub sends right after connect."""

    sid: str
    ice_servers: list[dict[str, Any]]
    limits: dict[str, Any] = field(default_factory=dict)
    session: str | None = field(default=None, repr=False)
    resumed: bool = False
    resume_error: str | None = None


@dataclass(frozen=True)
class Pushed:
    """One event for the call: a room event (``PUSHED_EVENTS``) or a note about the link."""

    event: str
    payload: dict[str, Any]


@dataclass
class _Request:
    event: str
    payload: dict[str, Any]
    done: asyncio.Future[Any]


class SignalingClient:
    """One party's connection to the hub: websocket only, reconnecting unless told not to."""

    def __init__(
        self,
        url: str,
        *,
        name: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        reconnect: bool = True,
    ) -> None:
        self.url = url
        self.name = name
        self.token = token
        self.timeout = timeout
        self.reconnect = reconnect
        self.events: asyncio.Queue[Pushed] = asyncio.Queue()
        self._subscriber: Callable[[Pushed], None] | None = None
        self.welcome: Welcome | None = None
        self.session: str | None = None
        self.last_seq = 0  # highest room-event seq processed
        self.resumes = 0
        self._loop = asyncio.get_running_loop()
        self._welcome: asyncio.Future[Welcome] = self._loop.create_future()
        self._refused: str | None = None
        self._refused_because: str | None = None  # the hub's sentence with its refusal
        self._request_seq = 0
        self._unacked: OrderedDict[int, _Request] = OrderedDict()
        self._ready = asyncio.Event()  # connected and every unacked request re-sent
        self._resend: asyncio.Task[None] | None = None
        self._closing = False
        self.sio = socketio.AsyncClient(
            reconnection=reconnect,
            reconnection_delay=RECONNECT_DELAY,
            reconnection_delay_max=RECONNECT_DELAY_MAX,
            randomization_factor=RECONNECT_JITTER,
            logger=False,
            engineio_logger=False,
        )
        self.sio.on(Event.WELCOME, self._on_welcome)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", self._on_disconnect)
        for event in PUSHED_EVENTS:
            self.sio.on(event, self._pusher(event))

    def subscribe(self, subscriber: Callable[[Pushed], None]) -> None:
        """Deliver pushed events to ``subscriber`` (queued ones first) instead of ``events``.

        ``subscriber`` is called synchronously, in arrival order, and must not block.
        """
        self._subscriber = subscriber
        while not self.events.empty():
            subscriber(self.events.get_nowait())

    def _deliver(self, item: Pushed) -> None:
        if self._subscriber is not None:
            self._subscriber(item)
        else:
            self.events.put_nowait(item)

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    @property
    def grace(self) -> float:
        limits = self.welcome.limits if self.welcome is not None else {}
        value = limits.get("resumeGraceSeconds", 0)
        return float(value) if isinstance(value, int | float) else 0.0

    # -- handlers (sync: they must not yield, see module docstring) --------

    def _pusher(self, event: str) -> Any:
        def push(payload: Any = None) -> None:
            if not isinstance(payload, dict):
                log.warning("hub sent %s with a non-object payload; ignored", event)
                return
            seq = payload.get("seq")
            if isinstance(seq, int):
                if seq <= self.last_seq:
                    return  # already processed (a replay overlapping what arrived)
                self.last_seq = seq
            self._deliver(Pushed(event, payload))

        return push

    def _auth(self) -> dict[str, Any]:
        auth: dict[str, Any] = {}
        if self.name:
            auth["name"] = self.name
        if self.token:
            auth["token"] = self.token
        if self.session is not None:
            auth["session"] = self.session
            auth["lastSeq"] = self.last_seq
        return auth

    def _on_welcome(self, payload: Any) -> None:
        if not isinstance(payload, dict):
            return
        ice = payload.get("iceServers")
        session = payload.get("session")
        welcome = Welcome(
            sid=str(payload.get("sid", "")),
            ice_servers=list(ice) if isinstance(ice, list) else [],
            limits=payload.get("limits") or {},
            session=session if isinstance(session, str) else None,
            resumed=payload.get("resumed") is True,
            resume_error=payload.get("resumeError"),
        )
        first = self.welcome is None
        self.welcome = welcome
        if not self._welcome.done():
            self._welcome.set_result(welcome)
        if first:
            self.session = welcome.session
            self._ready.set()
            return
        if welcome.resumed:
            self.resumes += 1
            log.info("resumed the hub session at %s after seq %d", self.url, self.last_seq)
            self._resend = self._loop.create_task(self._resend_unacked(), name="signaling-resend")
            self._deliver(Pushed(RESUMED, {}))
            return
        reason = str(welcome.resume_error or "unknown")
        log.warning("the hub could not resume the session (%s): its rooms are gone", reason)
        self.session = welcome.session
        self.last_seq = 0
        self._request_seq = 0
        lost, self._unacked = self._unacked, OrderedDict()
        for request in lost.values():
            if not request.done.done():
                request.done.set_exception(
                    SessionLost(f"the hub lost this session ({reason}) during {request.event}")
                )
        self._ready.set()
        self._deliver(Pushed(SESSION_LOST, {"reason": reason}))

    def _on_connect_error(self, data: Any = None) -> None:
        # the hub refuses with ConnectionRefusedError(code, sentence): {"message": code,
        # "data": sentence}; the sentence says what it accepts
        self._refused = data.get("message") if isinstance(data, dict) else str(data)
        said = data.get("data") if isinstance(data, dict) else None
        self._refused_because = said if isinstance(said, str) else None

    def _on_disconnect(self, reason: Any = None) -> None:
        self._ready.clear()
        if self._closing:
            return
        # the hub disconnects a socket on purpose only when a newer one took its session
        # over; python-socketio does not reconnect after that, and must not
        will_retry = self.reconnect and reason != self.sio.reason.SERVER_DISCONNECT
        log.info("hub connection closed (%s)%s", reason, "; reconnecting" if will_retry else "")
        self._deliver(Pushed(DISCONNECT, {"reason": str(reason), "reconnecting": will_retry}))

    async def _resend_unacked(self) -> None:
        """Send again, in seq order, every request whose ack never came; then go live."""
        sent = 0
        while True:
            pending = [seq for seq in self._unacked if seq > sent]
            if not pending:
                break
            sent = pending[0]
            request = self._unacked[sent]
            log.info("re-sending %s seq=%d after the resume", request.event, sent)
            await self._emit(sent, request)
        self._ready.set()

    # -- connection --------------------------------------------------------

    async def connect(self) -> Welcome:
        """Connect and wait for ``welcome``; raise ``Unauthorized``/``HubUnreachable``."""
        try:
            # python-socketio's wait_timeout covers only the wait after the handshake: a
            # server that accepts TCP and never answers (a stopped hub) would hang here
            async with asyncio.timeout(self.timeout):
                await self.sio.connect(
                    self.url, auth=self._auth, transports=["websocket"], wait_timeout=self.timeout
                )
        except TimeoutError:
            await self._drop()
            raise HubUnreachable(
                f"the server at {self.url} took the connection but did not answer within "
                f"{self.timeout:g} s; is the hub stopped or overloaded? check --server"
            ) from None
        except aiohttp.ClientError as exc:  # not a socketio ConnectionError: not HTTP at all
            await self._drop()
            raise HubUnreachable(
                f"{self.url} did not answer as a web server ({type(exc).__name__}): "
                "it is not a p2pcall hub (check --server)"
            ) from None
        except socketio.exceptions.ConnectionError as exc:
            await self._drop()
            if self._refused == ErrorCode.UNAUTHORIZED and not self.token:
                raise Unauthorized(
                    f"hub {self.url} needs an access token and none was given "
                    "(--token / PEER_TOKEN)"
                ) from None
            if self._refused == ErrorCode.UNAUTHORIZED:
                raise Unauthorized(f"hub {self.url} refused the access token (--token)") from None
            if self._refused == ErrorCode.INVALID:
                said = self._refused_because or "auth.name"
                what = "the name (--name)" if "auth.name" in said else "the connect"
                raise SignalingError(
                    ErrorCode.INVALID, f"hub {self.url} refused {what}: {said}"
                ) from None
            if self._refused == ErrorCode.LIMIT:
                raise SignalingError(
                    ErrorCode.LIMIT,
                    f"hub {self.url} refused the connect: {self._refused_because or 'limit'}",
                ) from None
            why = await why_connect_failed(self.url, self.timeout)
            if why is not None:
                raise HubUnreachable(why) from None
            raise HubUnreachable(
                f"cannot reach the hub at {self.url} ({exc}); is it running? check --server"
            ) from None
        try:
            welcome: Welcome = await asyncio.wait_for(asyncio.shield(self._welcome), self.timeout)
        except TimeoutError:
            await self._drop()
            raise HubUnreachable(
                f"hub {self.url} sent no welcome within {self.timeout} s"
            ) from None
        log.info("connected to %s as sid=%s", self.url, welcome.sid)
        return welcome

    async def _drop(self) -> None:
        self._closing = True
        try:
            await self.sio.disconnect()
        except Exception:  # already gone; nothing to release
            log.debug("disconnect after failure raised", exc_info=True)
        # python-engineio closes its aiohttp session only when a connected client
        # disconnects: after a failed connect it stays open ("Unclosed client session")
        http = getattr(self.sio.eio, "http", None)
        if isinstance(http, aiohttp.ClientSession) and not http.closed:
            await http.close()

    async def close(self) -> None:
        """End the session at once (``bye``, so nobody waits out a grace) and disconnect."""
        if self._ready.is_set():
            try:
                await self.sio.call(Event.BYE, {}, timeout=min(self.timeout, 2.0))
            except Exception:  # best effort: the hub may be gone already
                log.debug("bye got no reply", exc_info=True)
        self._closing = True
        if self._resend is not None:
            self._resend.cancel()
        pending, self._unacked = self._unacked, OrderedDict()
        for request in pending.values():
            if not request.done.done():
                request.done.set_exception(
                    HubUnreachable(f"the client closed before the hub answered {request.event}")
                )
        await self.sio.shutdown()

    # -- requests ----------------------------------------------------------

    async def _emit(self, seq: int, request: _Request) -> None:
        def on_ack(*args: Any) -> None:
            done = self._unacked.pop(seq, None)
            if done is not None and not done.done.done():
                done.done.set_result(args[0] if args else None)

        try:
            await self.sio.emit(request.event, request.payload, callback=on_ack)
        except socketio.exceptions.BadNamespaceError:
            pass  # dropped meanwhile: re-sent after the resume

    async def request(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one numbered request; return the success ack or raise.

        Waits through a reconnect: the request is sent again after the resume. Gives
        up after ``timeout`` plus the hub's grace (``HubUnreachable``), or when the hub
        could not resume the session (``SessionLost``).
        """
        if self.welcome is None or self._closing:
            raise HubUnreachable(f"not connected to the hub at {self.url}")
        self._request_seq += 1
        seq = self._request_seq
        request = _Request(event, {**payload, "seq": seq}, self._loop.create_future())
        self._unacked[seq] = request
        if self._ready.is_set():
            await self._emit(seq, request)
        try:
            ack = await asyncio.wait_for(asyncio.shield(request.done), self.timeout + self.grace)
        except TimeoutError:
            self._unacked.pop(seq, None)
            raise HubUnreachable(f"hub gave no reply to {event} within {self.timeout} s") from None
        if not isinstance(ack, dict):
            raise SignalingError(ErrorCode.INVALID, f"hub replied to {event} with {ack!r:.80}")
        if ack.get("ok") is True:
            return ack
        error = ack.get("error") or {}
        raise signaling_error(str(error.get("code")), str(error.get("message", "")))

    async def offer(
        self, room: str, description: dict[str, str], *, private: bool = False
    ) -> dict[str, Any]:
        """``private``: keep the room out of the hub's lobby (a ``--room new`` room)."""
        payload: dict[str, Any] = {"room": room, "description": description}
        if private:
            payload["private"] = True
        return await self.request(Event.OFFER, payload)

    async def join(self, room: str) -> dict[str, Any]:
        return await self.request(Event.JOIN, {"room": room})

    async def answer(self, room: str, description: dict[str, str]) -> dict[str, Any]:
        return await self.request(Event.ANSWER, {"room": room, "description": description})

    async def candidate(self, room: str, candidate: dict[str, Any] | None) -> dict[str, Any]:
        return await self.request(Event.CANDIDATE, {"room": room, "candidate": candidate})

    async def hangup(self, room: str) -> dict[str, Any]:
        return await self.request(Event.HANGUP, {"room": room})

    async def rooms(self) -> list[dict[str, Any]]:
        ack = await self.request(Event.ROOMS, {})
        return list(ack.get("rooms", []))
