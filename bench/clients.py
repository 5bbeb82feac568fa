"""Lean WebSocket clients for the load generator: Socket.IO v5 and PeerJS.

python-socketio's ``AsyncClient`` costs about 3.5x the CPU of a hand-written
client, which would make the generator the bottleneck. These speak just enough
of each protocol for the call pattern, over one aiohttp WebSocket each:

- Socket.IO 5 over Engine.IO 4, WebSocket transport only: ``0{...}`` open,
  ``40{auth}`` connect, ``40{"sid"}`` reply (``44{...}`` refusal), events
  ``42["event", data]``, emits with ack ``42<id>[...]`` answered by
  ``43<id>[...]``, Engine.IO pings ``2`` answered with ``3``.
- PeerJS: ``/peerjs?key=&id=&token=``; the server sends ``{"type": "OPEN"}``
  first, then relays ``{"type", "dst", "payload"}`` messages adding ``src``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

OnMessage = Callable[[str, Any], None]


class ProtocolError(Exception):
    """The server said something the call pattern does not allow."""


def _ws_url(url: str) -> str:
    return "ws" + url[4:] if url.startswith("http") else url


class SioConn:
    """One Socket.IO connection to the default namespace."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, on_event: OnMessage) -> None:
        self.ws = ws
        self.on_event = on_event
        self.sid = ""
        self._ids = itertools.count()
        self._acks: dict[int, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls, session: aiohttp.ClientSession, url: str, auth: str, on_event: OnMessage
    ) -> SioConn:
        """Open, send ``40{auth}`` (``auth`` is JSON text), wait for the CONNECT reply."""
        ws = await session.ws_connect(
            _ws_url(url) + "/socket.io/?EIO=4&transport=websocket", max_msg_size=0
        )
        try:
            first = await ws.receive_str()
            if not first.startswith("0{"):
                raise ProtocolError(f"expected Engine.IO open, got {first[:80]!r}")
            await ws.send_str("40" + auth)
            reply = await ws.receive_str()
            while reply == "2":
                await ws.send_str("3")
                reply = await ws.receive_str()
            if not reply.startswith("40"):
                raise ProtocolError(f"connect refused: {reply[:200]!r}")
        except BaseException:
            await ws.close()
            raise
        conn = cls(ws, on_event)
        conn.sid = orjson.loads(reply[2:])["sid"]
        conn._reader = asyncio.create_task(conn._read())
        return conn

    async def emit(self, event: str, data_json: str) -> asyncio.Future[Any]:
        """Send ``event`` with ack; the returned future gets the ack value."""
        ack_id = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._acks[ack_id] = fut
        await self.ws.send_str(f'42{ack_id}["{event}",{data_json}]')
        return fut

    async def call(self, event: str, data_json: str) -> Any:
        return await (await self.emit(event, data_json))

    async def _read(self) -> None:
        ws = self.ws
        try:
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                data: str = msg.data
                if data.startswith("42"):
                    event, *args = orjson.loads(data[2:])
                    self.on_event(event, args[0] if args else None)
                elif data.startswith("43"):
                    at = data.index("[")
                    fut = self._acks.pop(int(data[2:at]), None)
                    if fut is not None and not fut.done():
                        fut.set_result(orjson.loads(data[at:])[0])
                elif data == "2":
                    await ws.send_str("3")
                elif data.startswith(("41", "1")):
                    break
        finally:
            error = ConnectionError("socket closed before the ack")
            for fut in self._acks.values():
                if not fut.done():
                    fut.set_exception(error)
            self._acks.clear()

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader


class PeerjsConn:
    """One PeerJS client connection (``OPEN`` already received)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, on_message: OnMessage) -> None:
        self.ws = ws
        self.on_message = on_message
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def connect(
        cls,
        session: aiohttp.ClientSession,
        url: str,
        peer_id: str,
        token: str,
        on_message: OnMessage,
        key: str = "peerjs",
    ) -> PeerjsConn:
        ws = await session.ws_connect(
            f"{_ws_url(url)}/peerjs?key={key}&id={peer_id}&token={token}", max_msg_size=0
        )
        first = await ws.receive_str()
        if not first.startswith('{"type":"OPEN"'):
            await ws.close()
            raise ProtocolError(f"expected OPEN, got {first[:200]!r}")
        conn = cls(ws, on_message)
        conn._reader = asyncio.create_task(conn._read())
        return conn

    async def send(self, kind: str, dst: str, payload_json: str) -> None:
        await self.ws.send_str(f'{{"type":"{kind}","dst":"{dst}","payload":{payload_json}}}')

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = orjson.loads(msg.data)
                self.on_message(data["type"], data.get("payload"))

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader
