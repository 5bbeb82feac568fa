"""The hub's Engine.IO ping cycle, which runs on timer handles (signaling/engine.py)."""

from __future__ import annotations

import asyncio

import aiohttp
from engineio.async_socket import AsyncSocket

from signaling.engine import PING_TIMER
from tests.conftest import RunningHub

from .client import until

WAIT = 10.0


async def _connect(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url + "/socket.io/?EIO=4&transport=websocket")
    first = await asyncio.wait_for(ws.receive_str(), WAIT)
    assert first.startswith("0{"), first
    await ws.send_str("40{}")
    reply = await asyncio.wait_for(ws.receive_str(), WAIT)
    assert reply.startswith("40"), reply
    return ws


async def _next_ping(ws: aiohttp.ClientWebSocketResponse) -> None:
    while True:
        msg = await asyncio.wait_for(ws.receive(), WAIT)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        if msg.data == "2":
            return


def _only_socket(hub: RunningHub) -> AsyncSocket:
    (socket,) = hub.hub.sio.eio.sockets.values()
    return socket


async def test_pings_repeat_while_answered_and_stop_after_close(hub: RunningHub) -> None:
    eio = hub.hub.sio.eio
    eio.ping_interval = 0.1
    async with aiohttp.ClientSession() as session:
        ws = await _connect(session, hub.url)
        socket = _only_socket(hub)
        for _ in range(3):  # each pong re-arms the timer for the next ping
            await _next_ping(ws)
            await ws.send_str("3")
        await _next_ping(ws)
        eio.ping_interval = 60.0
        await ws.send_str("3")
        await until(lambda: getattr(socket, PING_TIMER) is not None)
        timer = getattr(socket, PING_TIMER)
        await ws.close()
        await until(lambda: socket.closed and getattr(socket, PING_TIMER) is None)
        assert timer.cancelled()
    assert not [t for t in asyncio.all_tasks() if "_send_ping" in repr(t.get_coro())], (
        "no ping task may be left behind"
    )


async def test_a_client_that_stops_answering_pings_is_closed(hub: RunningHub) -> None:
    eio = hub.hub.sio.eio
    eio.ping_interval, eio.ping_timeout = 0.1, 0.3
    async with aiohttp.ClientSession() as session:
        ws = await _connect(session, hub.url)
        await _next_ping(ws)  # and never answer it
        async with asyncio.timeout(WAIT):
            while True:
                msg = await ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
    assert hub.hub.sessions.socket_count == 0
