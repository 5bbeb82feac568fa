"""Two browsers calling each other through a real hub, driven by the automation contract."""

from __future__ import annotations

import pytest

from tests.browser.conftest import OpenCallPage, OpenPage, PrivateHub
from tests.browser.pages import call_info, connected_pair, page_url, wait_frames, wait_state
from tests.conftest import HubProcess

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


@pytest.mark.parametrize("first", ["caller", "answerer"])
async def test_two_browsers_see_each_other(
    hub_process: HubProcess, open_page: OpenPage, first: str
) -> None:
    room = f"b2b-{first}"
    second = "answerer" if first == "caller" else "caller"
    a = await open_page(page_url(hub_process.url, room=room, role=first, auto="1"), first)
    await wait_state(a, "waiting")
    b = await open_page(page_url(hub_process.url, room=room, role=second, auto="1"), second)
    for page in (a, b):
        assert await wait_state(page, "connected", "failed") == "connected", await call_info(page)
    # frames counted by requestVideoFrameCallback on each side's #remote
    for page in (a, b):
        assert await wait_frames(page, 30) >= 30
    # whoever came first waited; whoever came second went straight to connecting
    waited = ["idle", "connecting", "waiting", "connecting", "connected"]
    assert await a.evaluate("window.p2pcall.history") == waited
    assert await b.evaluate("window.p2pcall.history") == ["idle", "connecting", "connected"]
    for page in (a, b):
        size = await page.evaluate(
            "() => [document.getElementById('remote').videoWidth,"
            " document.getElementById('remote').videoHeight]"
        )
        assert size[0] > 0 and size[1] > 0


async def test_hangup_propagates(hub_process: HubProcess, open_page: OpenPage) -> None:
    room = "b2b-hangup"
    caller, answerer = await connected_pair(open_page, hub_process.url, room)
    await answerer.get_by_role("button", name="Hang up").click()
    assert await wait_state(answerer, "ended") == "ended"
    assert await wait_state(caller, "ended") == "ended"
    message = await caller.locator("#message").inner_text()
    assert "hung up" in message
    # the room is free again: the same two pages can call once more
    await caller.get_by_role("button", name="Call", exact=True).click()
    await wait_state(caller, "waiting")
    await answerer.get_by_role("button", name="Answer", exact=True).click()
    for page in (caller, answerer):
        await wait_state(page, "connected")


@pytest.mark.parametrize("caller_browser", ["chromium", "firefox"])
async def test_renegotiation_keeps_the_call(
    hub_process: HubProcess, open_call_page: OpenCallPage, caller_browser: str
) -> None:
    """An ICE-restart offer from the caller reaches the answerer, which answers it live."""
    room = f"b2b-restart-{caller_browser}"
    url = page_url(hub_process.url, room=room, role="caller", auto="1")
    caller = await open_call_page(caller_browser, url, "caller")
    url = page_url(hub_process.url, room=room, role="answerer", auto="1")
    answerer = await open_call_page("chromium", url, "answerer")
    for page in (caller, answerer):
        await wait_state(page, "connected")
    ufrag = "() => window.p2pcall.call.pc.remoteDescription.sdp.match(/a=ice-ufrag:(\\S+)/)[1]"
    before = await answerer.evaluate(ufrag)
    await caller.evaluate("window.p2pcall.restartIce()")
    await answerer.wait_for_function(f"u => ({ufrag})() !== u", arg=before, timeout=20_000)
    frames = await answerer.evaluate("window.p2pcall.remoteFrames")
    assert await wait_frames(answerer, frames + 30) >= frames + 30
    for page in (caller, answerer):
        assert await page.evaluate("document.body.dataset.callState") == "connected"


async def test_two_browsers_call_and_hang_up_through_the_stock_transport(
    private_hub: PrivateHub, open_page: OpenPage
) -> None:
    """The page's Socket.IO client (long-polling, then the upgrade) on the stock server."""
    hub = private_hub("--transport", "stock")
    caller, answerer = await connected_pair(open_page, hub.url, "stock-call")
    for page in (caller, answerer):
        assert await wait_frames(page, 30) >= 30
    await answerer.get_by_role("button", name="Hang up").click()
    assert await wait_state(caller, "ended") == "ended"
    assert "hung up" in await caller.locator("#message").inner_text()
    assert not [line for line in hub.stop().splitlines() if "Traceback" in line]


async def test_ice_servers_come_from_welcome(private_hub: PrivateHub, open_page: OpenPage) -> None:
    hub = private_hub("--ice-server", "stun:127.0.0.1:3478")
    page = await open_page(page_url(hub.url, room="ice", role="caller", auto="1"), "caller")
    await wait_state(page, "waiting")
    servers = await page.evaluate("window.p2pcall.call.pc.getConfiguration().iceServers")
    assert [s["urls"] for s in servers] == [["stun:127.0.0.1:3478"]]


async def test_phone_layout(hub_process: HubProcess, open_page: OpenPage) -> None:
    """On a phone-sized screen nothing scrolls sideways and every control is reachable."""
    room = "phone"
    phone = await open_page(
        page_url(hub_process.url, room=room, role="caller", auto="1"), "phone", phone=True
    )
    other = await open_page(
        page_url(hub_process.url, room=room, role="answerer", auto="1"), "other"
    )
    for page in (phone, other):
        await wait_state(page, "connected")
    await wait_frames(phone, 10)
    assert await phone.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
        "the page scrolls sideways on a phone"
    )
    for name in ("Mute mic", "Camera off", "Share screen", "Hang up"):
        button = phone.get_by_role("button", name=name)
        box = await button.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, (name, box)
    # keyboard: Tab reaches Hang up, Enter presses it
    for _ in range(30):
        await phone.keyboard.press("Tab")
        if await phone.evaluate("document.activeElement.id") == "hangup":
            break
    else:
        raise AssertionError("Tab never reached the Hang up button")
    await phone.keyboard.press("Enter")
    assert await wait_state(phone, "ended") == "ended"
    assert await wait_state(other, "ended") == "ended"


@pytest.mark.timeout(150)
async def test_broken_path_shows_reconnecting(hub_process: HubProcess, open_page: OpenPage) -> None:
    """The media path dies without a hangup: the caller says so and tries an ICE restart."""
    room = "b2b-broken"
    caller, answerer = await connected_pair(open_page, hub_process.url, room)
    # the answerer's connection vanishes with no signaling at all
    await answerer.evaluate("window.p2pcall.call.pc.close()")
    await caller.wait_for_function(
        "window.p2pcall.history.includes('reconnecting')", timeout=60_000
    )
    # Chromium declares the path failed after some seconds; the caller's restart offer then
    # reaches an answerer that cannot take it, which hangs up
    assert await wait_state(caller, "ended", "failed", timeout_ms=90_000) == "ended"
    history = await caller.evaluate("window.p2pcall.history")
    assert history == [
        "idle",
        "connecting",
        "waiting",
        "connecting",
        "connected",
        "reconnecting",
        "ended",
    ], history


async def test_ice_restart_refetches_expiring_turn_credentials(
    private_hub: PrivateHub, open_page: OpenPage
) -> None:
    """Credentials about to expire are replaced from a fresh welcome before an ICE restart."""
    hub = private_hub(
        "--turn-secret", "restart-secret-0123", "--turn-url", "turn:127.0.0.1:9", "--turn-ttl", "1"
    )
    caller, answerer = await connected_pair(open_page, hub.url, "turn-refresh")
    users = "() => window.p2pcall.call.pc.getConfiguration().iceServers.map(s => s.username)"
    before = await caller.evaluate(users)
    assert len(before) == 1 and before[0].split(":")[0].isdigit()
    await caller.evaluate("window.p2pcall.restartIce()")
    after = await caller.evaluate(users)
    assert len(after) == 1 and after != before
    assert int(after[0].split(":")[0]) >= int(before[0].split(":")[0])
    frames = await answerer.evaluate("window.p2pcall.remoteFrames")
    assert await wait_frames(answerer, frames + 30) >= frames + 30
