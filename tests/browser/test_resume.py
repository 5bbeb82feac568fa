"""The page through a signaling blip and a hub restart (contract v1.1 resume).

Real faults: the page and the Python peer reach the hub through a TCP proxy
(tests/faults.py) that cuts every connection and refuses new ones for 5 s; a hub
subprocess killed and restarted on the same port.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import pytest
from playwright.async_api import expect

from tests.browser.conftest import OpenPage, PrivateHub
from tests.browser.pages import call_info, page_url, wait_state
from tests.conftest import ROOT
from tests.faults import FaultProxy

pytestmark = [
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(90),
]

CUT_SECONDS = 5.0


async def _frames(page: object) -> int:
    return int(await page.evaluate("window.p2pcall.remoteFrames"))  # type: ignore[attr-defined]


async def python_peer(url: str, room: str, role: str, log: Path) -> asyncio.subprocess.Process:
    """``python -m peer`` in ``room`` with the test pattern; its stderr (status line) to ``log``."""
    with log.open("wb") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "peer",
            *("--server", url, "--room", room, "--role", role),
            *("--video", "testsrc", "--timeout", "60"),
            cwd=ROOT,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=out,
        )


async def stopped(peer: asyncio.subprocess.Process) -> None:
    if peer.returncode is None:
        peer.kill()
        await peer.wait()


async def test_page_and_python_peer_ride_out_a_5_s_signaling_cut(
    private_hub: PrivateHub, open_page: OpenPage, artifacts_dir: Path
) -> None:
    hub = private_hub()
    proxy = await FaultProxy.to_url(hub.url)
    log_path = artifacts_dir / "peer-answerer.stderr.txt"
    try:
        peer = await python_peer(proxy.url, "blip", "answerer", log_path)
        try:
            page = await open_page(
                page_url(proxy.url, room="blip", role="caller", auto="1"), "browser"
            )
            assert await wait_state(page, "connected", "failed") == "connected", await call_info(
                page
            )
            await page.wait_for_function("window.p2pcall.remoteFrames >= 30", timeout=30_000)
            proxy.refuse(True)
            proxy.cut()
            assert await wait_state(page, "reconnecting") == "reconnecting"
            before = await _frames(page)
            await asyncio.sleep(CUT_SECONDS)  # the outage itself, not a wait for an event
            during = await _frames(page) - before
            assert during >= 20, f"frames stopped while signaling was down: {during}"
            proxy.refuse(False)
            assert await wait_state(page, "connected", "failed") == "connected", await call_info(
                page
            )
            await page.wait_for_function("window.p2pcall.call.signaling.resumes >= 1")
            await page.wait_for_function("!window.p2pcall.peerAway", timeout=20_000)
            history = await page.evaluate("window.p2pcall.history")
            assert history[-3:] == ["connected", "reconnecting", "connected"], history
            assert "ended" not in history and "failed" not in history
            await page.get_by_role("button", name="Hang up").click()
            assert await asyncio.wait_for(peer.wait(), 40) == 0, log_path.read_text()[-2000:]
        finally:
            await stopped(peer)
        text = log_path.read_text()
        assert "signaling reconnecting" in text and "signaling resumed" in text, text[-2000:]
    finally:
        await proxy.close()


async def test_lobby_comes_back_by_itself_after_a_hub_restart(
    private_hub: PrivateHub, open_page: OpenPage
) -> None:
    hub = private_hub()
    port = hub.url.rsplit(":", 1)[1]
    visitor = await open_page(page_url(hub.url), "visitor")
    empty = visitor.locator("#lobby-empty")
    await visitor.wait_for_function("window.p2pcall.lobbyWatched === 1")
    hub.process.send_signal(signal.SIGKILL)
    hub.process.wait(10)
    await expect(empty).to_have_text("Reconnecting to the hub…")
    second = private_hub("--port", port)
    try:
        await expect(empty).to_have_text("Nobody is waiting right now.", timeout=20_000)
        await visitor.wait_for_function("window.p2pcall.lobbyWatched === 2")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nhub log:\n{''.join(second.log)[-3000:]}") from None
    # and it is live: a caller arriving now shows up without a reload
    caller = await open_page(page_url(hub.url, room="after", role="caller", auto="1"), "caller")
    await wait_state(caller, "waiting")
    await expect(visitor.locator("#lobby li[data-room='after']")).to_be_visible()


async def test_two_tabs_one_loses_its_network_for_5_s(
    private_hub: PrivateHub, open_page: OpenPage
) -> None:
    hub = private_hub()
    proxy = await FaultProxy.to_url(hub.url)
    try:
        caller = await open_page(
            page_url(proxy.url, room="tabs", role="caller", auto="1"), "caller"
        )
        await wait_state(caller, "waiting")
        answerer = await open_page(
            page_url(hub.url, room="tabs", role="answerer", auto="1"), "answerer"
        )
        for page in (caller, answerer):
            assert await wait_state(page, "connected", "failed") == "connected"
        proxy.refuse(True)
        proxy.cut()
        assert await wait_state(caller, "reconnecting") == "reconnecting"
        await expect(caller.locator("#state-text")).to_have_text(
            "Reconnecting to the hub… (the call goes on)"
        )
        await expect(answerer.locator("#message")).to_contain_text(
            "The other side's connection dropped; waiting for it to come back."
        )
        before = await _frames(answerer)
        await asyncio.sleep(CUT_SECONDS)  # the outage itself, not a wait for an event
        assert await _frames(answerer) - before >= 20, "the media stopped with the hub link"
        proxy.refuse(False)
        assert await wait_state(caller, "connected", "failed") == "connected"
        await expect(answerer.locator("#message")).to_contain_text("The other side is back.")
        assert await answerer.evaluate("document.body.dataset.callState") == "connected"
        # the hub link works again: a hang-up from the tab that dropped reaches the other
        await caller.get_by_role("button", name="Hang up").click()
        assert await wait_state(answerer, "ended") == "ended"
        assert "The other side hung up." in (await call_info(answerer))["message"]
    finally:
        await proxy.close()


async def test_hub_restart_during_a_call_with_a_python_peer(
    private_hub: PrivateHub, open_page: OpenPage, artifacts_dir: Path
) -> None:
    hub = private_hub()
    port = hub.url.rsplit(":", 1)[1]
    log_path = artifacts_dir / "peer-answerer.stderr.txt"
    peer = await python_peer(hub.url, "restart", "answerer", log_path)
    try:
        page = await open_page(page_url(hub.url, room="restart", role="caller", auto="1"), "page")
        assert await wait_state(page, "connected", "failed") == "connected", await call_info(page)
        await page.wait_for_function("window.p2pcall.remoteFrames >= 30", timeout=30_000)
        hub.process.send_signal(signal.SIGKILL)
        hub.process.wait(10)
        private_hub("--port", port)
        await expect(page.locator("#message")).to_contain_text(
            "The hub restarted and no longer knows this call; the call goes on", timeout=20_000
        )
        before = await _frames(page)
        await page.wait_for_function(f"window.p2pcall.remoteFrames >= {before + 30}")
        assert await page.evaluate("document.body.dataset.callState") == "connected"
        assert "failed" not in await page.evaluate("window.p2pcall.history")
        # the Python side reconnects on its own schedule (backoff with jitter): wait for it
        said = "signaling lost, call goes on without the hub"
        for _ in range(300):
            if said in log_path.read_text():
                break
            await asyncio.sleep(0.1)
        text = log_path.read_text()
        assert said in text and "could not resume the session (unknown)" in text, text[-2000:]
        assert peer.returncode is None, "the Python peer ended its call"
    finally:
        await stopped(peer)
