"""A recording Socket.IO test client: every hub→client event lands in one ordered queue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp
import socketio

HUB_EVENTS = ("offer", "answer", "candidate", "hangup", "rooms")
ROOM_EVENTS = frozenset({"offer", "answer", "candidate", "hangup", "peer_away", "peer_back"})
TIMEOUT = 10.0


class Party:
    """One client. Room events must carry ``seq`` 1, 2, 3...; :meth:`next` checks and strips it.

    ``http_session`` carries cookies (a load balancer's sticky one); its owner closes it.
    """

    def __init__(
        self, last_seq: int = 0, *, http_session: aiohttp.ClientSession | None = None
    ) -> None:
        self.last_seq = last_seq
        self.sio = socketio.AsyncClient(reconnection=False, http_session=http_session)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.welcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.sio.on("welcome", self._on_welcome)
        self.sio.on("*", self._on_any)

    def _on_welcome(self, data: dict[str, Any]) -> None:
        if not self.welcome.done():
            self.welcome.set_result(data)

    def _on_any(self, event: str, data: Any = None) -> None:
        self.events.put_nowait((event, data))

    async def connect(
        self, url: str, *, transports: Sequence[str] = ("websocket",), **auth: Any
    ) -> Party:
        await self.sio.connect(url, auth=auth or None, transports=list(transports), wait_timeout=10)
        await asyncio.wait_for(self.welcome, TIMEOUT)
        return self

    async def call(self, event: str, *args: Any) -> Any:
        return await self.sio.call(event, *args, timeout=TIMEOUT)

    async def next(self, event: str | None = None) -> Any:
        """The next event's payload, without its ``seq`` (checked to follow the last one)."""
        name, data = await self.next_event(event)
        if name in ROOM_EVENTS:
            data = {k: v for k, v in data.items() if k != "seq"}
        return data

    async def next_event(self, event: str | None = None) -> tuple[str, Any]:
        name, data = await asyncio.wait_for(self.events.get(), TIMEOUT)
        if event is not None:
            assert name == event, f"expected {event!r}, got {name!r} {data!r}"
        if name in ROOM_EVENTS:
            assert data.get("seq") == self.last_seq + 1, (self.last_seq, name, data)
            self.last_seq = data["seq"]
        return name, data

    async def nothing_more(self, settle: float = 0.3) -> None:
        """Assert no further event arrives: after a round trip, and a short settle time."""
        await self.call("rooms", {})
        await asyncio.sleep(settle)
        assert self.events.empty(), f"unexpected event {self.events.get_nowait()!r}"

    @property
    def session(self) -> str:
        return str(self.welcome.result()["session"])

    async def resume(
        self,
        url: str,
        last_seq: int | None = None,
        *,
        http_session: aiohttp.ClientSession | None = None,
        **auth: Any,
    ) -> Party:
        """A new connection resuming this session from ``last_seq`` (default: all seen)."""
        seen = self.last_seq if last_seq is None else last_seq
        resumed = Party(seen, http_session=http_session)
        return await resumed.connect(url, session=self.session, lastSeq=seen, **auth)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()


async def party(url: str, **auth: Any) -> Party:
    return await Party().connect(url, **auth)


def offer(room: str, sdp: str = "v=0\r\noffer\r\n", **extra: Any) -> dict[str, Any]:
    return {"room": room, "description": {"type": "offer", "sdp": sdp}, **extra}


def answer(room: str, sdp: str = "v=0\r\nanswer\r\n") -> dict[str, Any]:
    return {"room": room, "description": {"type": "answer", "sdp": sdp}}


def cand(i: int, ufrag: bool = False) -> dict[str, Any]:
    c: dict[str, Any] = {
        "candidate": f"candidate:{i} 1 udp 2122260223 127.0.0.1 {40000 + i} typ host",
        "sdpMid": "0",
        "sdpMLineIndex": 0,
    }
    if ufrag:
        c["usernameFragment"] = "abcd"
    return c


def error_code(ack: Any) -> str:
    assert isinstance(ack, dict) and ack.get("ok") is False, ack
    assert isinstance(ack["error"]["message"], str) and ack["error"]["message"]
    return str(ack["error"]["code"])


async def until(condition: Callable[[], bool], limit: float = TIMEOUT) -> None:
    """Poll a hub-side condition every 10 ms, at most ``limit`` seconds."""
    for _ in range(int(limit / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached within the bound")
