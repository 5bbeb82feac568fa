"""Hubs sharing one Redis (``--redis``), with real faults: SIGKILL of a hub, Redis stopped.

The contract suites already run on a two-hub group (tests/conftest.py, ``redis``);
these cases are what only a group has: a hub dying with a held offer, a session
resuming on another hub, Redis going away and coming back, hubs that disagree.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from signaling import Config
from signaling.server import Hub
from signaling.shared import HEARTBEAT_TTL, LEADER_TTL, StoreError
from tests.conftest import HubGroup, RunningHub, spawn_hub, start_group
from tests.shared_hubs import RedisServer, RoundRobin, start_redis

from .client import Party, answer, cand, error_code, offer, party, until
from .test_hub import refused_with

# a dead hub is buried once its heartbeat lapsed, by a leader that may first have to
# take over from it: the bound for that, with room for a loaded machine
BURIAL = HEARTBEAT_TTL + LEADER_TTL + HEARTBEAT_TTL + 10.0


async def until_served(client: Party, event: str, payload: dict[str, Any]) -> None:
    """Send ``event`` until the hub takes it (Redis back), every 50 ms for 10 s."""
    for _ in range(200):
        if (await client.call(event, payload)).get("ok"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the hubs did not take {event} again")


@pytest.fixture
async def group(redis_server: RedisServer) -> AsyncIterator[tuple[RunningHub, HubGroup]]:
    running, group = await start_group(
        Config(port=0, drain_timeout=0.5, transport="lean", redis=redis_server.url)
    )
    yield running, group
    await group.cleanup()


async def test_a_caller_and_an_answerer_on_different_hubs_call(
    group: tuple[RunningHub, HubGroup],
) -> None:
    running, hubs = group
    caller, answerer = await party(running.url), await party(running.url)
    one, two = (h.hub for h in hubs.hubs)
    # the front sent them to different hubs, and each hub knows both sockets
    assert one.sio.eio.sockets and two.sio.eio.sockets
    assert len(one.socket_hub) == len(two.socket_hub) == 2
    assert set(one.socket_hub.values()) == {one.hub_id, two.hub_id}
    assert (await caller.call("offer", offer("r")))["held"] is True
    ack = await answerer.call("join", {"room": "r"})
    assert ack["offer"] == offer("r")["description"]
    await answerer.call("answer", answer("r"))
    assert await caller.next("answer") == answer("r")
    await caller.call("hangup", {"room": "r"})
    assert await answerer.next("hangup") == {"room": "r", "reason": "hangup"}
    # both copies of the state agree: the room is gone everywhere
    await until(lambda: one.rooms.get("r") is None and two.rooms.get("r") is None)
    await caller.close()
    await answerer.close()


async def test_hubs_with_different_limits_do_not_start_together(
    redis_server: RedisServer,
) -> None:
    config = Config(port=0, transport="lean", redis=redis_server.url, redis_prefix="limits")
    running, group = await start_group(config, count=1)
    try:
        assert running.hub.store is not None
        other = Hub(replace(running.config, max_candidates=5))
        assert other.store is not None
        with pytest.raises(StoreError, match="limits differ from the other hubs'"):
            await other.store.start()
        await other.store.redis.aclose()
    finally:
        await group.cleanup()


async def test_sigkill_of_the_hub_holding_an_offer_loses_nothing(tmp_path: Path) -> None:
    """The caller's hub dies by SIGKILL with the offer held; the caller resumes on the
    other hub and an answerer completes the call; a paired party hears away/back."""
    redis = start_redis(tmp_path)  # its own: these hubs use the default key prefix
    args = ("--redis", redis.url, "--resume-grace", "60")
    one, two = spawn_hub(*args), spawn_hub(*args)
    front = await RoundRobin([_port(one.url), _port(two.url)]).start()
    made: list[Party] = []
    try:
        caller = await party(f"http://127.0.0.1:{front.port}")  # on hub one
        watcher = await party(f"http://127.0.0.1:{front.port}")  # on hub two
        made += [caller, watcher]
        await caller.call("offer", offer("held"))
        await caller.call("candidate", {"room": "held", "candidate": cand(0)})
        # a second room, paired across the hubs: its answerer must hear peer_away
        await caller.call("offer", offer("paired"))
        await watcher.call("join", {"room": "paired"})

        one.process.send_signal(signal.SIGKILL)
        one.process.wait(10)
        # the watcher's side of the call: its party is away (the dead hub's sessions
        # enter their grace), not gone
        name, data = await asyncio.wait_for(watcher.next_event(), BURIAL)
        assert (name, data["room"]) == ("peer_away", "paired")

        back = await caller.resume(two.url)
        made.append(back)
        assert back.welcome.result()["resumed"] is True
        assert await watcher.next("peer_back") == {"room": "paired"}

        answerer = await party(two.url)
        made.append(answerer)
        ack = await answerer.call("join", {"room": "held"})
        assert ack["offer"] == offer("held")["description"]
        assert ack["candidates"] == [cand(0)]
        await answerer.call("answer", answer("held"))
        assert await back.next("answer") == answer("held")
        await watcher.call("candidate", {"room": "paired", "candidate": cand(7)})
        assert await back.next("candidate") == {"room": "paired", "candidate": cand(7)}
    finally:
        for p in made:
            await p.close()
        await front.stop()
        log = two.stop()
        one.stop()
        redis.stop()
    assert "Traceback" not in log, log
    assert "is gone: 1 of its sockets' sessions into grace" in log, log


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_redis_away_means_unavailable_then_service_comes_back(tmp_path: Path) -> None:
    redis = start_redis(tmp_path, appendonly=True)
    running, group = await start_group(
        Config(port=0, drain_timeout=0.5, transport="lean", redis=redis.url)
    )
    made: list[Party] = []
    try:
        caller = await party(running.url)
        answerer = await party(running.url)
        made += [caller, answerer]
        await caller.call("offer", offer("r"))
        redis.stop()

        ack = await caller.call("candidate", {"room": "r", "candidate": cand(0)})
        assert error_code(ack) == "unavailable" and "Redis" in ack["error"]["message"]
        # a new connect is refused with the same code, and the hub says so to a health check
        error = await refused_with(running.url, {})
        assert error["message"] == "unavailable" and "Redis" in error["data"], error
        async with aiohttp.ClientSession() as http:
            async with http.get(group.hubs[0].url + "/healthz") as response:
                assert response.status == 503
                assert (await response.json())["status"] == "unavailable"

        redis = start_redis(tmp_path, appendonly=True)  # same data dir: the AOF is replayed

        await until_served(caller, "candidate", {"room": "r", "candidate": cand(1)})
        # nothing held before the outage was lost; what failed was not applied
        ack = await answerer.call("join", {"room": "r"})
        assert ack["offer"] == offer("r")["description"]
        assert ack["candidates"] == [cand(1)]
        late = await party(running.url)
        made.append(late)
    finally:
        for p in made:
            await p.close()
        await group.cleanup()
        redis.stop()


async def test_a_frozen_redis_gets_requests_unavailable_not_a_hang(tmp_path: Path) -> None:
    """SIGSTOP: Redis keeps its connections but answers nothing. A request is answered
    ``unavailable`` (its op's fate unknown), the rooms stay as they were, and after
    SIGCONT the same client is served again."""
    redis = start_redis(tmp_path)
    running, group = await start_group(
        Config(port=0, drain_timeout=0.5, transport="lean", redis=redis.url), count=1
    )
    client = await party(running.url)
    try:
        assert (await client.call("offer", offer("before")))["held"] is True
        redis.process.send_signal(signal.SIGSTOP)
        try:
            ack = await client.call("offer", offer("during"))
            assert error_code(ack) == "unavailable", ack
        finally:
            redis.process.send_signal(signal.SIGCONT)
        await until_served(client, "rooms", {})
        rooms = (await client.call("rooms", {}))["rooms"]
        assert "before" in {r["room"] for r in rooms}
    finally:
        await client.close()
        await group.cleanup()
        redis.stop()
