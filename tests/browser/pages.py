"""Helpers for reading the call page's automation contract from a test."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

from playwright.async_api import Page

STATE_TIMEOUT_MS = 30_000


class CallPage(Protocol):
    """What these helpers need of a page: a Playwright ``Page`` (Chromium) has it, and so
    has :class:`tests.browser.firefox.FirefoxPage`. Times are milliseconds."""

    async def evaluate(self, expression: str, arg: Any = None) -> Any: ...

    async def wait_for_function(
        self,
        expression: str,
        *,
        arg: Any = None,
        timeout: float | None = None,  # noqa: ASYNC109 (Playwright's name, in ms)
    ) -> Any: ...

    async def fill(self, selector: str, value: str) -> None: ...

    async def press(self, selector: str, key: str) -> None: ...

    async def screenshot(self, *, path: Path) -> Any: ...


async def wait_state(page: CallPage, *states: str, timeout_ms: int = STATE_TIMEOUT_MS) -> str:
    """Wait until ``body.dataset.callState`` is one of ``states``; return it."""
    try:
        await page.wait_for_function(
            "states => states.includes(document.body.dataset.callState)",
            arg=list(states),
            timeout=timeout_ms,
        )
    except Exception as exc:
        raise AssertionError(
            f"call state never became {states}; it is {await call_info(page)}"
        ) from exc
    return str(await page.evaluate("document.body.dataset.callState"))


async def call_info(page: CallPage) -> dict[str, Any]:
    """State, error and the visible message, for assertion messages."""
    info: dict[str, Any] = await page.evaluate(
        """() => ({
            state: document.body.dataset.callState,
            error: document.body.dataset.error || null,
            mediaError: document.body.dataset.mediaError || null,
            message: document.getElementById('message').innerText,
            remoteFrames: window.p2pcall ? window.p2pcall.remoteFrames : null,
        })"""
    )
    return info


async def wait_frames(page: CallPage, at_least: int, timeout_ms: int = STATE_TIMEOUT_MS) -> int:
    """Wait until the remote video has shown ``at_least`` frames since the call began."""
    try:
        await page.wait_for_function(
            "n => window.p2pcall && window.p2pcall.remoteFrames >= n",
            arg=at_least,
            timeout=timeout_ms,
        )
    except Exception as exc:
        raise AssertionError(
            f"remote video did not reach {at_least} frames: {await call_info(page)}"
        ) from exc
    return int(await page.evaluate("window.p2pcall.remoteFrames"))


def page_url(base: str, **params: str) -> str:
    return f"{base}/?{urlencode(params)}" if params else f"{base}/"


async def connected_pair(
    open_page: Any, base: str, room: str, labels: tuple[str, str] = ("caller", "answerer")
) -> tuple[Page, Page]:
    """A caller and an answerer page started from their URLs in ``room``, both connected."""
    caller = await open_page(page_url(base, room=room, role="caller", auto="1"), labels[0])
    answerer = await open_page(page_url(base, room=room, role="answerer", auto="1"), labels[1])
    for page in (caller, answerer):
        await wait_state(page, "connected")
    return caller, answerer


async def send_chat(page: CallPage, text: str) -> None:
    """Type ``text`` into the chat box and press Enter, as a person would."""
    await page.fill("#chat-input", text)
    await page.press("#chat-input", "Enter")


async def wait_until(
    page: CallPage,
    expression: str,
    arg: Any,
    never: str,
    show: str = "window.p2pcall",
    timeout_ms: int = STATE_TIMEOUT_MS,
) -> Any:
    """Wait until ``expression`` (called with ``arg`` if a function) is truthy in the page,
    then return its value. Otherwise fail with "``never``: <the page's ``show``>"."""
    try:
        await page.wait_for_function(expression, arg=arg, timeout=timeout_ms)
    except Exception as exc:
        raise AssertionError(f"{never}: {await page.evaluate(show)}") from exc
    return await page.evaluate(expression, arg)


async def wait_chat_open(page: CallPage) -> None:
    await wait_until(
        page,
        "document.body.dataset.chat === 'open'",
        None,
        "the chat channel never opened",
        show="document.body.dataset",
    )


async def wait_chat(page: CallPage, text: str) -> dict[str, Any]:
    """Wait for a chat message from the other side with ``text``; return it (wire shape)."""
    find = "text => window.p2pcall.chat.find(m => !m.mine && m.text === text) || null"
    never = f"no chat message {text!r} arrived; chat so far"
    message: dict[str, Any] = await wait_until(page, find, text, never, "window.p2pcall.chat")
    return message


async def wait_inbound_video(page: CallPage) -> dict[str, Any]:
    """Wait until the page's stats (``getStats`` each second) show video decoded at a
    non-zero frame rate; return that ``inbound`` summary (``static/stats.js``)."""
    ready = (
        "() => { const i = window.p2pcall.stats && window.p2pcall.stats.inbound;"
        " return i && i.framesDecoded > 0 && i.fps > 0 ? i : null; }"
    )
    never = "no video decoded at a frame rate; stats"
    inbound: dict[str, Any] = await wait_until(page, ready, None, never, "window.p2pcall.stats")
    return inbound


async def wait_audio_in(page: CallPage) -> float:
    """Wait until the page's stats show sound arriving; return its bitrate in kbit/s."""
    ready = (
        "() => { const s = window.p2pcall.stats; return s && s.audioInKbps > 0 && s.audioInKbps; }"
    )
    never = "no audio arrives; stats"
    return float(await wait_until(page, ready, None, never, "window.p2pcall.stats"))
