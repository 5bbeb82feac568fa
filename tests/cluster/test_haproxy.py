"""deploy/haproxy.cfg in front of two real hubs (plain hubs until --redis lands)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any

from tests.cluster.conftest import Front, until_sockets
from tests.conftest import HubProcess
from tests.hub.client import TIMEOUT, offer, party, until

Connect = Callable[..., Any]


async def test_websocket_through_haproxy_gets_welcome_and_holds_an_offer(front: Front) -> None:
    caller = await party(front.url)
    try:
        assert caller.session
        ack = await caller.call("offer", offer("through-haproxy"))
        assert ack == {"ok": True, "role": "caller", "held": True}
    finally:
        await caller.close()
    # the upgrade went through as a WebSocket (101), to one hub
    assert [status for _, status in front.requests()] == [101]


async def test_long_polling_requests_of_one_session_all_reach_one_hub(
    front: Front, two_hubs: list[HubProcess], connect: Connect
) -> None:
    client = await connect(front.url, transports=("polling",))
    ack = await client.sio.call("offer", offer("polling"), timeout=TIMEOUT)
    assert ack["ok"] is True, ack
    for _ in range(20):  # each call is a POST and a GET answered by the sid's hub
        ack = await client.sio.call("rooms", {}, timeout=TIMEOUT)
        assert ack["ok"] is True, ack
    requests = front.requests()
    assert len(requests) >= 40, requests
    servers = {server for server, _ in requests}
    assert len(servers) == 1, requests
    assert all(status == 200 for _, status in requests), requests
    # the other hub never saw the session
    index = {"hub1": 0, "hub2": 1}[servers.pop()]
    await until_sockets(two_hubs, [1 if i == index else 0 for i in range(2)])


async def test_a_pinned_client_reaches_the_hub_of_its_cookie(
    front: Front, two_hubs: list[HubProcess], connect: Connect
) -> None:
    await connect(front.url, hub="hub2")
    await connect(front.url, hub="hub2", transports=("polling",))
    await until_sockets(two_hubs, [0, 2])
    await connect(front.url, hub="hub1")
    await until_sockets(two_hubs, [1, 2])


async def test_new_connections_avoid_a_killed_hub(
    front: Front, two_hubs: list[HubProcess], connect: Connect
) -> None:
    hub1, hub2 = two_hubs
    hub1.process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(hub1.process.wait, TIMEOUT)
    before = len(front.requests())
    # right away, before any health check noticed: refused connects are retried on hub2,
    # also for clients whose cookie names the dead hub
    for hub in (None, None, None, "hub1", "hub1"):
        client = await connect(front.url, hub=hub)
        assert client.welcome["session"]
    assert {server for server, _ in front.requests()[before:]} == {"hub2"}
    await until_sockets([hub2], [5])
    # and the health checks take it out of rotation
    await until(lambda: front.state("hub1").startswith("DOWN"))
