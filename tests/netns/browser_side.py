"""The browser side of a namespace test, run INSIDE a host namespace (``ip netns exec``).

Playwright's driver and Debian's Chromium both start here, so every socket the page
opens (Socket.IO, ICE, TURN) belongs to this host's network stack. Usage::

    python -m tests.netns.browser_side PAGE_URL SCREENSHOT

Prints one JSON line: the call state, remote frames, the stats panel's selected pair
and its "Route" row. Exits 0 once the call connected, frames flowed and it ended.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any
from urllib.parse import urlsplit

from playwright.async_api import async_playwright

from bench.chromium import BASE_FLAGS, CHROMIUM
from tests.browser.pages import call_info, wait_frames, wait_state

FAKE_DEVICES = "--use-fake-device-for-media-stream=fps=30"


async def main(url: str, screenshot: str) -> int:
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            # the hub is not on localhost: without this the page is no secure context and
            # has no camera (getUserMedia needs one)
            args=[
                *BASE_FLAGS,
                FAKE_DEVICES,
                f"--unsafely-treat-insecure-origin-as-secure={origin}",
            ],
            timeout=60_000,
        )
        page = await browser.new_page()
        result: dict[str, Any] = {}
        try:
            await page.goto(url)
            await wait_state(page, "connected", timeout_ms=45_000)
            result["frames"] = await wait_frames(page, 10)
            await page.wait_for_function(
                "() => window.p2pcall.stats && window.p2pcall.stats.pair"
                " && window.p2pcall.stats.pair.local",
                timeout=15_000,
            )
            result["pair"] = await page.evaluate("window.p2pcall.stats.pair")
            result["route"] = await page.evaluate(
                """() => [...document.querySelectorAll('#stats dt')]
                    .find(dt => dt.textContent === 'Route').nextElementSibling.textContent"""
            )
            result["relayChecked"] = await page.is_checked("#relay-only")
            result["state"] = await wait_state(page, "ended", timeout_ms=45_000)
            return 0
        except AssertionError as exc:
            result["error"] = str(exc)
            return 1
        finally:
            result.setdefault("info", await call_info(page))
            await page.screenshot(path=screenshot)
            print(json.dumps(result), flush=True)
            await browser.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2])))
