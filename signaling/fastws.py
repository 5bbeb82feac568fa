"""A lean Engine.IO WebSocket transport for aiohttp.

python-engineio's WebSocket loop wraps every received frame in a new task plus
``asyncio.wait_for`` and decodes it into a ``Packet`` before handing it to
Socket.IO through a generic ``_trigger_event``; its writer waits on the send
queue with another ``wait_for`` per batch. Profiles of the hub under call load
show that bookkeeping, not our handlers, is where the CPU goes. This transport
does the same job with a plain read loop: MESSAGE frames go straight to the
Socket.IO message handler, the rest (PONG, CLOSE, ...) through the stock
``socket.receive``; the writer waits on the queue without a timer, and sends what
was queued together in one write (aiohttp makes a ``send(2)`` per frame, and on
loopback each one also pays for the receiver's TCP processing). Reads carry
no timer either: python-engineio's service task already closes sockets whose
client stopped answering pings, and that aborts the TCP transport
(``engine.py``), which ends both loops whatever is still queued. A packet that
does not decode closes the socket the same way, with one rate-limited warning. It also turns
permessage-deflate off: signaling messages are small and compressing each one
costs more CPU than the bytes it saves on a LAN or loopback.

Connections that start on long-polling and upgrade keep python-engineio's own
handler, which speaks the upgrade probe.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from typing import Any

from aiohttp import WSMsgType, web
from engineio import packet

from .engine import LEAN_OUTBOX, LEAN_TRANSPORT, SEND_STARTED, WakingQueue, cancel_ping
from .transport import MalformedPacket, client_packet_fault

log = logging.getLogger(__name__)
# ``ws.receive()`` returns without suspending while frames are buffered: a client that
# floods requests would hold the event loop for its whole backlog. Yield every so often.
YIELD_EVERY = 32
# At most this much goes in one write (aiohttp's own flow-control step, 64 KiB): a peer
# that stops reading leaves at most one batch, plus aiohttp's step, in the transport's
# buffer, because the next turn finds the buffer non-empty and waits for the drain
# through aiohttp.
BATCH_BYTES = 1 << 16


class LeanWebSocket:
    """Drop-in for ``engineio.async_drivers.aiohttp.WebSocket``."""

    def __init__(self, handler: Any, server: Any) -> None:
        self.handler = handler
        self.server = server
        self._sock: web.WebSocketResponse | None = None
        self.environ: dict[str, Any] = {}

    async def __call__(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        request = environ["aiohttp.request"]
        socket = getattr(self.handler, "__self__", None)
        fresh = socket is not None and not socket.connected
        response = _OpeningResponse if fresh else web.WebSocketResponse
        ws = response(max_msg_size=self.server.max_http_buffer_size, compress=False)
        try:
            writer = await ws.prepare(request)
            if fresh:
                await _send_opening(socket, writer)
        except ConnectionError:
            if socket is not None and not socket.connected:
                # gone before its upgrade was answered: its Engine.IO session goes now,
                # not at the ping timeout
                reason = self.server.reason.TRANSPORT_CLOSE
                await socket.close(wait=False, abort=True, reason=reason)
                cancel_ping(socket)
                # python-engineio forgets a closed socket after its handler returns,
                # which this one does not
                self.server.sockets.pop(socket.sid, None)
            raise
        self._sock = ws
        self.environ = environ
        if socket is None or socket.connected:
            await self.handler(self)  # an upgrade from long-polling
        else:
            setattr(socket, LEAN_TRANSPORT, request.transport)
            await serve_socket(socket, ws, self.server)
        return ws

    # The stock handler's interface, used for upgrades from long-polling.
    async def close(self) -> None:
        assert self._sock is not None
        await self._sock.close()

    async def send(self, message: str | bytes) -> None:
        assert self._sock is not None
        await send_stamped(getattr(self.handler, "__self__", None), self._sock, message)

    async def wait(self) -> str | bytes:
        assert self._sock is not None
        msg = await self._sock.receive()
        if not isinstance(msg.data, str | bytes):
            raise OSError()
        return msg.data


class _OpeningResponse(web.WebSocketResponse):
    """A WebSocket response whose 101 headers wait for the first write.

    aiohttp otherwise sends the headers on their own; a new Engine.IO socket's
    first frame (OPEN) is already queued, and one write for both saves a system
    call, and on loopback the receiver's processing of one more segment.
    """

    _send_headers_immediately = False  # aiohttp's own flag (its Response sets it too)


async def _send_opening(socket: Any, writer: Any) -> None:
    """Send the 101's buffered headers with the first queued packet (OPEN) in one write.

    Only packets are queued before the socket is served (its stop mark comes later).
    """
    queue: asyncio.Queue[Any] = socket.queue
    if queue.empty():
        writer.send_headers()
        return
    first = queue.get_nowait()
    queue.task_done()
    # the payload writer coalesces its buffered headers with the first chunk
    await writer.write(server_frame(first.encode()))


async def serve_socket(socket: Any, ws: web.WebSocketResponse, server: Any) -> None:
    """Run one Engine.IO socket over ``ws`` until either side closes it."""
    socket.connected = True
    socket.upgraded = True
    transport = getattr(socket, LEAN_TRANSPORT, None)
    queue = socket.queue
    if transport is not None:
        setattr(socket, LEAN_OUTBOX, Outbox(queue, ws, transport))
    writer: asyncio.Future[None] | None = None

    def start_writer() -> None:
        nonlocal writer
        writer = asyncio.ensure_future(_write(socket, ws))

    # The writer starts with the first queued packet: the Outbox carries most sends,
    # and many sockets close before anything (a ping, a slow reader's backlog) queues.
    if isinstance(queue, WakingQueue) and queue.empty():
        queue.on_put = start_writer
    else:
        start_writer()
    message_now = server.message_now
    sid = socket.sid
    handled = 0
    try:
        while True:
            handled += 1
            if handled % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let other sockets and timers run
            msg = await ws.receive()
            kind = msg.type
            if kind is WSMsgType.TEXT:
                data: str = msg.data
                if data[:1] == "4" and message_now is not None:
                    # it handles its own faults; without it, stock receive below dispatches
                    if (pending := message_now(sid, data[1:])) is not None:
                        await pending
                    continue
                # checked here: python-engineio's own error for an unknown type is empty
                if (fault := client_packet_fault(data)) is not None:
                    server.malformed(sid, MalformedPacket(fault))
                    break
            elif kind is not WSMsgType.BINARY:
                break  # CLOSE, CLOSED, ERROR (including a frame over the size limit)
            try:
                await socket.receive(packet.Packet(encoded_packet=msg.data))
            except Exception as exc:
                if type(exc).__name__ == "SocketIsClosedError":
                    break
                server.malformed(sid, exc)
                break
            if socket.closed:
                break  # the client's Engine.IO CLOSE: nothing would end this connection
    finally:
        if isinstance(queue, WakingQueue):
            queue.on_put = None
        if writer is None:
            # What this turn's requests sent (a client that sends its last requests and its
            # Engine.IO CLOSE together) goes before the close, as the writer's would.
            outbox = getattr(socket, LEAN_OUTBOX, None)
            if outbox is not None:
                outbox.flush()
            await ws.close()  # what the writer would have done last
        else:
            await queue.put(None)  # unlock the writer so it can exit
            await writer
        await socket.close(wait=False, abort=True, reason=server.reason.TRANSPORT_CLOSE)
        cancel_ping(socket)


class Outbox:
    """The frames sent to one socket in this loop turn while its writer is idle.

    Most sends reach a socket whose queue is empty and whose peer keeps up: one
    call_soon per turn writes them together, without a packet object, a queue
    round trip or a wake of the writer task per send. Anything else (a queue
    that holds packets, a peer that is behind, a turn's batch at ``BATCH_BYTES``)
    is refused and goes through the queue and the writer, after what this holds:
    the flush was scheduled first, so order is kept.
    """

    __slots__ = ("_frames", "_loop", "_queue", "_size", "_transport", "_ws")

    def __init__(self, queue: asyncio.Queue[Any], ws: web.WebSocketResponse, transport: Any):
        self._queue = queue
        self._ws = ws
        self._transport = transport
        self._frames: list[bytes] = []
        self._size = 0
        self._loop = asyncio.get_running_loop()

    def take(self, text: str) -> bool:
        """Send the Engine.IO MESSAGE ``text`` at the end of this turn; False: queue it."""
        transport = self._transport
        if (
            self._size >= BATCH_BYTES
            or not self._queue.empty()
            or transport.get_write_buffer_size()
            or transport.is_closing()
        ):
            return False
        frame = server_frame("4" + text)
        if not self._frames:
            self._loop.call_soon(self.flush)
        self._frames.append(frame)
        self._size += len(frame)
        return True

    @property
    def pending(self) -> bool:
        return bool(self._frames)

    def flush(self) -> None:
        """Write what this turn holds now (also run at the end of the turn)."""
        if not self._frames:
            return  # flushed early: the scheduled call finds nothing
        frames, self._frames, self._size = self._frames, [], 0
        if self._ws.closed or self._transport.is_closing():
            return  # aiohttp has sent its CLOSE frame, or the connection is gone
        self._transport.write(b"".join(frames))


async def send_stamped(socket: Any, ws: web.WebSocketResponse, data: str | bytes) -> None:
    """Send one frame, with ``socket`` stamped while the write waits on the peer.

    Stamped, not timed: a timer per write costs more than the write itself; the
    hub's sweep closes sockets stamped too long ago (``send_timeout``).
    """
    if socket is not None:
        setattr(socket, SEND_STARTED, time.monotonic())
    if isinstance(data, bytes):
        await ws.send_bytes(data)
    else:
        await ws.send_str(data)
    if socket is not None:
        setattr(socket, SEND_STARTED, None)


def server_frame(data: str | bytes) -> bytes:
    """One unmasked, unfragmented server-to-client frame (RFC 6455 section 5.2).

    A str becomes a text frame (opcode 0x1, UTF-8), bytes a binary frame (0x2);
    the length takes 7, 16 or 64 bits as the RFC lays out.
    """
    if isinstance(data, str):
        payload, first = data.encode(), 0x81  # FIN + text
    else:
        payload, first = data, 0x82  # FIN + binary
    size = len(payload)
    if size < 126:
        return _LEN7(first, size) + payload
    if size < 65536:
        return _LEN16(first, 126, size) + payload
    return _LEN64(first, 127, size) + payload


_LEN7 = struct.Struct("!BB").pack
_LEN16 = struct.Struct("!BBH").pack
_LEN64 = struct.Struct("!BBQ").pack


async def _write(socket: Any, ws: web.WebSocketResponse) -> None:
    """Send the socket's queue until its stop mark (None) or an Engine.IO CLOSE.

    What is queued together leaves together: an answerer's join is answered with
    the offer and every held candidate, an answer's burst of candidates with as many
    relays, and aiohttp writes each frame with its own send(2). While the peer is
    keeping up (nothing left in the transport's buffer), what waits goes out in one
    write of frames made here (a lone frame too: aiohttp's send costs more). A peer
    that is behind gets aiohttp's send, which waits for the buffer to drain; so
    what the hub holds for a slow reader stays bounded by the queue cap plus one
    batch (``BATCH_BYTES``).
    """
    queue: asyncio.Queue[Any] = socket.queue
    transport: asyncio.Transport | None = getattr(socket, LEAN_TRANSPORT, None)
    try:
        while True:
            pkt = await queue.get()
            queue.task_done()
            if transport is None or transport.get_write_buffer_size():
                if pkt is None:
                    break
                await send_stamped(socket, ws, pkt.encode())
                if pkt.packet_type == packet.CLOSE:
                    break  # closing the WebSocket ends the read loop too
                continue
            frames: list[bytes] = []
            size = 0
            stop = False
            while True:
                if pkt is None:
                    stop = True
                    break
                frames.append(server_frame(pkt.encode()))
                size += len(frames[-1])
                if pkt.packet_type == packet.CLOSE or queue.empty() or size >= BATCH_BYTES:
                    stop = pkt.packet_type == packet.CLOSE
                    break  # what is left waits for the next turn, which sees the buffer
                pkt = queue.get_nowait()
                queue.task_done()
            if frames:
                if ws.closed or transport.is_closing():
                    break  # aiohttp has sent its CLOSE frame: nothing may follow it
                transport.write(b"".join(frames))
            if stop:
                break
    except Exception:
        pass  # the peer went away; the read loop ends the socket
    finally:
        await ws.close()
