"""Lean WebSocket clients for the load generator: Socket.IO v5 and PeerJS.

The generator shares one core with nothing else, and must not be what the
benchmark measures: python-socketio's ``AsyncClient`` costs about 3.5x the CPU
of a hand-written client, and even aiohttp's client WebSocket (a reader task,
a message object and a queue hop per frame) held the generator at 80-90 % of
its core while PeerJS's server idled at half of its own. So each connection
here is a bare ``asyncio.Protocol``: one HTTP upgrade written by hand, frames
parsed in ``data_received`` and handed to a callback, frames written with one
``transport.write``. Client frames are masked, as RFC 6455 requires, with the
all-zero key, which leaves the payload bytes as they are.

- Socket.IO 5 over Engine.IO 4, WebSocket transport only: ``0{...}`` open,
  ``40{auth}`` connect, ``40{"sid"}`` reply (``44{...}`` refusal), events
  ``42["event", data]``, emits with ack ``42<id>[...]`` answered by
  ``43<id>[...]``, Engine.IO pings ``2`` answered with ``3``.
- PeerJS: ``/peerjs?key=&id=&token=``; the server sends ``{"type": "OPEN"}``
  first, then relays ``{"type", "dst", "payload"}`` messages adding ``src``.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson

OnMessage = Callable[[str, Any], None]
# Any 16 bytes, base64 (RFC 6455's example): the accept key is not checked, the 101 is.
_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
_ZERO_MASK = b"\x00\x00\x00\x00"
_CLOSE_FRAME = b"\x88\x82" + _ZERO_MASK + struct.pack("!H", 1000)
CLOSE_TIMEOUT = 10.0


class ProtocolError(Exception):
    """The server said something the call pattern does not allow."""


def _frame(text: str) -> bytes:
    """One masked (zero key) FIN text frame."""
    body = text.encode()
    n = len(body)
    if n < 126:
        head = bytes((0x81, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x81, 0xFE, n)
    else:
        head = struct.pack("!BBQ", 0x81, 0xFF, n)
    return head + _ZERO_MASK + body


def _consume(fut: asyncio.Future[Any]) -> None:
    """Mark a failed future's exception as seen: the caller raises its own."""
    if fut.done() and not fut.cancelled():
        fut.exception()


class WsClient(asyncio.Protocol):
    """A client WebSocket that calls ``on_text(str)`` for each text message."""

    def __init__(self, on_text: Callable[[str], None]) -> None:
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self._buf = b""
        self._upgraded = False
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    async def connect(self, url: str, target: str) -> None:
        """Connect to ``url``'s host and upgrade ``target`` (path + query)."""
        parts = urlsplit(url)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_connection(
            lambda: self, parts.hostname or "127.0.0.1", parts.port or 80
        )
        self.transport = transport
        transport.write(
            f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {_KEY}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        try:
            await self.opened
        except BaseException:
            transport.abort()
            raise

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed during the WebSocket upgrade"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        if not self._upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self._buf = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if b" 101 " not in status:
                self.opened.set_exception(ProtocolError(f"upgrade refused: {status!r}"))
                self._buf = b""
                assert self.transport is not None
                self.transport.abort()
                return
            self._upgraded = True
            self.opened.set_result(None)
            buf = buf[end + 4 :]
        at, size = 0, len(buf)
        while size - at >= 2:
            b0, b1 = buf[at], buf[at + 1]
            n, head = b1 & 0x7F, 2
            if n == 126:
                if size - at < 4:
                    break
                n, head = (buf[at + 2] << 8) | buf[at + 3], 4
            elif n == 127:
                if size - at < 10:
                    break
                n, head = struct.unpack_from("!Q", buf, at + 2)[0], 10
            if size - at < head + n:
                break
            payload = buf[at + head : at + head + n]
            at += head + n
            opcode = b0 & 0x0F
            if opcode == 1:
                self.on_text(payload.decode())
            elif opcode == 8:
                assert self.transport is not None
                self.transport.close()
            elif opcode == 9:  # ping -> pong with the same payload
                self._write(bytes((0x8A, 0x80 | len(payload))) + _ZERO_MASK + payload)
        self._buf = buf[at:]

    def _write(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    def send(self, text: str) -> None:
        self._write(_frame(text))

    async def close(self) -> None:
        """Send a close frame; wait for the server to drop the connection."""
        if self.transport is None:
            return
        self._write(_CLOSE_FRAME)
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), CLOSE_TIMEOUT)
        except TimeoutError:
            assert self.transport is not None
            self.transport.abort()


class SioConn:
    """One Socket.IO connection to the default namespace."""

    def __init__(self, on_event: OnMessage, auth: str = "{}") -> None:
        self.on_event = on_event
        self._auth = auth
        self.sid = ""
        self.ws: WsClient | None = None
        self._next_id = 0
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._stage = 0  # 0: want Engine.IO open, 1: want CONNECT reply, 2: connected
        self._connected: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    @classmethod
    async def connect(cls, url: str, auth: str, on_event: OnMessage) -> SioConn:
        """Open, send ``40{auth}`` (``auth`` is JSON text), wait for the CONNECT reply."""
        conn = cls(on_event, auth)
        conn.ws = WsClient(conn._on_text)
        conn.ws.closed.add_done_callback(conn._on_closed)
        try:
            await conn.ws.connect(url, "/socket.io/?EIO=4&transport=websocket")
            conn.sid = await conn._connected
        except BaseException:
            _consume(conn._connected)
            await conn.ws.close()
            raise
        return conn

    def emit(self, event: str, data_json: str) -> asyncio.Future[Any]:
        """Send ``event`` with ack; the returned future gets the ack value."""
        ack_id = self._next_id
        self._next_id += 1
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = fut
        assert self.ws is not None
        self.ws.send(f'42{ack_id}["{event}",{data_json}]')
        return fut

    async def call(self, event: str, data_json: str) -> Any:
        return await self.emit(event, data_json)

    def _on_text(self, data: str) -> None:
        assert self.ws is not None
        if data.startswith("42"):
            event, *args = orjson.loads(data[2:])
            self.on_event(event, args[0] if args else None)
        elif data.startswith("43"):
            at = data.index("[")
            fut = self._acks.pop(int(data[2:at]), None)
            if fut is not None and not fut.done():
                fut.set_result(orjson.loads(data[at:])[0])
        elif data == "2":
            self.ws.send("3")
        elif self._stage == 0:
            if not data.startswith("0{"):
                self._fail(ProtocolError(f"expected Engine.IO open, got {data[:80]!r}"))
                return
            self._stage = 1
            self.ws.send("40" + self._auth)
        elif self._stage == 1:
            if not data.startswith("40"):
                self._fail(ProtocolError(f"connect refused: {data[:200]!r}"))
                return
            self._stage = 2
            self._connected.set_result(orjson.loads(data[2:])["sid"])

    def _fail(self, exc: Exception) -> None:
        if not self._connected.done():
            self._connected.set_exception(exc)
            _consume(self._connected)  # connect() raises it, or the socket is long gone

    def _on_closed(self, _: Any) -> None:
        self._fail(ConnectionError("socket closed before the Socket.IO connect"))
        error = ConnectionError("socket closed before the ack")
        for fut in self._acks.values():
            if not fut.done():
                fut.set_exception(error)
        self._acks.clear()

    async def close(self) -> None:
        assert self.ws is not None
        await self.ws.close()


class PeerjsConn:
    """One PeerJS client connection (``OPEN`` already received)."""

    def __init__(self, on_message: OnMessage) -> None:
        self.on_message = on_message
        self.ws: WsClient | None = None
        self._open: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def connect(
        cls, url: str, peer_id: str, token: str, on_message: OnMessage, key: str = "peerjs"
    ) -> PeerjsConn:
        conn = cls(on_message)
        conn.ws = WsClient(conn._on_text)
        conn.ws.closed.add_done_callback(conn._on_closed)
        try:
            await conn.ws.connect(url, f"/peerjs?key={key}&id={peer_id}&token={token}")
            await conn._open
        except BaseException:
            _consume(conn._open)
            await conn.ws.close()
            raise
        return conn

    def send(self, kind: str, dst: str, payload_json: str) -> None:
        assert self.ws is not None
        self.ws.send(f'{{"type":"{kind}","dst":"{dst}","payload":{payload_json}}}')

    def _on_text(self, text: str) -> None:
        data = orjson.loads(text)
        if not self._open.done():
            if data.get("type") == "OPEN":
                self._open.set_result(None)
            else:
                self._open.set_exception(ProtocolError(f"expected OPEN, got {text[:200]!r}"))
            return
        self.on_message(data["type"], data.get("payload"))

    def _on_closed(self, _: Any) -> None:
        if not self._open.done():
            self._open.set_exception(ConnectionError("socket closed before OPEN"))
            _consume(self._open)

    async def close(self) -> None:
        assert self.ws is not None
        await self.ws.close()
