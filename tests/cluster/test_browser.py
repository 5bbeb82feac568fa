"""The call page in Chromium and the headless Python peer, through HAProxy, on two hubs.

The page is pinned to hub1 by HAProxy's own sticky cookie, set in its browser context
before it loads, as a returning visitor would carry it. The peer (``python -m peer``)
sends no cookie; putting hub1 in HAProxy's ``drain`` state (admin socket) then sends every
newcomer without one to hub2, while hub1 keeps the clients whose cookie names it. The hubs'
connection counts (admin socket) and request log (``%b/%s`` and the cookie's state) show where each
party was; real frames must flow both ways.
"""

from __future__ import annotations

import pytest

from tests.browser.conftest import OpenPage, StartPeer
from tests.browser.pages import call_info, page_url, wait_frames, wait_state
from tests.cluster.conftest import COOKIE, Front, until_held

pytestmark = [
    pytest.mark.slow,
    pytest.mark.asyncio(loop_scope="session"),
    pytest.mark.timeout(120),
]


async def test_the_page_on_hub1_calls_a_python_peer_on_hub2(
    front: Front, open_page: OpenPage, start_peer: StartPeer
) -> None:
    room = "across-hubs"
    page = await open_page(
        page_url(front.url, room=room, role="caller", auto="1"),
        "browser-caller-hub1",
        cookies={COOKIE: "hub1"},
    )
    await wait_state(page, "waiting")
    await until_held(front, {"hub1": 1, "hub2": 0})
    front.command("set server hubs/hub1 state drain")
    peer = await start_peer(room, "answerer", "--duration", "5", server=front.url)
    assert await wait_state(page, "connected", "failed") == "connected", await call_info(page)
    await until_held(front, {"hub1": 1, "hub2": 1})  # the page's socket on hub1, the peer's on hub2
    assert await wait_frames(page, 30) >= 30
    # the peer hangs up after --duration; the page, on the other hub, must hear it
    assert await wait_state(page, "ended") == "ended"
    assert await peer.wait() == 0, peer.log()
    stats = peer.stats()
    assert stats["frames_received"] >= 30, stats
    assert stats["video"]["width"] > 0, stats

    # HAProxy's log: everything the page fetched went to hub1 by its cookie ("VN": valid,
    # none inserted) ...
    page_loads = front.logged("/")
    assert page_loads and {(r.server, r.cookie) for r in page_loads} == {("hub1", "VN")}
    # ... and of the two WebSockets, the peer's (no cookie sent, one inserted: "NI") went
    # to hub2
    sockets = [(r.server, r.status, r.cookie) for r in front.logged()]
    assert sorted(sockets) == [("hub1", 101, "VN"), ("hub2", 101, "NI")], sockets
