"""A foreign site that frames the page with ``auto=1`` must not start a call.

The hub forbids framing (``X-Frame-Options: DENY``, CSP ``frame-ancestors 'none'``);
behind a proxy that strips those headers the page itself still waits for a click.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from playwright.async_api import Browser, Frame, Page

from tests.browser.conftest import Opened, OpenPage, PageKeeper, PrivateHub
from tests.browser.pages import page_url

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

FRAMING_HEADERS = {"x-frame-options", "content-security-policy"}
# hop-by-hop and length headers: aiohttp sets its own on the relayed response
NOT_RELAYED = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
EVENT_TIMEOUT_MS = 20_000


def foreign_page(src: str) -> str:
    """A page of another origin that frames ``src`` and records the frame's load/error."""
    return (
        "<!doctype html><title>foreign</title>"
        f'<iframe id="f" width="900" height="700" src="{src}"'
        " onload=\"window.frameEvent = 'load'\" onerror=\"window.frameEvent = 'error'\">"
        "</iframe>"
    )


@asynccontextmanager
async def serve(
    routes: Callable[[web.Application], None],
) -> AsyncIterator[str]:
    """An aiohttp app on a loopback port of its own; yields its base URL."""
    app = web.Application()
    routes(app)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


def header_stripping_proxy(hub_url: str, client: aiohttp.ClientSession) -> Any:
    """Relay every request (HTTP and WebSocket) to the hub, minus the framing headers."""

    async def relay_ws(request: web.Request) -> web.StreamResponse:
        inner = web.WebSocketResponse()
        await inner.prepare(request)
        async with client.ws_connect(hub_url + request.rel_url.path_qs) as outer:

            async def pump(src: Any, dst: Any) -> None:
                async for msg in src:
                    if msg.type == aiohttp.WSMsgType.TEXT:
                        await dst.send_str(msg.data)
                    elif msg.type == aiohttp.WSMsgType.BINARY:
                        await dst.send_bytes(msg.data)
                await dst.close()

            await asyncio.gather(pump(inner, outer), pump(outer, inner))
        return inner

    async def relay(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await relay_ws(request)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in NOT_RELAYED}
        async with client.request(
            request.method,
            hub_url + request.rel_url.path_qs,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as upstream:
            body = await upstream.read()
            kept = {
                k: v
                for k, v in upstream.headers.items()
                if k.lower() not in FRAMING_HEADERS | NOT_RELAYED
            }
            return web.Response(status=upstream.status, headers=kept, body=body)

    return relay


async def health(client: aiohttp.ClientSession, hub_url: str) -> dict[str, Any]:
    async with client.get(f"{hub_url}/healthz") as resp:
        data: dict[str, Any] = await resp.json()
        return data


async def framed_page(page: Page) -> Frame:
    """The iframe's frame, once the outer page has seen its load or error event."""
    await page.wait_for_function("() => !!window.frameEvent", timeout=EVENT_TIMEOUT_MS)
    frames = [f for f in page.frames if f is not page.main_frame]
    assert len(frames) == 1, [f.url for f in page.frames]
    return frames[0]


async def test_hub_refuses_to_be_framed(
    browser: Browser, page_keeper: PageKeeper, private_hub: PrivateHub
) -> None:
    """With the hub's real headers (no CSP bypass) the framed page never runs."""
    hub = private_hub()
    target = page_url(hub.url, room="framed", role="caller", auto="1")

    def routes(app: web.Application) -> None:
        async def index(request: web.Request) -> web.Response:
            return web.Response(text=foreign_page(target), content_type="text/html")

        app.router.add_get("/", index)

    async with aiohttp.ClientSession() as client, serve(routes) as foreign:
        context = await browser.new_context()  # no bypass_csp: the real policy applies
        page = await context.new_page()
        entry = Opened("foreign", page, context.close, [])
        page.on("console", lambda m: entry.console.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: entry.console.append(f"pageerror: {e}"))
        page_keeper.keep(entry)
        await page.goto(foreign)
        frame = await framed_page(page)
        # Chromium shows its own error page in place of the refused document
        assert frame.url.startswith("chrome-error://"), frame.url
        state = await health(client, hub.url)
        assert state["heldOffers"] == 0, state
        assert state["sockets"] == 0, state


async def test_framed_page_waits_for_a_click(open_page: OpenPage, private_hub: PrivateHub) -> None:
    """Headers stripped by a proxy: framed, ``auto=1`` shows click-to-start, holds
    nothing, and a click on Call then holds the offer."""
    hub = private_hub()
    async with aiohttp.ClientSession() as client:

        def proxy_routes(app: web.Application) -> None:
            app.router.add_route("*", "/{tail:.*}", header_stripping_proxy(hub.url, client))

        async with serve(proxy_routes) as proxy:
            target = page_url(proxy, room="framed", role="caller", auto="1")

            def routes(app: web.Application) -> None:
                async def index(request: web.Request) -> web.Response:
                    return web.Response(text=foreign_page(target), content_type="text/html")

                app.router.add_get("/", index)

            async with serve(routes) as foreign:
                page = await open_page(foreign, "foreign")
                frame = await framed_page(page)
                assert frame.url == target, frame.url
                await frame.wait_for_function(
                    "() => document.getElementById('message').innerText"
                    '.includes("inside another site\'s frame")',
                    timeout=EVENT_TIMEOUT_MS,
                )
                assert await frame.evaluate("document.body.dataset.callState") == "idle"
                state = await health(client, hub.url)
                assert state["heldOffers"] == 0, state

                await frame.get_by_role("button", name="Call", exact=True).click()
                # a Frame is not a whole CallPage (no screenshot): wait on its state directly
                await frame.wait_for_function(
                    "document.body.dataset.callState === 'waiting'", timeout=EVENT_TIMEOUT_MS
                )
                state = await health(client, hub.url)
                assert state["heldOffers"] == 1, state
