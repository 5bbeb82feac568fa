"""The stock transport (signaling/stock.py): what it does where the lean one has limits.

The contract suites run against both transports (tests/conftest.py); these tests
cover what only the stock server does its own way: which server a setting picks,
malformed packets through python-socketio's own decoder, refused connects.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from signaling import Config, create_app
from signaling.ordered import OrderedServer
from signaling.server import HUB_KEY
from signaling.stock import StockServer
from tests.conftest import RunningHub, spawn_hub, start_hub

from .client import offer, party
from .test_hardening import MALFORMED, _connected_then, _open

WAIT = 10.0
ENGINEIO_CLOSE = "1"


@pytest.fixture
async def stock_hub(hub_config: Config) -> AsyncIterator[Callable[..., Any]]:
    runners = []

    async def start(**changes: Any) -> RunningHub:
        running, runner = await start_hub(replace(hub_config, transport="stock", **changes))
        runners.append(runner)
        return running

    yield start
    for runner in runners:
        await runner.cleanup()


def test_each_transport_setting_picks_its_server(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="signaling.server"):
        assert isinstance(create_app(Config(transport="stock"))[HUB_KEY].sio, StockServer)
    assert any("transport: stock" in r.getMessage() for r in caplog.records)
    caplog.clear()
    assert isinstance(create_app(Config(transport="lean"))[HUB_KEY].sio, OrderedServer)
    assert isinstance(create_app(Config(transport="auto"))[HUB_KEY].sio, OrderedServer)
    real = importlib.metadata.version

    def moved(dist: str) -> str:
        return "4.99.0" if dist == "python-engineio" else real(dist)

    monkeypatch.setattr(importlib.metadata, "version", moved)
    with caplog.at_level(logging.WARNING):
        sio = create_app(Config(transport="auto"))[HUB_KEY].sio
    assert isinstance(sio, StockServer)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "python-engineio 4.15, installed 4.99.0" in warnings[0]


async def _until_close_packet(ws: aiohttp.ClientWebSocketResponse) -> list[str]:
    """Read until Engine.IO's CLOSE packet; return what came before it."""
    seen: list[str] = []
    async with asyncio.timeout(WAIT):
        while (text := await ws.receive_str()) != ENGINEIO_CLOSE:
            seen.append(text)
    return seen


async def test_malformed_packets_get_one_warning_and_a_close_without_traceback(
    stock_hub: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hub = await stock_hub()
    hub.hub.sio.warnings.interval = 3600.0
    bystander = await party(hub.url)
    await bystander.call("offer", offer("safe"))
    # a binary placeholder waits for its attachment, which python-socketio holds
    # (one per socket) until the socket closes: nothing to decode yet
    framings = [f for f in MALFORMED if not (isinstance(f, str) and f.startswith("451-"))]
    async with aiohttp.ClientSession() as session:
        for frame in [*framings, "42[]", '42{"a":1}']:
            ws = await _connected_then(session, hub.url, frame)
            seen = await _until_close_packet(ws)
            assert [s for s in seen if not s.startswith('42["welcome"')] == [], (frame, seen)
            await ws.close()
    await bystander.nothing_more()
    assert hub.hub.rooms.get("safe") is not None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "malformed packet" in warnings[0].getMessage(), [
        r.getMessage() for r in warnings
    ]
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    await bystander.close()


async def test_refused_connect_is_followed_by_a_close(stock_hub: Callable[..., Any]) -> None:
    hub = await stock_hub(token="s" * 16)
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, hub.url)
        await ws.send_str('40{"token":"guess"}')
        seen = await _until_close_packet(ws)
        assert len(seen) == 1 and seen[0].startswith('44{"message":"unauthorized"'), seen
        await ws.close()
    allowed = await party(hub.url, token="s" * 16)
    assert allowed.welcome.result()["resumed"] is False
    await allowed.close()


@pytest.mark.parametrize("transport", ["lean", "stock"])
async def test_sigterm_ends_connections_a_client_kept_open(transport: str) -> None:
    """A WebSocket client need not act on Engine.IO's CLOSE; the hub must not wait for it.

    Without the abort after closing, the stock hub waits out aiohttp's shutdown
    timeout twice (about 15 s) and ``stop`` gives up after 10 s.
    """
    hub = spawn_hub("--transport", transport)
    try:
        async with aiohttp.ClientSession() as session:
            ws = await _open(session, hub.url)
            await ws.send_str("40")
            assert (await asyncio.wait_for(ws.receive_str(), WAIT)).startswith("40")
            log = await asyncio.to_thread(hub.stop)
            assert "shutting down: closing 1 sockets" in log, log
            async with asyncio.timeout(WAIT):
                while not ws.closed and (await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                    pass
    finally:
        if hub.process.poll() is None:
            hub.process.kill()
