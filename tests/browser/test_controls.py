"""In-call controls: mute, camera off, picking a camera, screen sharing, the stats panel."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.browser.conftest import OpenPage
from tests.browser.pages import connected_pair, page_url, wait_state
from tests.conftest import HubProcess

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

SENT_VIDEO = """() => {
  const t = window.p2pcall.call.pc.getTransceivers()
    .find(t => t.receiver.track.kind === 'video');
  return t.sender.track ? {
    id: t.sender.track.id, enabled: t.sender.track.enabled,
    label: t.sender.track.label, deviceId: t.sender.track.getSettings().deviceId,
  } : null;
}"""
REMOTE_ASPECT = (
    "() => { const v = document.getElementById('remote'); return v.videoWidth / v.videoHeight; }"
)


async def frames_advance(page: Page, by: int = 10) -> None:
    """The remote video keeps getting new frames (counted from now)."""
    start = await page.evaluate("window.p2pcall.remoteFrames")
    await page.wait_for_function(
        "n => window.p2pcall.remoteFrames >= n", arg=start + by, timeout=20_000
    )


async def aspect_becomes(page: Page, low: float, high: float) -> None:
    await page.wait_for_function(
        f"() => {{ const r = ({REMOTE_ASPECT})(); return r > {low} && r < {high}; }}",
        timeout=20_000,
    )


async def test_call_controls(hub_process: HubProcess, open_page: OpenPage) -> None:
    room = "controls"
    me, them = await connected_pair(open_page, hub_process.url, room, ("me", "them"))
    await frames_advance(them)

    # mute and unmute the microphone
    mute = me.get_by_role("button", name="Mute mic")
    await mute.click()
    unmute = me.get_by_role("button", name="Unmute mic")
    await expect(unmute).to_have_attribute("aria-pressed", "true")
    assert not await me.evaluate("window.p2pcall.call.stream.getAudioTracks()[0].enabled")
    await unmute.click()
    assert await me.evaluate("window.p2pcall.call.stream.getAudioTracks()[0].enabled")

    # camera off stops sending picture (the track is disabled), camera on restores it
    await me.get_by_role("button", name="Camera off").click()
    assert (await me.evaluate(SENT_VIDEO))["enabled"] is False
    await me.get_by_role("button", name="Camera on").click()
    assert (await me.evaluate(SENT_VIDEO))["enabled"] is True

    # pick another camera: the sent track is swapped in place and frames keep coming
    before = await me.evaluate(SENT_VIDEO)
    await me.locator("#devices-panel summary").click()
    select = me.locator("#camera-select")
    options = await select.locator("option").all_inner_texts()
    assert len(options) == 3, options
    # Chromium's fake_device_1 sends Y16 depth frames no encoder takes; _2 is MJPEG
    other = "fake_device_2"
    assert other != before["label"] and other in options, (before, options)
    await select.select_option(label=other)
    await me.wait_for_function(f"() => ({SENT_VIDEO})().label === {other!r}", timeout=10_000)
    await frames_advance(them)

    # share the screen (16:9 fake screen) and stop: back to the 4:3 camera
    await aspect_becomes(them, 1.2, 1.45)
    await me.get_by_role("button", name="Share screen").click()
    await expect(me.get_by_role("button", name="Stop sharing")).to_be_visible()
    await aspect_becomes(them, 1.6, 1.9)
    await me.get_by_role("button", name="Stop sharing").click()
    await aspect_becomes(them, 1.2, 1.45)
    assert (await me.evaluate(SENT_VIDEO))["label"] == other

    # the stats panel shows what is received, at what rate, and the round trip
    stats = them.locator("#stats")
    await expect(stats).to_contain_text(re.compile(r"\d+\u00d7\d+"), timeout=10_000)
    await expect(stats).to_contain_text("kbit/s", timeout=10_000)
    await expect(stats).to_contain_text(" ms", timeout=10_000)
    summary = await them.evaluate("window.p2pcall.stats")
    assert summary["inbound"]["width"] > 0 and summary["inbound"]["fps"] > 0, summary
    assert summary["rttMs"] is not None, summary


@pytest.mark.parametrize(("query", "policy"), [({"relay": "1"}, "relay"), ({}, "all")])
async def test_relay_param_ticks_the_box_and_sets_the_ice_transport_policy(
    hub_process: HubProcess, open_page: OpenPage, query: dict[str, str], policy: str
) -> None:
    params = {"room": f"relay-{policy}", "role": "caller", "auto": "1", **query}
    page = await open_page(page_url(hub_process.url, **params), "caller")
    await wait_state(page, "waiting")
    box = page.get_by_label(re.compile("Relay only"))
    assert await box.is_checked() is (policy == "relay")
    got = await page.evaluate("window.p2pcall.call.pc.getConfiguration().iceTransportPolicy")
    assert got == policy
