"""Browser fixtures: Debian's Chromium driven by Playwright with fake camera and mic.

One Chromium per test session (launching costs a second or two); a fresh context
per party so two tabs never share permissions or storage. Every page opened
through ``open_page`` is screenshotted into the test's artifacts folder when the
test ends, pass or fail, together with its console log.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    async_playwright,
    expect,
)

from bench.chromium import BASE_FLAGS, CHROMIUM
from tests.conftest import HubProcess, spawn_hub

# fps matters (frames are counted; the fake camera defaults to 20 fps); cameras to pick from
FAKE_DEVICES = "--use-fake-device-for-media-stream=fps=30,device-count=3"

# two cores shared with hubs, peers and encoders: be generous, never sleep-guess
expect.set_options(timeout=15_000)

OpenPage = Callable[..., Awaitable[Page]]
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
    context: BrowserContext
    page: Page
    console: list[str] = field(default_factory=list)


@pytest_asyncio.fixture(loop_scope="session")
async def open_page(browser: Browser, artifacts_dir: Path) -> AsyncIterator[OpenPage]:
    """``await open_page(url, label)``: a page in its own context, kept for the artifacts."""
    opened: list[Opened] = []

    async def _open(
        url: str, label: str, *, on: Browser | None = None, phone: bool = False
    ) -> Page:
        size: ViewportSize = (
            {"width": 390, "height": 844} if phone else {"width": 1280, "height": 800}
        )
        # bypass_csp: Playwright's wait_for_function evaluates its string in the page,
        # which the hub's CSP (no unsafe-eval) rightly blocks; the page itself needs none.
        context = await (on or browser).new_context(
            viewport=size, is_mobile=phone, has_touch=phone, bypass_csp=True
        )
        page = await context.new_page()
        entry = Opened(label, context, page)
        page.on("console", lambda m: entry.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: entry.console.append(f"pageerror: {e}"))
        opened.append(entry)
        await page.goto(url)
        return page

    try:
        yield _open
    finally:
        # every page first, then closing: a closing page hangs up on the others
        for entry in opened:
            try:
                await entry.page.screenshot(path=artifacts_dir / f"{entry.label}.png")
            except Exception as exc:  # a crashed page still gets its log saved
                entry.console.append(f"screenshot failed: {exc}")
        for entry in opened:
            (artifacts_dir / f"{entry.label}.console.txt").write_text(
                "\n".join(entry.console) + "\n"
            )
            await entry.context.close()
        # an uncaught exception in the page is a bug even when the test passed
        crashes = [
            f"{e.label}: {line}" for e in opened for line in e.console if "pageerror" in line
        ]
        assert not crashes, f"uncaught errors in the page: {crashes}"
