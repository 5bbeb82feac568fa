"""Browser fixtures: Debian's Chromium (Playwright) and firefox-esr (WebDriver BiDi,
``firefox.py``), both with fake camera and mic.

One browser of each kind per test session (launching costs a second or two); a fresh
context per party so two tabs never share permissions or storage. Every page opened
through ``open_page`` or ``open_call_page`` is screenshotted into the test's artifacts
folder when the test ends, pass or fail, together with its console log.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    Page,
    Playwright,
    ViewportSize,
    async_playwright,
    expect,
)

from bench.chromium import BASE_FLAGS, CHROMIUM
from tests.browser.firefox import Firefox, missing_parts
from tests.browser.pages import CallPage
from tests.conftest import ROOT, HubProcess, spawn_hub

# fps matters (frames are counted; the fake camera defaults to 20 fps); cameras to pick from
FAKE_DEVICES = "--use-fake-device-for-media-stream=fps=30,device-count=3"

# two cores shared with hubs, peers and encoders: be generous, never sleep-guess
expect.set_options(timeout=15_000)

OpenPage = Callable[..., Awaitable[Page]]
OpenCallPage = Callable[[str, str, str], Awaitable[CallPage]]
PrivateHub = Callable[..., HubProcess]


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian chromium: apt-get install chromium "
            "(make test does it)",
            pytrace=False,
        )


async def launch(pw: Playwright, *, fake_devices: bool = True, grant_media: bool = True) -> Browser:
    """Chromium with the project's flags; without fake devices it finds no camera,
    without ``grant_media`` every camera/microphone request is refused."""
    require_chromium()
    flags = [f for f in BASE_FLAGS if grant_media or f != "--use-fake-ui-for-media-stream"]
    if fake_devices:
        flags.append(FAKE_DEVICES)
    return await pw.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=flags, timeout=60_000
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as pw:
        yield pw


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser(playwright: Playwright) -> AsyncIterator[Browser]:
    b = await launch(playwright)
    try:
        yield b
    finally:
        await b.close()


@pytest_asyncio.fixture(loop_scope="session")
async def media_less_browser(
    playwright: Playwright, request: pytest.FixtureRequest
) -> AsyncIterator[Browser]:
    """A Chromium whose pages get no camera: ``no_device`` (none attached) or
    ``camera_denied`` (permission refused), chosen by indirect parametrization.

    Request it before ``open_page`` so its pages are screenshotted before it closes.
    """
    kind = getattr(request, "param", "no_device")
    b = await launch(
        playwright, fake_devices=kind != "no_device", grant_media=kind != "camera_denied"
    )
    try:
        yield b
    finally:
        await b.close()


@pytest.fixture
def private_hub() -> Iterator[PrivateHub]:
    """``private_hub(*flags)``: a hub subprocess of this test's own, stopped at the end."""
    hubs: list[HubProcess] = []

    def _spawn(*args: str) -> HubProcess:
        hubs.append(spawn_hub(*args))
        return hubs[-1]

    yield _spawn
    for hp in hubs:
        if hp.process.poll() is None:
            hp.stop()
        else:
            hp.reader.join(10)


@dataclass
class Opened:
    label: str
    page: CallPage
    close: Callable[[], Awaitable[None]]
    console: list[str]


class PageKeeper:
    """The pages one test opened, in any browser; :meth:`finish` saves their artifacts."""

    def __init__(self, artifacts_dir: Path) -> None:
        self.artifacts_dir = artifacts_dir
        self.opened: list[Opened] = []

    def keep(self, entry: Opened) -> None:
        self.opened.append(entry)

    async def finish(self) -> None:
        """Screenshot every page, then close them, then fail on uncaught page errors."""
        # every page first, then closing: a closing page hangs up on the others
        for entry in self.opened:
            try:
                await entry.page.screenshot(path=self.artifacts_dir / f"{entry.label}.png")
            except Exception as exc:  # a crashed page still gets its log saved
                entry.console.append(f"screenshot failed: {exc}")
        for entry in self.opened:
            (self.artifacts_dir / f"{entry.label}.console.txt").write_text(
                "\n".join(entry.console) + "\n"
            )
            await entry.close()
        # an uncaught exception in the page is a bug even when the test passed
        crashes = [
            f"{e.label}: {line}" for e in self.opened for line in e.console if "pageerror" in line
        ]
        assert not crashes, f"uncaught errors in the page: {crashes}"


@pytest_asyncio.fixture(loop_scope="session")
async def page_keeper(artifacts_dir: Path) -> AsyncIterator[PageKeeper]:
    keeper = PageKeeper(artifacts_dir)
    try:
        yield keeper
    finally:
        await keeper.finish()


@pytest_asyncio.fixture(loop_scope="session")
async def open_page(browser: Browser, page_keeper: PageKeeper) -> OpenPage:
    """``await open_page(url, label)``: a page in its own context, kept for the artifacts.

    ``cookies={"name": "value"}`` are set in that context for ``url``'s site before the
    page loads."""

    async def _open(
        url: str,
        label: str,
        *,
        on: Browser | None = None,
        phone: bool = False,
        cookies: Mapping[str, str] | None = None,
    ) -> Page:
        size: ViewportSize = (
            {"width": 390, "height": 844} if phone else {"width": 1280, "height": 800}
        )
        # bypass_csp: Playwright's wait_for_function evaluates its string in the page,
        # which the hub's CSP (no unsafe-eval) rightly blocks; the page itself needs none.
        context = await (on or browser).new_context(
            viewport=size, is_mobile=phone, has_touch=phone, bypass_csp=True
        )
        if cookies:  # before the first request: e.g. a load balancer's sticky cookie
            await context.add_cookies(
                [{"name": k, "value": v, "url": url} for k, v in cookies.items()]
            )
        page = await context.new_page()
        entry = Opened(label, page, context.close, [])
        page.on("console", lambda m: entry.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: entry.console.append(f"pageerror: {e}"))
        page_keeper.keep(entry)
        await page.goto(url)
        return page

    return _open


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def firefox() -> AsyncIterator[Firefox]:
    """One driver (and so one Firefox) for the session; Firefox starts on the first page."""
    problem = missing_parts()
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    ff = await Firefox.start()
    try:
        yield ff
    finally:
        await ff.close()


@pytest_asyncio.fixture(loop_scope="session")
async def open_call_page(
    open_page: OpenPage, firefox: Firefox, page_keeper: PageKeeper
) -> OpenCallPage:
    """``await open_call_page(browser, url, label)``: the call page in ``"chromium"`` or
    ``"firefox"``, kept for the artifacts like ``open_page``'s pages."""

    async def _open(browser_name: str, url: str, label: str) -> CallPage:
        if browser_name == "chromium":
            return await open_page(url, label)
        if browser_name != "firefox":
            raise ValueError(f"browser {browser_name!r}: expected 'chromium' or 'firefox'")
        page = await firefox.open(url)
        page_keeper.keep(Opened(label, page, page.close, page.console))
        return page

    return _open


PEER_EXIT_TIMEOUT = 40.0
LINE_TIMEOUT = 20.0
STATUS_TIMEOUT = 30.0
# the peer's status lines in its room, and once frames arrive ("connected | 29.8 fps | ...")
WAITING = re.compile(r"^waiting for (caller|answerer)$", re.MULTILINE)
RECEIVING = re.compile(r"^connected \| \d+(\.\d+)? fps.*$", re.MULTILINE)


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

    async def wait_status(self, pattern: re.Pattern[str], what: str) -> str:
        """Wait until the peer's status line matches ``pattern``; return that line.

        In a pipe the peer writes its status on each phase change and every 5 s
        (``docs/peer.md``), so this reads its log with a bound, not a guessed sleep."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STATUS_TIMEOUT
        while loop.time() < deadline:
            text = self.log_path.read_text() if self.log_path.exists() else ""
            if m := pattern.search(text):
                return m.group(0)
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.2)
        raise AssertionError(f"python peer never showed {what}: {self.log()}")

    async def wait_waiting(self) -> str:
        """The peer is in its room, waiting for the other party."""
        return await self.wait_status(WAITING, "that it waits in its room")

    async def wait_receiving(self) -> str:
        """The peer's status shows a received frame rate."""
        return await self.wait_status(RECEIVING, "a received frame rate")

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
async def start_peer(
    request: pytest.FixtureRequest, artifacts_dir: Path
) -> AsyncIterator[StartPeer]:
    """``await start_peer(room, role, *flags)``: a Python peer, killed if still running.

    It calls through the session's ``hub_process`` unless ``server=URL`` names another
    hub (or a load balancer in front of several)."""
    async with AsyncExitStack() as stack:
        peers: list[Peer] = []

        async def _start(
            room: str, role: str, *flags: str, chat: bool = False, server: str | None = None
        ) -> Peer:
            if server is None:  # only then: a test with its own hub starts no session hub
                hub_process: HubProcess = request.getfixturevalue("hub_process")
                server = hub_process.url
            label = f"peer-{role}"
            stats = artifacts_dir / f"{label}.stats.json"
            log = stack.enter_context((artifacts_dir / f"{label}.stderr.txt").open("wb"))
            args = ["--server", server, "--room", room, "--role", role, "--no-mdns"]
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
