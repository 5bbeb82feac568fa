"""Every failure shows plain words and a code on ``body.dataset.error``."""

from __future__ import annotations

import signal

import pytest
from playwright.async_api import Browser, expect

from tests.browser.conftest import OpenPage, PrivateHub
from tests.browser.pages import call_info, page_url, wait_frames, wait_state
from tests.conftest import HubProcess

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


@pytest.mark.parametrize(
    ("role", "code", "words"),
    [
        ("answerer", "room_full", "already has someone answering"),
        ("caller", "room_busy", "already calling"),
    ],
)
async def test_third_party_is_refused(
    hub_process: HubProcess, open_page: OpenPage, role: str, code: str, words: str
) -> None:
    room = f"full-{role}"
    for party in ("caller", "answerer"):
        page = await open_page(page_url(hub_process.url, room=room, role=party, auto="1"), party)
    await wait_state(page, "connected")
    third = await open_page(page_url(hub_process.url, room=room, role=role, auto="1"), "third")
    assert await wait_state(third, "failed") == "failed"
    info = await call_info(third)
    assert info["error"] == code, info
    assert words in info["message"], info
    # the call already in the room is untouched
    assert await page.evaluate("document.body.dataset.callState") == "connected"


async def test_hub_down_is_reported(private_hub: PrivateHub, open_page: OpenPage) -> None:
    hub = private_hub()
    page = await open_page(page_url(hub.url, room="gone"), "page")
    await expect(page.locator("#lobby-empty")).to_have_text("Nobody is waiting right now.")
    hub.process.kill()  # a crash, not a goodbye: the page must notice on its own
    hub.process.wait(10)
    await expect(page.locator("#message")).to_contain_text("Lost the connection", timeout=15_000)
    assert (await call_info(page))["error"] == "hub_lost"
    await page.get_by_role("button", name="Call", exact=True).click()
    assert await wait_state(page, "failed") == "failed"
    info = await call_info(page)
    assert info["error"] == "hub_unreachable", info
    assert "Can't reach the signaling hub" in info["message"], info


async def test_hub_dying_during_a_request_is_lost_connection_not_timeout(
    private_hub: PrivateHub, open_page: OpenPage
) -> None:
    """A request in flight when the hub dies fails with hub_lost, never with the timeout
    its timer would report later: the page's own Signaling client, driven directly."""
    hub = private_hub()
    page = await open_page(page_url(hub.url), "page")
    await page.evaluate(
        """async () => {
            const { Signaling } = await import("/static/signaling.js");
            window.probe = new Signaling({});
            await window.probe.connect();
        }"""
    )
    hub.process.send_signal(signal.SIGSTOP)  # the request below gets no reply
    try:
        await page.evaluate(
            """() => {
                window.pending = window.probe.request("rooms", {}).then(
                    () => "answered", (err) => `${err.code}: ${err.detail}`);
            }"""
        )
    finally:
        hub.process.kill()
        hub.process.wait(10)
    outcome = await page.evaluate("() => window.pending")
    assert outcome.startswith("hub_lost:"), outcome


async def test_unanswered_offer_expires(private_hub: PrivateHub, open_page: OpenPage) -> None:
    hub = private_hub("--offer-ttl", "2")
    page = await open_page(page_url(hub.url, room="lonely", role="caller", auto="1"), "caller")
    await wait_state(page, "waiting")
    assert await wait_state(page, "ended") == "ended"
    info = await call_info(page)
    assert info["error"] == "expired", info
    assert "Nobody answered in time" in info["message"], info


@pytest.mark.parametrize(
    ("media_less_browser", "words"),
    [("no_device", "No camera"), ("camera_denied", "access was denied")],
    indirect=["media_less_browser"],
)
async def test_no_camera_still_receives(
    media_less_browser: Browser, hub_process: HubProcess, open_page: OpenPage, words: str
) -> None:
    """A browser without a usable camera says why, then takes the call receive-only."""
    code = "no_device" if words == "No camera" else "camera_denied"
    room = f"no-camera-{code}"
    viewer = await open_page(
        page_url(hub_process.url, room=room, role="caller", auto="1"),
        "no-camera",
        on=media_less_browser,
    )
    await expect(viewer.locator("#message")).to_contain_text(words, timeout=15_000)
    assert (await call_info(viewer))["mediaError"] == code
    await wait_state(viewer, "waiting")
    sender = await open_page(
        page_url(hub_process.url, room=room, role="answerer", auto="1"), "sender"
    )
    for page in (viewer, sender):
        await wait_state(page, "connected")
    assert await wait_frames(viewer, 20) >= 20


async def test_token_is_required_and_taken_from_the_url(
    private_hub: PrivateHub, open_page: OpenPage
) -> None:
    hub = private_hub("--token", "s3cret-0123456789abc")
    refused = await open_page(page_url(hub.url, room="tok", role="caller", auto="1"), "refused")
    assert await wait_state(refused, "failed") == "failed"
    info = await call_info(refused)
    assert info["error"] == "unauthorized", info
    assert "access token" in info["message"], info
    allowed = await open_page(
        page_url(hub.url, room="tok", role="caller", auto="1", token="s3cret-0123456789abc"),
        "allowed",
    )
    assert await wait_state(allowed, "waiting") == "waiting"
