"""The stock transport: the hub served through python-socketio's public API only.

The lean transport (ordered.py, engine.py, fastws.py, manager.py) overrides private
methods of python-socketio and python-engineio; when the installed versions are not
the ones it was written for (``transport.lean_mismatch()``), or ``--transport stock``
asks for it, this server takes its place. Same wire behaviour, same Hub interface
(``send_now``, ``backlogged``, ``set_on_shed``, ``shed_stuck_senders``, ``close_all``,
``is_client_disconnect``), fewer limits: see "With --transport stock" in
docs/security.md.

Order comes from the code, not from scheduling: ``async_handlers=False`` runs each
socket's events one after another in its read loop, every send goes through one FIFO
outbox drained by one sender task, and an event's ack is held until everything that
event queued has been handed to Engine.IO.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import socketio
from aiohttp import WSMessage, WSMsgType, web

from .guards import RateLimitedWarning
from .transport import (
    NAMESPACE,
    Deferred,
    Dispatch,
    MalformedPacket,
    OneSidEmit,
    allow_packets_per_poll,
    check_handler,
    client_packet_fault,
)

log = logging.getLogger(__name__)

OnShed = Callable[[str, str], None]

SHED_CLOSE_TIMEOUT = 5.0  # seconds a shed socket's close may wait for its send queue


class StockServer(OneSidEmit, socketio.AsyncServer):
    """``AsyncServer`` with in-order sends and the OrderedServer interface, public API only.

    ``dispatch(sid, event, args)`` returns the ack value and may call
    :meth:`send_now`; ``on_connected(sid)`` runs one loop turn after the connect
    handler admitted ``sid``, once python-socketio has queued the CONNECT packet, so
    its sends reach the client after it.
    """

    def __init__(
        self,
        dispatch: Dispatch,
        on_connected: Callable[[str], None],
        *,
        max_queued_bytes: int = 1 << 20,
        **kwargs: Any,
    ):
        kwargs["async_handlers"] = False
        kwargs.pop("request_timeout", None)  # an edge.py limit on the lean engine only
        allow_packets_per_poll()
        super().__init__(**kwargs)
        self.dispatch = dispatch
        self.on_connected = on_connected
        self.max_queued_bytes = max_queued_bytes
        self.dumps: Callable[[Any], str] = getattr(kwargs.get("json"), "dumps", json.dumps)
        self.connected: set[str] = set()
        # (sid, event, payload, bytes), in the order the hub produced them
        self.outbox: collections.deque[tuple[str, str, Any, int]] = collections.deque()
        self.queued_bytes: dict[str, int] = {}
        self.queued = 0  # sends ever put in the outbox
        self.sent = 0  # sends ever taken out of it (emitted or skipped)
        self.waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self.wakeup = asyncio.Event()
        self.sender: asyncio.Task[None] | None = None
        self.on_shed: OnShed | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        super().on("*", self._on_event)
        self.warnings = RateLimitedWarning(log)
        # python-socketio decodes each Engine.IO message in the handler it registered
        # with ``eio.on("message")``; wrapping that handler (public engineio API) turns
        # a packet it cannot decode into one warning and a close, not a traceback.
        self._handle_message = self.eio.handlers["message"]
        self.eio.on("message", self._guarded_message)

    def attach(self, app: web.Application, socketio_path: str = "socket.io") -> None:
        """As stock, and every WebSocket it opens has its text frames' packet type checked.

        python-engineio's WebSocket loop logs a traceback for a frame of an unknown
        Engine.IO type and keeps the socket; it reads frames through aiohttp's public
        ``WebSocketResponse.receive``, which ``on_response_prepare`` lets us wrap.
        """
        super().attach(app, socketio_path)
        app.on_response_prepare.append(self._check_frames)

    async def _check_frames(self, request: web.Request, response: web.StreamResponse) -> None:
        if not isinstance(response, web.WebSocketResponse):
            return
        receive = response.receive

        # the same signature as the method it stands in for, timeout included
        async def checked(timeout: float | None = None) -> WSMessage:  # noqa: ASYNC109
            msg = await receive(timeout)
            if msg.type is WSMsgType.TEXT and (fault := client_packet_fault(msg.data)):
                self.malformed(self._eio_sid_of(request), MalformedPacket(fault))
                # python-engineio ends its loop (and the socket) on a frame without data
                return WSMessage(WSMsgType.CLOSED, None, None)
            return msg

        response.receive = checked  # type: ignore[method-assign]

    def _eio_sid_of(self, request: web.Request) -> str:
        """The Engine.IO sid whose connect came with ``request`` ("?" if none did)."""
        for eio_sid, environ in list(self.environ.items()):
            if environ.get("aiohttp.request") is request:
                return str(eio_sid)
        return request.query.get("sid", "?")

    # -- handlers ---------------------------------------------------------

    def on(self, event: str, handler: Any = None, namespace: str | None = None) -> Any:
        """Only ``connect`` and ``disconnect`` on ``/``: every other event goes to dispatch.

        The handlers are wrapped so the server knows which sids are connected and
        so a client EVENT named ``connect`` or ``disconnect`` (python-socketio would
        hand it to these handlers) is refused by dispatch like any unknown event.
        """
        check_handler("StockServer", event, namespace)
        if event == "connect":

            async def on_connect(sid: str, *args: Any) -> Any:
                if sid in self.connected:  # an EVENT named "connect", not a connect
                    return await self._on_event("connect", sid, *args)
                try:
                    admitted = handler(sid, *args)
                    if inspect.isawaitable(admitted):  # with --redis: the store decides
                        admitted = await admitted
                except socketio.exceptions.ConnectionRefusedError:
                    self._close_refused(sid)
                    raise
                if admitted is not False:
                    self.connected.add(sid)
                    asyncio.get_running_loop().call_soon(self._welcome, sid)
                return admitted

            return super().on("connect", on_connect)

        async def on_disconnect(sid: str, *args: Any) -> Any:
            if self.manager.is_connected(sid, NAMESPACE):  # an EVENT named "disconnect"
                return await self._on_event("disconnect", sid, *args)
            self.connected.discard(sid)
            self.queued_bytes.pop(sid, None)
            return handler(sid, *args)

        return super().on("disconnect", on_disconnect)

    async def _guarded_message(self, eio_sid: str, data: Any) -> None:
        again = self._connected_sid_if_connect(eio_sid, data)
        try:
            await self._handle_message(eio_sid, data)
        except Exception as exc:
            self.malformed(eio_sid, exc)
            return
        if again is not None:  # python-socketio queued its "Unable to connect" refusal
            self._close_refused(again)

    def _connected_sid_if_connect(self, eio_sid: str, data: Any) -> str | None:
        """The sid already connected on ``/`` when ``data`` is another CONNECT to ``/``.

        python-socketio refuses that connect without calling any handler; like every
        refused connect, it closes the socket.
        """
        if isinstance(data, str) and data[:1] == "0" and data[1:2] in ("", "{"):
            sid = self.manager.sid_from_eio_sid(eio_sid, NAMESPACE)
            return None if sid is None else str(sid)
        return None

    def malformed(self, eio_sid: str, exc: BaseException) -> None:
        """A packet python-socketio cannot decode: one rate-limited warning, then a close.

        The close sends Engine.IO's CLOSE; a client that ignores it keeps its
        connection until the ping timeout, since public API cannot abort it.
        """
        self.warnings.warn(
            "malformed",
            time.monotonic(),
            "sid=%s malformed packet (%s: %.80s); closing that socket",
            eio_sid,
            type(exc).__name__,
            str(exc),
        )
        if self.on_shed is not None:
            self.on_shed(eio_sid, "malformed packet")
        if eio_sid in self.environ:
            self._close_soon(eio_sid, SHED_CLOSE_TIMEOUT)

    def _close_refused(self, sid: str) -> None:
        """Close a refused WebSocket once its CONNECT_ERROR is queued (Engine.IO CLOSE).

        python-socketio queues the CONNECT_ERROR without yielding after the connect
        handler raises; the close is a task, so it runs later and its CLOSE follows.
        A long-polling socket is left open: once closed, python-engineio answers its
        next poll with 400 and the refusal would never be read.
        """
        eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE)
        if eio_sid is not None and self.eio.transport(eio_sid) == "websocket":
            self._close_soon(eio_sid, SHED_CLOSE_TIMEOUT)

    def _welcome(self, sid: str) -> None:
        if sid in self.connected:
            self.on_connected(sid)

    async def _on_event(self, event: Any, sid: str, *args: Any) -> dict[str, Any]:
        """Run one event through dispatch; return its ack once its relays are handed on."""
        if not isinstance(event, str):
            event = repr(event)[:40]  # not a name: shown in the refusal as sent
        ack = self.dispatch(sid, event, list(args))
        if isinstance(ack, Deferred):
            # with --redis: python-socketio sends the returned ack itself, so on this
            # transport it may follow events its op's successors relayed
            value: dict[str, Any] = await ack.wait()
            ack = value
        await self._all_sent()
        return ack

    async def _all_sent(self) -> None:
        """Return once everything in the outbox now has been handed to Engine.IO."""
        if self.sent < self.queued:
            done = asyncio.get_running_loop().create_future()
            self.waiters.append((self.queued, done))
            await done

    # -- sends -------------------------------------------------------------

    def send_now(self, sid: str, event: str, payload: Any) -> bool:
        """Queue one event for ``sid`` without yielding; False if it is gone or shed.

        A sid whose queued bytes would pass ``max_queued_bytes`` is disconnected
        (``on_shed`` hears why) and nothing more is queued for it.
        """
        if sid not in self.connected:
            return False
        size = len(self.dumps([event, payload]))
        queued = self.queued_bytes.get(sid, 0) + size
        if queued > self.max_queued_bytes:
            self._shed(sid, f"send queue over {self.max_queued_bytes} bytes")
            return False
        self.queued_bytes[sid] = queued
        self.outbox.append((sid, event, payload, size))
        self.queued += 1
        if self.sender is None or self.sender.done():
            self.sender = asyncio.ensure_future(self._send_loop())
        self.wakeup.set()
        return True

    def backlogged(self, sid: str) -> bool:
        """True while earlier sends to ``sid`` are still waiting in the outbox."""
        return self.queued_bytes.get(sid, 0) > 0

    async def _send_loop(self) -> None:
        while True:
            while self.outbox:
                sid, event, payload, size = self.outbox.popleft()
                left = self.queued_bytes.get(sid)
                if left is not None:
                    self.queued_bytes[sid] = left - size
                if sid in self.connected:
                    try:
                        await socketio.AsyncServer.emit(self, event, payload, to=sid)
                    except Exception as exc:  # a socket that went away mid-send
                        log.debug("sid=%s %s not sent: %r", sid, event, exc)
                self.sent += 1
                while self.waiters and self.waiters[0][0] <= self.sent:
                    _, done = self.waiters.popleft()
                    if not done.done():
                        done.set_result(None)
            self.wakeup.clear()
            await self.wakeup.wait()

    # -- the transport seam ------------------------------------------------

    def set_on_shed(self, callback: OnShed) -> None:
        """Have ``callback(eio_sid, reason)`` hear of every socket closed for a limit."""
        self.on_shed = callback

    def shed_stuck_senders(self, now: float, timeout: float) -> int:
        """No-op, always 0: a stalled WebSocket write is not visible through public API."""
        return 0

    def is_client_disconnect(self, reason: Any) -> bool:
        """True when the client itself said goodbye (not a lost or shed connection)."""
        return bool(reason == self.reason.CLIENT_DISCONNECT)

    def _shed(self, sid: str, reason: str) -> None:
        self.connected.discard(sid)
        eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE)
        if eio_sid is None:
            return
        if self.on_shed is not None:
            self.on_shed(eio_sid, reason)
        self._close_soon(eio_sid, SHED_CLOSE_TIMEOUT)

    def _close_soon(self, eio_sid: str, timeout: float) -> asyncio.Task[None]:
        """Close one Engine.IO session in a task that ends within ``timeout`` seconds.

        python-engineio's ``disconnect`` waits for the socket's send queue to drain,
        which is forever when the client stopped reading or its writer is gone; the
        bound keeps the task (and ``self.tasks``) from outliving the connection.
        """

        async def close() -> None:
            try:
                await asyncio.wait_for(self.eio.disconnect(eio_sid), timeout)
            except TimeoutError:
                log.debug("eio_sid=%s close did not drain within %.1f s", eio_sid, timeout)

        task = asyncio.ensure_future(close())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def close_all(self, drain_timeout: float) -> None:
        """Close every socket without a Socket.IO DISCONNECT; bounded by ``drain_timeout``.

        The outbox drains, then each Engine.IO session is closed (its CLOSE packet
        queued behind what Engine.IO still holds), all within ``drain_timeout``
        seconds. A client takes that as a lost connection: it reconnects and
        resumes. Connections still open after it are aborted by the app's
        :class:`~signaling.edge.ConnectionGuard`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout
        try:
            await asyncio.wait_for(self._all_sent(), drain_timeout)
        except TimeoutError:
            pass
        sids = list(self.connected)
        self.connected.clear()
        for sid in sids:
            eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE)
            if eio_sid is not None:
                self._close_soon(eio_sid, max(0.0, deadline - loop.time()))
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def is_open(self, sid: str) -> bool:
        """True while python-socketio still knows ``sid`` (public API only)."""
        return self.manager.is_connected(sid, NAMESPACE)

    def abort_all(self) -> None:
        """Close every socket now (Engine.IO CLOSE): their clients reconnect and resume."""
        sids = list(self.connected)
        self.connected.clear()
        for sid in sids:
            eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE)
            if eio_sid is not None:
                self._close_soon(eio_sid, SHED_CLOSE_TIMEOUT)

    async def shutdown(self) -> None:
        """Stop the sender task, then python-socketio's own shutdown."""
        if self.sender is not None:
            self.sender.cancel()
            await asyncio.gather(self.sender, return_exceptions=True)
        for _, done in self.waiters:
            done.cancel()
        await super().shutdown()
