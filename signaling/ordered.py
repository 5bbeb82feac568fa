"""A python-socketio server whose handlers run to completion, in arrival order.

Stock python-socketio runs each event handler as its own task and emits through
one more task per recipient, so two messages can leave in a different order
than they arrived, depending on scheduling. Our handlers are synchronous calls
into the pure room core; this subclass runs them inline in the socket's read
loop and puts their replies (ack and relays) straight onto the Engine.IO send
queues, with no await in between. Order and exactly-once then follow from the
code, not from luck, and the per-event task and ``wait_for`` overhead is gone.

It is also where the hub's edge bounds each client: a packet that does not
decode (or carries binary attachments, which the contract never uses) closes
its socket with one rate-limited warning instead of a traceback; a refused
connect closes the socket after the refusal is sent, so one socket cannot try
token after token; and the bytes queued for one socket are capped, so a
client that never reads cannot grow the hub's memory.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from engineio import packet as eio_packet

from .engine import LEAN_OUTBOX, LeanEngineServer
from .fastws import LeanWebSocket
from .manager import IndexedManager
from .transport import (
    NAMESPACE,
    Deferred,
    Dispatch,
    MalformedPacket,
    OneSidEmit,
    allow_packets_per_poll,
    check_handler,
    is_coroutine_handler,
)

log = logging.getLogger(__name__)

QUEUED = "_queued_bytes"  # on the Engine.IO socket: bytes queued since it last drained
REFUSED = "_refused"  # on a long-polling Engine.IO socket whose connect was refused


class TextMessage(eio_packet.Packet):
    """An Engine.IO text MESSAGE, encoded when made.

    The stock constructor type-checks its data and ``encode`` builds the string
    again; this is the same packet (python-engineio's polling path encodes it as
    any other) for the one kind the hub sends.
    """

    def __init__(self, text: str) -> None:
        self.packet_type = eio_packet.MESSAGE
        self.data = text
        self.binary = False
        self.encode_cache = "4" + text


class OrderedServer(OneSidEmit, socketio.AsyncServer):
    """``AsyncServer`` with synchronous dispatch and synchronous sends.

    ``dispatch(sid, event, args)`` returns the ack value; it may call
    :meth:`send_now` for relays. ``on_connected(sid)`` runs right after the
    CONNECT packet is queued, so its sends reach the client after it.
    """

    def __init__(
        self,
        dispatch: Dispatch,
        on_connected: Callable[[str], None],
        *,
        max_queued_bytes: int = 1 << 20,
        **kwargs: Any,
    ):
        kwargs.setdefault("async_handlers", False)
        kwargs.setdefault("client_manager", IndexedManager())
        allow_packets_per_poll()
        super().__init__(**kwargs)
        self._dispatch = dispatch
        self._on_connected = on_connected
        self.max_queued_bytes = max_queued_bytes
        # the connected sockets on "/", both ways: every request and send looks one up
        self._open: dict[str, Any] = {}  # Socket.IO sid -> its Engine.IO socket
        self._sid_of: dict[str, str] = {}  # Engine.IO sid -> Socket.IO sid
        self._dumps = self.packet_class.json.dumps
        self._loads = self.packet_class.json.loads
        if self.eio.async_mode == "aiohttp":
            # a copy: the driver table is shared by every Engine.IO server
            self.eio._async = {**self.eio._async, "websocket": LeanWebSocket}
            self.eio.message_now = self.message_now

    def on(self, event: str, handler: Any = None, namespace: str | None = None) -> Any:
        """Only ``connect`` and ``disconnect`` handlers: every other event goes to dispatch.

        A handler registered for any other event would never run (the read loop calls
        ``dispatch`` directly), so registering one is an error, not a silent no-op.
        """
        check_handler("OrderedServer", event, namespace)
        return super().on(event, handler, namespace)

    def _engineio_server_class(self) -> type:
        return LeanEngineServer

    def send_now(self, sid: str, event: str, payload: Any) -> bool:
        """Queue one event for ``sid`` without yielding; False if it is gone.

        The Socket.IO text encoding of an event on ``/`` is ``2`` + JSON
        ``[event, payload]``; payloads here come from JSON, so they never hold
        the binary attachments python-socketio would scan every packet for.
        """
        return self._queue(sid, "2" + self._dumps([event, payload]))

    def _queue(self, sid: str, encoded: str) -> bool:
        socket = self._open.get(sid)
        if socket is None:
            eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE)
            socket = self.eio.sockets.get(eio_sid) if eio_sid else None
        return socket is not None and self._queue_on(socket, encoded)

    def _queue_on(self, socket: Any, encoded: str) -> bool:
        if socket.closed or socket.closing:
            return False
        outbox = getattr(socket, LEAN_OUTBOX, None)
        if outbox is not None and outbox.take(encoded):
            return True
        queue = socket.queue
        # Bytes queued since the queue was last empty: an upper bound on what waits
        # unsent, at the cost of one attribute per send instead of per-packet sizes.
        queued = (0 if queue.empty() else getattr(socket, QUEUED, 0)) + len(encoded)
        if queued > self.max_queued_bytes:
            self.eio.shed(socket, f"send queue over {self.max_queued_bytes} bytes")
            return False
        setattr(socket, QUEUED, queued)
        queue.put_nowait(TextMessage(encoded))
        return True

    async def _send_packet(self, eio_sid: str, pkt: Any) -> None:
        """python-socketio's own packets (CONNECT, its errors, DISCONNECT), queued in order.

        Stock sends each through two more coroutines; here it is queued like every
        other send, under the same byte cap.
        """
        encoded = pkt.encode()
        if type(encoded) is not str:
            await super()._send_packet(eio_sid, pkt)  # attachments: never in the contract
            return
        socket = self.eio.sockets.get(eio_sid)
        if socket is not None:
            self._queue_on(socket, encoded)

    # -- the transport seam the Hub uses instead of reaching into engineio --

    def set_on_shed(self, callback: Callable[[str, str], None]) -> None:
        """Have ``callback(eio_sid, reason)`` hear of every socket closed for a limit."""
        self.eio.on_shed = callback

    def shed_stuck_senders(self, now: float, timeout: float) -> int:
        """Close sockets whose WebSocket write has stalled past ``timeout``; how many."""
        count: int = self.eio.shed_stuck_senders(now, timeout)
        return count

    def is_client_disconnect(self, reason: Any) -> bool:
        """True when the client itself said goodbye (not a lost or shed connection)."""
        return bool(reason == self.reason.CLIENT_DISCONNECT)

    async def close_all(self, drain_timeout: float) -> None:
        """Close every socket without a Socket.IO DISCONNECT; bounded by ``drain_timeout``.

        What was queued may still go out for ``drain_timeout`` seconds, then each
        transport is aborted, which a client takes as a lost connection (it
        reconnects and resumes), not as being sent away.
        """
        eio = self.eio
        queues = [asyncio.ensure_future(s.queue.join()) for s in eio.sockets.values()]
        if queues:
            _, pending = await asyncio.wait(queues, timeout=drain_timeout)
            for task in pending:
                task.cancel()
        self.abort_all()
        for _ in range(100):  # each aborted socket's read loop ends within a few loop turns
            if all(s.closed for s in eio.sockets.values()):
                break
            await asyncio.sleep(0.01)

    def is_open(self, sid: str) -> bool:
        """True while ``sid``'s Engine.IO socket is open."""
        eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE)
        socket = self.eio.sockets.get(eio_sid) if eio_sid else None
        return socket is not None and not socket.closed and not socket.closing

    def abort_all(self) -> None:
        """Abort every socket now (no drain): their clients reconnect and resume."""
        for socket in list(self.eio.sockets.values()):
            self.eio.shed(socket, "hub shutdown")

    def backlogged(self, sid: str) -> bool:
        """True while earlier sends to ``sid`` are still waiting in its queue."""
        eio_sid = self.manager.eio_sid_from_sid(sid, NAMESPACE)
        socket = self.eio.sockets.get(eio_sid) if eio_sid else None
        if socket is None:
            return False
        outbox = getattr(socket, LEAN_OUTBOX, None)
        return not socket.queue.empty() or (outbox is not None and outbox.pending)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        # a second CONNECT on a connected socket: python-socketio refuses it ("Unable to
        # connect") and, like every refused connect, it closes the socket
        again = self.manager.sid_from_eio_sid(eio_sid, namespace or NAMESPACE) is not None
        await super()._handle_connect(eio_sid, namespace, data)
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace or NAMESPACE)
        if not again and sid is not None and self.manager.is_connected(sid, namespace or NAMESPACE):
            socket = self.eio.sockets.get(eio_sid)
            if socket is not None and (namespace or NAMESPACE) == NAMESPACE:
                self._open[sid] = socket
                self._sid_of[eio_sid] = sid
            self._on_connected(sid)
            return
        # Refused: the CONNECT_ERROR is queued; a CLOSE after it ends the socket, so
        # each try costs a new connection (and the per-address throttle sees it). A
        # long-polling socket may not be polling right now and would lose the refusal:
        # it is closed at its next try instead.
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closed or socket.closing:
            return
        if socket.upgraded or getattr(socket, REFUSED, False):
            await socket.close(wait=False, reason=self.eio.reason.SERVER_DISCONNECT)
        else:
            setattr(socket, REFUSED, True)

    async def _trigger_event(self, event: str, namespace: str, *args: Any) -> Any:
        """Stock, but the hub's own synchronous connect/disconnect handler is called directly.

        Stock looks the handler up through the namespace and catch-all tables and checks
        it with ``inspect`` on every call; these two run twice per connection.
        """
        if namespace == NAMESPACE and event in ("connect", "disconnect"):
            handler = self.handlers.get(NAMESPACE, {}).get(event)
            if handler is not None and not is_coroutine_handler(handler):
                return handler(*args)
        return await super()._trigger_event(event, namespace, *args)

    async def _handle_disconnect(
        self, eio_sid: str, namespace: str | None, reason: Any = None
    ) -> None:
        if (namespace or NAMESPACE) == NAMESPACE and (sid := self._sid_of.get(eio_sid)):
            self._forget(sid)
        await super()._handle_disconnect(eio_sid, namespace, reason)

    async def disconnect(
        self, sid: str, namespace: str | None = None, ignore_queue: bool = False
    ) -> None:
        """Stock ``disconnect``; ``sid`` leaves the table of connected sockets first."""
        if (namespace or NAMESPACE) == NAMESPACE:
            self._forget(sid)
        await super().disconnect(sid, namespace, ignore_queue)

    def _forget(self, sid: str) -> None:
        socket = self._open.pop(sid, None)
        if socket is not None and self._sid_of.get(socket.sid) == sid:
            del self._sid_of[socket.sid]

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        pending = self.message_now(eio_sid, data)
        if pending is not None:
            await pending

    def message_now(self, eio_sid: str, data: Any) -> Awaitable[Any] | None:
        """Handle one Engine.IO MESSAGE; what to await before the socket's next one, if any.

        Text EVENT packets on ``/`` (``2[id][...]``, every request of the contract) run
        right here, with no coroutine per message; the rest (CONNECT, DISCONNECT, ...)
        return python-socketio's own handling to await. A packet that does not decode
        closes its socket (:meth:`LeanEngineServer.malformed`), never raises.
        """
        try:
            if type(data) is not str or data[:1] in ("5", "6"):
                raise MalformedPacket("binary attachments are not part of the signaling contract")
            if data[:1] == "2":
                at = 1
                while data[at : at + 1].isdigit():
                    at += 1
                if data[at : at + 1] == "[":
                    args = self._loads(data[at:])  # a decode error closes the socket
                    ack_id = int(data[1:at]) if at > 1 else None
                    pending = self._event_now(eio_sid, NAMESPACE, ack_id, args)
                    return None if pending is None else pending.wait()
        except Exception as exc:
            self.eio.malformed(eio_sid, exc)
            return None
        return self._stock_message(eio_sid, data)

    async def _stock_message(self, eio_sid: str, data: Any) -> None:
        try:
            await super()._handle_eio_message(eio_sid, data)
        except Exception as exc:
            self.eio.malformed(eio_sid, exc)

    async def _handle_event(
        self, eio_sid: str, namespace: str | None, id: int | None, data: Any
    ) -> None:
        pending = self._event_now(eio_sid, namespace, id, data)
        if pending is not None:
            await pending.wait()

    def _ack(self, sid: str, id: int, value: Any) -> None:
        self._queue(sid, f"3{id}" + self._dumps([value]))

    def _event_now(
        self, eio_sid: str, namespace: str | None, id: int | None, data: Any
    ) -> Deferred | None:
        """Run one event; a :class:`Deferred` when its ack waits for the shared store.

        The caller awaits that before reading the socket's next message, so one
        socket's requests still run in order; the ack itself is queued the moment
        it is known (``Deferred.then``), in order with the relays of its op.
        """
        namespace = namespace or NAMESPACE
        if namespace != NAMESPACE:
            return None
        sid = self._sid_of.get(eio_sid) or self.manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is None or not self.manager.is_connected(sid, namespace):
            return None
        if isinstance(data, list) and data and isinstance(data[0], str):
            event, args = data[0], data[1:]
        elif isinstance(data, list) and data and isinstance(data[0], int | float | None):
            event, args = repr(data[0])[:40], []  # not a name: shown in the refusal as sent
        else:
            event, args = "", []
        ack = self._dispatch(sid, event, args)
        if isinstance(ack, Deferred):  # the hub shares its rooms through Redis
            if id is not None:
                ack.then(lambda value: self._ack(sid, id, value))
            return ack
        if id is not None:
            self._queue(sid, f"3{id}" + self._dumps([ack]))
        return None
