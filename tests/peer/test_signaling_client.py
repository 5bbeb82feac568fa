"""The peer's signaling client against a real hub: acks, errors, pushed events in order."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from peer.errors import HubUnreachable, RoomBusy, RoomFull, SignalingError, Unauthorized
from peer.signaling import SignalingClient
from signaling import Config
from tests.conftest import RunningHub, start_hub

OFFER = {"type": "offer", "sdp": "v=0\r\n"}


async def connected(url: str, **kw: Any) -> SignalingClient:
    client = SignalingClient(url, timeout=10, **kw)
    await client.connect()
    return client


async def test_welcome_carries_the_hubs_ice_servers() -> None:
    servers = ({"urls": ["stun:127.0.0.1:3478"]},)
    running, runner = await start_hub(Config(port=0, ice_servers=servers))
    try:
        client = await connected(running.url, name="ann")
        assert client.welcome is not None
        assert client.welcome.ice_servers == list(servers)
        assert client.welcome.limits["maxCandidates"] == 200
        await client.close()
    finally:
        await runner.cleanup()


async def test_errors_become_exceptions(hub: RunningHub) -> None:
    caller, answerer, third = [await connected(hub.url) for _ in range(3)]
    try:
        assert (await caller.offer("room1", OFFER))["held"] is True
        with pytest.raises(RoomBusy, match="already has a caller") as busy:
            await third.offer("room1", OFFER)
        assert busy.value.code == "room_busy"
        ack = await answerer.join("room1")
        assert ack["offer"] == OFFER
        with pytest.raises(RoomFull, match="already has an answerer"):
            await third.join("room1")
        with pytest.raises(SignalingError) as info:
            await third.hangup("room1")
        assert info.value.code == "not_in_room"
    finally:
        for c in (caller, answerer, third):
            await c.close()


async def test_pushed_events_arrive_in_order(hub: RunningHub) -> None:
    caller, answerer = await connected(hub.url), await connected(hub.url)
    try:
        await answerer.join("ordered")
        await caller.offer("ordered", OFFER)
        for port in range(1000, 1050):
            cand = {"candidate": f"candidate:1 1 udp 1 127.0.0.1 {port} typ host", "sdpMid": "0"}
            await caller.candidate("ordered", cand)
        await caller.candidate("ordered", None)
        await caller.hangup("ordered")
        got = [await asyncio.wait_for(answerer.events.get(), 10) for _ in range(53)]
        assert [g.event for g in got] == ["offer"] + ["candidate"] * 51 + ["hangup"]
        ports = [int(g.payload["candidate"]["candidate"].split()[5]) for g in got[1:51]]
        assert ports == list(range(1000, 1050))
        assert got[51].payload["candidate"] is None
        assert got[52].payload["reason"] == "hangup"
    finally:
        await caller.close()
        await answerer.close()


async def test_wrong_token_is_unauthorized(hub_config: Config) -> None:
    running, runner = await start_hub(replace(hub_config, token="s3cret-0123456789abc"))
    try:
        with pytest.raises(Unauthorized, match="refused the access token") as info:
            await connected(running.url, token="nope")
        assert info.value.exit_code == 3
        ok = await connected(running.url, token="s3cret-0123456789abc")
        await ok.close()
    finally:
        await runner.cleanup()


async def test_unreachable_hub(unused_tcp_port: int) -> None:
    with pytest.raises(HubUnreachable, match="cannot reach the hub") as info:
        await connected(f"http://127.0.0.1:{unused_tcp_port}")
    assert info.value.exit_code == 3


async def test_peer_left_reaches_the_other_side(hub: RunningHub) -> None:
    caller, answerer = await connected(hub.url), await connected(hub.url)
    await caller.offer("gone", OFFER)
    await answerer.join("gone")
    await caller.close()
    event = await asyncio.wait_for(answerer.events.get(), 10)
    assert (event.event, event.payload["reason"]) == ("hangup", "peer_left")
    await answerer.close()


@pytest.mark.parametrize("name", ["a\x07b", "\u202eevil", "x" * 65])
async def test_a_refused_name_carries_the_hubs_sentence(hub: RunningHub, name: str) -> None:
    """The CLI checks names first; a library user still learns what the hub accepts."""
    client = SignalingClient(hub.url, name=name, timeout=10, reconnect=False)
    with pytest.raises(SignalingError) as caught:
        await client.connect()
    assert str(caught.value) == (
        f"hub {hub.url} refused the name (--name): auth.name must be a string of 1-64 "
        "printable characters (no control, surrogate or bidi-override characters)"
    )
