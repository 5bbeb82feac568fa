"""The browser page calling and answering the headless Python peer (``python -m peer``)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import expect

from tests.browser.conftest import OpenPage
from tests.browser.pages import call_info, page_url, wait_frames, wait_state
from tests.conftest import ROOT, HubProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(90),
]

PEER_EXIT_TIMEOUT = 40.0
LINE_TIMEOUT = 20.0


class Peer:
    """One ``python -m peer`` subprocess; its stderr goes to the artifacts folder."""

    def __init__(self, proc: asyncio.subprocess.Process, stats: Path, log: Path) -> None:
        self.proc = proc
        self.stats_path = stats
        self.log_path = log

    async def wait(self) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), PEER_EXIT_TIMEOUT)
        except TimeoutError:
            raise AssertionError(
                f"python peer still running after {PEER_EXIT_TIMEOUT} s: {self.log()}"
            ) from None

    def stats(self) -> dict[str, Any]:
        assert self.stats_path.exists(), f"no --stats-json written: {self.log()}"
        data: dict[str, Any] = json.loads(self.stats_path.read_text())
        return data

    def log(self) -> str:
        return self.log_path.read_text()[-2000:] if self.log_path.exists() else ""

    async def say(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()

    async def read_line(self) -> str:
        assert self.proc.stdout is not None
        try:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), LINE_TIMEOUT)
        except TimeoutError:
            raise AssertionError(
                f"python peer printed nothing in {LINE_TIMEOUT} s: {self.log()}"
            ) from None
        return raw.decode().strip()


StartPeer = Callable[..., Awaitable[Peer]]


@pytest_asyncio.fixture(loop_scope="session")
async def start_peer(hub_process: HubProcess, artifacts_dir: Path) -> AsyncIterator[StartPeer]:
    """``await start_peer(room, role, *flags)``: a Python peer, killed if still running."""
    async with AsyncExitStack() as stack:
        peers: list[Peer] = []

        async def _start(room: str, role: str, *flags: str, chat: bool = False) -> Peer:
            label = f"peer-{role}"
            stats = artifacts_dir / f"{label}.stats.json"
            log = stack.enter_context((artifacts_dir / f"{label}.stderr.txt").open("wb"))
            args = ["--server", hub_process.url, "--room", room, "--role", role]
            args += ["--video", "testsrc", "--timeout", "30", "--stats-json", str(stats)]
            if chat:
                args.append("--chat")
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "peer",
                *args,
                *flags,
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE if chat else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
            peers.append(Peer(proc, stats, artifacts_dir / f"{label}.stderr.txt"))
            return peers[-1]

        try:
            yield _start
        finally:
            for peer in peers:
                if peer.proc.returncode is None:
                    peer.proc.kill()
                await peer.proc.wait()
                if peer.proc.stdin is not None:
                    peer.proc.stdin.close()


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
