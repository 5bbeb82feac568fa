"""deploy/haproxy.cfg in front of two real hubs on one real redis-server (``--redis``)."""

from __future__ import annotations

import asyncio
import signal

from tests.cluster.conftest import Connect, Front, health, until_held, until_state
from tests.conftest import HubProcess
from tests.hub.client import TIMEOUT, Party, answer, cand, offer, party, until


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
    front: Front, connect: Connect
) -> None:
    client = await connect(front.url, transports=("polling",))
    ack = await client.call("offer", offer("polling"))
    assert ack["ok"] is True, ack
    for _ in range(20):  # each call is a POST and a GET answered by the sid's hub
        ack = await client.call("rooms", {})
        assert ack["ok"] is True, ack
    requests = front.requests()
    assert len(requests) >= 40, requests
    servers = {server for server, _ in requests}
    assert len(servers) == 1, requests
    assert all(status == 200 for _, status in requests), requests


async def test_a_pinned_client_reaches_the_hub_of_its_cookie(
    front: Front, connect: Connect
) -> None:
    await connect(front.url, hub="hub2")
    await connect(front.url, hub="hub2")
    await until_held(front, {"hub1": 0, "hub2": 2})
    await connect(front.url, hub="hub1")
    await until_held(front, {"hub1": 1, "hub2": 2})
    # long-polling, whose every request carries the cookie
    polling = await connect(front.url, hub="hub1", transports=("polling",))
    for _ in range(3):
        await polling.call("rooms", {})
    polled = {server for server, status in front.requests() if status == 200}
    assert polled == {"hub1"}, front.requests()


async def test_a_caller_on_hub1_and_an_answerer_on_hub2_call_through_haproxy(
    front: Front, connect: Connect
) -> None:
    caller = await connect(front.url, hub="hub1")
    answerer = await connect(front.url, hub="hub2")
    await until_held(front, {"hub1": 1, "hub2": 1})
    assert (await caller.call("offer", offer("across")))["held"] is True
    await caller.call("candidate", {"room": "across", "candidate": cand(0)})
    ack = await answerer.call("join", {"room": "across"})
    assert ack["offer"] == offer("across")["description"]
    assert ack["candidates"] == [cand(0)]
    await answerer.call("answer", answer("across"))
    assert await caller.next("answer") == answer("across")
    await caller.call("hangup", {"room": "across"})
    assert await answerer.next("hangup") == {"room": "across", "reason": "hangup"}


async def test_new_connections_avoid_a_killed_hub(
    front: Front, two_hubs: list[HubProcess], connect: Connect
) -> None:
    hub1 = two_hubs[0]
    hub1.process.send_signal(signal.SIGKILL)
    await asyncio.to_thread(hub1.process.wait, TIMEOUT)
    # right away, before any health check noticed: refused connects are retried on hub2,
    # also for clients whose cookie names the dead hub
    for hub in (None, None, None, "hub1", "hub1"):
        client = await connect(front.url, hub=hub)
        assert client.session
    await until_held(front, {"hub1": 0, "hub2": 5})
    # and the health checks take it out of rotation
    await until_state(front, "hub1", "DOWN")


async def _lost(party: Party) -> None:
    """Wait (bounded) until ``party``'s connection is gone (its hub closed or died)."""
    await until(lambda: not party.sio.connected)


async def test_a_hub_sent_sigterm_leaves_rotation_and_its_clients_resume_on_the_other(
    front: Front, two_hubs: list[HubProcess], connect: Connect
) -> None:
    hub1 = two_hubs[0]
    caller = await connect(front.url, hub="hub1")
    await until_held(front, {"hub1": 1, "hub2": 0})
    await caller.call("offer", offer("drained"))
    await caller.call("candidate", {"room": "drained", "candidate": cand(0)})

    hub1.process.send_signal(signal.SIGTERM)
    # the hub closes its sockets itself; HAProxy's checks then fail and it goes DOWN
    await _lost(caller)
    # the client comes back still carrying hub1's cookie, as a browser would
    back = await connect(front.url, hub="hub1", resume=caller)
    assert back.welcome.result()["resumed"] is True
    await until_held(front, {"hub1": 0, "hub2": 1})
    await until_state(front, "hub1", "DOWN")
    assert await asyncio.to_thread(hub1.process.wait, TIMEOUT) == 0
    # a new client pinned to the drained hub is served by the other
    answerer = await connect(front.url, hub="hub1")
    ack = await answerer.call("join", {"room": "drained"})
    assert ack["offer"] == offer("drained")["description"]
    assert ack["candidates"] == [cand(0)]
    await answerer.call("answer", answer("drained"))
    assert await back.next("answer") == answer("drained")
    await until_held(front, {"hub1": 0, "hub2": 2})
    log = "".join(hub1.log)
    assert "shutting down: closing 1 sockets" in log, log
    assert "Traceback" not in log, log


async def test_sigkill_of_the_hub_holding_an_offer_the_caller_resumes_through_haproxy(
    front: Front, two_hubs: list[HubProcess], connect: Connect
) -> None:
    """The caller's hub dies with its offer and two candidates held; the caller resumes
    through HAProxy on the other hub and an answerer completes the call. Every relayed
    message arrives once and in order: a duplicate would come before the next one
    expected (one socket's events are in order), and ``next`` checks every ``seq``."""
    hub1, hub2 = two_hubs
    caller = await connect(front.url, hub="hub1")
    await until_held(front, {"hub1": 1, "hub2": 0})
    assert (await caller.call("offer", offer("killed")))["held"] is True
    for i in (0, 1):
        await caller.call("candidate", {"room": "killed", "candidate": cand(i)})

    hub1.process.send_signal(signal.SIGKILL)
    await _lost(caller)
    back = await connect(front.url, hub="hub1", resume=caller)
    assert back.welcome.result()["resumed"] is True
    await until_held(front, {"hub1": 0, "hub2": 1})
    await back.call("candidate", {"room": "killed", "candidate": cand(2)})

    answerer = await connect(front.url)
    ack = await answerer.call("join", {"room": "killed"})
    assert ack["offer"] == offer("killed")["description"]
    assert ack["candidates"] == [cand(0), cand(1), cand(2)]
    await answerer.call("answer", answer("killed"))
    for i in (5, 6):
        await answerer.call("candidate", {"room": "killed", "candidate": cand(i)})
    assert await back.next("answer") == answer("killed")
    for i in (5, 6):
        assert await back.next("candidate") == {"room": "killed", "candidate": cand(i)}
    await back.call("candidate", {"room": "killed", "candidate": cand(3)})
    assert await answerer.next("candidate") == {"room": "killed", "candidate": cand(3)}
    await answerer.call("hangup", {"room": "killed"})
    assert await back.next("hangup") == {"room": "killed", "reason": "hangup"}
    # the group buries the dead hub; the survivor keeps serving
    status, body = await health(hub2)
    assert status == 200 and body["status"] == "ok", body
    await until_state(front, "hub1", "DOWN")
