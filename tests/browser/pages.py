"""Helpers for reading the call page's automation contract from a test."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from playwright.async_api import Page

STATE_TIMEOUT_MS = 30_000


async def wait_state(page: Page, *states: str, timeout_ms: int = STATE_TIMEOUT_MS) -> str:
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


async def call_info(page: Page) -> dict[str, Any]:
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


async def wait_frames(page: Page, at_least: int, timeout_ms: int = STATE_TIMEOUT_MS) -> int:
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
