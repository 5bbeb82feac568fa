"""The lobby lists waiting callers and answers them; chat runs over the data channel."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.browser.conftest import OpenPage
from tests.browser.pages import page_url, send_chat, wait_state
from tests.conftest import HubProcess

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


async def test_lobby_shows_waiting_caller_and_answers_it(
    hub_process: HubProcess, open_page: OpenPage
) -> None:
    visitor = await open_page(page_url(hub_process.url), "visitor")
    entry = visitor.locator("#lobby li[data-room='lobby-alice']")
    await expect(entry).to_have_count(0)
    caller = await open_page(
        page_url(hub_process.url, room="lobby-alice", role="caller", auto="1", name="Alice"),
        "caller",
    )
    await wait_state(caller, "waiting")
    # pushed by the hub to the watching page, no reload
    await expect(entry).to_contain_text("Alice", timeout=10_000)
    await entry.get_by_role("button", name="Answer").click()
    for page in (caller, visitor):
        await wait_state(page, "connected")
    assert await visitor.input_value("#room") == "lobby-alice"
    # answered rooms leave the lobby
    await expect(entry).to_have_count(0, timeout=10_000)


async def test_chat_round_trip(hub_process: HubProcess, open_page: OpenPage) -> None:
    room = "chat-b2b"
    caller = await open_page(
        page_url(hub_process.url, room=room, role="caller", auto="1", name="Ann"), "caller"
    )
    answerer = await open_page(
        page_url(hub_process.url, room=room, role="answerer", auto="1", name="Bob"), "answerer"
    )
    for page in (caller, answerer):
        await wait_state(page, "connected")
        await expect(page.locator("#chat-input")).to_be_enabled(timeout=10_000)
    await send_chat(caller, "hello from Ann")
    await expect(answerer.locator("#chat-log .theirs")).to_contain_text("hello from Ann")
    await expect(answerer.locator("#chat-log .theirs .from")).to_have_text("Ann")
    await send_chat(answerer, "hi Ann, Bob here")
    await expect(caller.locator("#chat-log .theirs")).to_contain_text("hi Ann, Bob here")
    received = await caller.evaluate("window.p2pcall.chat.filter(m => !m.mine)")
    assert received[0]["type"] == "chat"
    assert received[0]["from"] == "Bob"
    assert isinstance(received[0]["ts"], int)
    # the sender's own line shows too, and the input is cleared for the next one
    await expect(caller.locator("#chat-log .mine")).to_contain_text("hello from Ann")
    assert await caller.input_value("#chat-input") == ""


async def test_new_private_room_gives_a_link_that_answers_and_stays_unlisted(
    hub_process: HubProcess, open_page: OpenPage
) -> None:
    caller = await open_page(page_url(hub_process.url), "caller")
    await caller.get_by_role("button", name="New private room").click()
    await wait_state(caller, "waiting")
    link = await caller.locator("#share-url").input_value()
    m = re.fullmatch(
        re.escape(hub_process.url) + r"/\?room=([A-Za-z0-9_-]{22})&role=answerer&auto=1", link
    )
    assert m, link
    assert await caller.locator("#room").input_value() == m.group(1)
    visitor = await open_page(page_url(hub_process.url), "visitor")
    await expect(visitor.locator("#lobby-empty")).to_have_text("Nobody is waiting right now.")
    await expect(visitor.locator(f"#lobby li[data-room='{m.group(1)}']")).to_have_count(0)
    answerer = await open_page(link, "answerer")
    for page in (caller, answerer):
        await wait_state(page, "connected")
