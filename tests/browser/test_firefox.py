"""Debian's firefox-esr on the call page, calling and answering Chromium and the Python peer.

Firefox keeps its default ICE behaviour: its host candidates are mDNS ``<uuid>.local``
names, so the other side reaches it through the peer-reflexive candidates its checks
reveal. Each call checks frames both ways (counted on the page, and from the page's and
the peer's stats) and chat both ways.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import OpenCallPage, StartPeer
from tests.browser.firefox import Firefox, FirefoxError, FirefoxPage
from tests.browser.pages import (
    CallPage,
    call_info,
    page_url,
    send_chat,
    wait_audio_in,
    wait_chat,
    wait_chat_open,
    wait_frames,
    wait_inbound_video,
    wait_state,
)
from tests.conftest import HubProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(90),
]


def other(role: str) -> str:
    return "answerer" if role == "caller" else "caller"


async def chat_both_ways(a: CallPage, a_name: str, b: CallPage, b_name: str) -> None:
    for page in (a, b):
        await wait_chat_open(page)
    await send_chat(a, f"hello from {a_name}")
    assert (await wait_chat(b, f"hello from {a_name}"))["from"] == a_name
    await send_chat(b, f"hello from {b_name}")
    assert (await wait_chat(a, f"hello from {b_name}"))["from"] == b_name


# the address of every host candidate in the page's local description
HOST_ADDRESSES = r"""() => window.p2pcall.call.pc.localDescription.sdp.split("\r\n")
  .filter(l => l.startsWith("a=candidate:") && l.includes(" typ host"))
  .map(l => l.split(" ")[4])"""


async def assert_mdns_hosts(page: CallPage) -> None:
    """Firefox hid its host addresses behind mDNS names, as it does by default."""
    hosts = await page.evaluate(HOST_ADDRESSES)
    assert hosts and all(h.endswith(".local") for h in hosts), hosts


async def assert_video_in(page: CallPage) -> None:
    """Frames shown on ``#remote`` and decoded at a frame rate, per the page's stats."""
    assert await wait_frames(page, 30) >= 30
    inbound = await wait_inbound_video(page)
    assert inbound["width"] > 0 and inbound["height"] > 0, inbound
    # every party here offers VP8 first and answers in the offer's order
    assert inbound["codec"] == "VP8", inbound


@pytest.mark.parametrize(("caller", "answerer"), [("firefox", "chromium"), ("chromium", "firefox")])
async def test_firefox_and_chromium_call(
    hub_process: HubProcess, open_call_page: OpenCallPage, caller: str, answerer: str
) -> None:
    """Firefox arrives first in both: as a caller it waits for Chromium to answer, as an
    answerer for Chromium's offer."""
    room = f"ff-{caller}-calls"
    names = {caller: "Cal", answerer: "Ans"}
    roles = {caller: "caller", answerer: "answerer"}
    pages: dict[str, CallPage] = {}
    for browser in ("firefox", "chromium"):
        url = page_url(
            hub_process.url, room=room, role=roles[browser], auto="1", name=names[browser]
        )
        pages[browser] = await open_call_page(browser, url, browser)
        if browser == "firefox":
            await wait_state(pages[browser], "waiting")
    for page in pages.values():
        assert await wait_state(page, "connected", "failed") == "connected", await call_info(page)
    await assert_mdns_hosts(pages["firefox"])
    for page in pages.values():
        await assert_video_in(page)
    waited = ["idle", "connecting", "waiting", "connecting", "connected"]
    assert await pages["firefox"].evaluate("window.p2pcall.history") == waited
    assert await pages["chromium"].evaluate("window.p2pcall.history") == [
        "idle",
        "connecting",
        "connected",
    ]
    for page in pages.values():
        await wait_audio_in(page)
    await chat_both_ways(pages[caller], names[caller], pages[answerer], names[answerer])
    # the answerer hangs up from the keyboard (Enter on the focused button)
    await pages[answerer].press("#hangup", "Enter")
    for page in pages.values():
        assert await wait_state(page, "ended") == "ended"


@pytest.mark.parametrize("first", ["firefox", "python"])
@pytest.mark.parametrize("firefox_role", ["caller", "answerer"])
async def test_firefox_and_python_peer_call(
    hub_process: HubProcess,
    open_call_page: OpenCallPage,
    start_peer: StartPeer,
    firefox_role: str,
    first: str,
) -> None:
    room = f"ff-py-{firefox_role}-{first}"
    url = page_url(hub_process.url, room=room, role=firefox_role, auto="1", name="Fox")
    flags = ("--name", "Pyra")
    if first == "python":
        peer = await start_peer(room, other(firefox_role), *flags, chat=True)
        await peer.wait_waiting()
        page = await open_call_page("firefox", url, "firefox")
    else:
        page = await open_call_page("firefox", url, "firefox")
        await wait_state(page, "waiting")
        peer = await start_peer(room, other(firefox_role), *flags, chat=True)
    assert await wait_state(page, "connected", "failed") == "connected", await call_info(page)
    # whoever came second went straight to connecting
    waited = ["waiting", "connecting"] if first == "firefox" else []
    history = ["idle", "connecting", *waited, "connected"]
    assert await page.evaluate("window.p2pcall.history") == history
    await assert_mdns_hosts(page)
    await wait_chat_open(page)
    await peer.say("hello from python")
    assert (await wait_chat(page, "hello from python"))["from"] == "Pyra"
    await send_chat(page, "hello from firefox")
    assert await peer.read_line() == "Fox: hello from firefox"
    await assert_video_in(page)
    await peer.wait_receiving()
    # Firefox hangs up (Enter on the focused button); the peer ends cleanly with its stats
    await page.press("#hangup", "Enter")
    assert await wait_state(page, "ended") == "ended", await call_info(page)
    assert await peer.wait() == 0, peer.log()
    stats = peer.stats()
    assert stats["frames_received"] >= 10, stats
    assert stats["fps"] is not None and stats["fps"] > 0, stats
    assert stats["video"]["width"] > 0 and stats["video"]["codec"] == "VP8", stats


async def test_firefox_driver_reports_errors(hub_process: HubProcess, firefox: Firefox) -> None:
    """What the Firefox tests rely on: a refused request raises with the page's message, an
    uncaught page error reaches the console log (where the page keeper looks for crashes),
    and a wait that times out says so."""
    page = await firefox.open(page_url(hub_process.url))
    try:
        with pytest.raises(FirefoxError, match="nope from the page"):
            await page.evaluate("() => { throw new Error('nope from the page') }")
        await page.evaluate("() => { setTimeout(() => { throw new Error('uncaught one') }) }")
        await wait_until_logged(page, "uncaught one")
        with pytest.raises(FirefoxError, match="500"):
            await page.wait_for_function("false", timeout=500)
    finally:
        await page.close()


async def wait_until_logged(page: FirefoxPage, text: str) -> None:
    """Console lines arrive as events after the request that caused them: bounded wait."""
    for _ in range(50):
        if any(line.startswith("pageerror:") and text in line for line in page.console):
            return
        await page.wait_for_function("() => true", timeout=1_000)  # one round trip
    raise AssertionError(f"no pageerror with {text!r} in {page.console}")
