"""The browser page calling and answering the headless Python peer (``python -m peer``)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from playwright.async_api import expect

from tests.browser.conftest import OpenPage, StartPeer
from tests.browser.pages import call_info, page_url, wait_frames, wait_state, wait_until
from tests.conftest import HubProcess
from tests.peer.pair import side

pytestmark = [
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(90),
]


@pytest.mark.parametrize("browser_role", ["caller", "answerer"])
async def test_browser_and_python_peer_see_each_other(
    hub_process: HubProcess, open_page: OpenPage, start_peer: StartPeer, browser_role: str
) -> None:
    room = f"py-{browser_role}"
    peer_role = "answerer" if browser_role == "caller" else "caller"
    # the Python side arrives first when it calls, second when it answers: both orders
    peer = None
    if peer_role == "caller":
        peer = await start_peer(room, peer_role, "--duration", "5")
    page = await open_page(
        page_url(hub_process.url, room=room, role=browser_role, auto="1"), "browser"
    )
    if peer is None:
        await wait_state(page, "waiting")
        peer = await start_peer(room, peer_role, "--duration", "5")
    assert await wait_state(page, "connected", "failed") == "connected", await call_info(page)
    assert await wait_frames(page, 30) >= 30
    # the Python peer hangs up after --duration; the page must see it
    assert await wait_state(page, "ended") == "ended"
    assert await peer.wait() == 0, peer.log()
    stats = peer.stats()
    assert stats["frames_received"] >= 30, stats
    assert stats["video"]["width"] > 0, stats
    # Chromium lists VP8 first and the page keeps its order; the answer takes it first
    assert stats["video"]["codec"] == "VP8", stats


async def test_chat_with_python_peer(
    hub_process: HubProcess, open_page: OpenPage, start_peer: StartPeer
) -> None:
    room = "py-chat"
    peer = await start_peer(room, "answerer", "--name", "Pyra", chat=True)
    page = await open_page(
        page_url(hub_process.url, room=room, role="caller", auto="1", name="Ann"), "browser"
    )
    await wait_state(page, "connected")
    await expect(page.locator("#chat-input")).to_be_enabled(timeout=15_000)
    await peer.say("hello from python")
    line = page.locator("#chat-log .theirs")
    await expect(line).to_contain_text("hello from python", timeout=15_000)
    await expect(line.locator(".from")).to_have_text("Pyra")
    await page.locator("#chat-input").fill("hello from the browser")
    await page.locator("#chat-input").press("Enter")
    assert await peer.read_line() == "Ann: hello from the browser"
    await page.get_by_role("button", name="Hang up").click()
    assert await peer.wait() == 0, peer.log()


async def test_lobby_shows_python_caller(
    hub_process: HubProcess, open_page: OpenPage, start_peer: StartPeer
) -> None:
    room = "py-lobby"
    visitor = await open_page(page_url(hub_process.url), "visitor")
    peer = await start_peer(room, "caller", "--name", "PyCaller", "--duration", "3")
    entry = visitor.locator(f"#lobby li[data-room='{room}']")
    await expect(entry).to_contain_text("PyCaller", timeout=20_000)
    await entry.get_by_role("button", name="Answer").click()
    assert await wait_state(visitor, "connected", "failed") == "connected", await call_info(visitor)
    assert await wait_frames(visitor, 20) >= 20
    assert await peer.wait() == 0, peer.log()
    assert peer.stats()["frames_received"] > 0


async def test_peer_left_leaves_a_call_whose_media_flows(
    hub_process: HubProcess, open_page: OpenPage
) -> None:
    """``peer_left`` ends the other side's signaling, not the call: the page keeps the call
    while frames arrive, and ends it ("left the call") once that side's media stops too."""
    room = "py-left"
    page = await open_page(page_url(hub_process.url, room=room, role="caller", auto="1"), "left")
    await wait_state(page, "waiting")
    async with side(hub_process.url, "answerer", room) as answerer:
        await answerer.call.start()
        run = asyncio.create_task(answerer.call.run(connect_timeout=30))
        assert await wait_state(page, "connected", "failed") == "connected", await call_info(page)
        frames = await wait_frames(page, 10)
        await answerer.client.close()  # bye: the hub tells the page peer_left; media goes on
        await wait_until(page, "window.p2pcall.peerGone", None, "the page never saw peer_left")
        assert await wait_frames(page, frames + 30) >= frames + 30
        assert await wait_state(page, "connected") == "connected"
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await answerer.call.close()  # the media ends too: DTLS close, no word on the hub
        assert await wait_state(page, "ended", timeout_ms=60_000) == "ended"
        info = await call_info(page)
        assert "left the call" in info["message"], info
