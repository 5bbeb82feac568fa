"""Integration tests: a real hub on port 0, real Socket.IO clients, every contract row."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
import socketio

from signaling import Config
from tests.conftest import RunningHub, start_hub

from .client import Party, answer, cand, error_code, offer, party


@pytest.fixture
async def parties(hub: RunningHub) -> Any:
    made: list[Party] = []

    async def make(**auth: Any) -> Party:
        p = await party(hub.url, **auth)
        made.append(p)
        return p

    yield make
    for p in made:
        await p.close()


async def test_welcome_carries_sid_ice_servers_and_limits(parties: Any) -> None:
    p = await parties()
    w = p.welcome.result()
    assert w["sid"] == p.sio.get_sid()
    assert w["iceServers"] == []
    assert w["limits"] == {
        "maxSdpBytes": 65536,
        "maxCandidates": 200,
        "offerTtlSeconds": 600,
        "resumeGraceSeconds": 30,
    }
    assert w["resumed"] is False and "resumeError" not in w
    assert isinstance(w["session"], str) and len(w["session"]) >= 22  # >= 128 bits, base64


async def test_caller_first_held_offer_and_candidates_in_order(parties: Any) -> None:
    caller, answerer = await parties(name="alice"), await parties(name="bob")
    assert await caller.call("offer", offer("r")) == {"ok": True, "role": "caller", "held": True}
    for i in range(5):
        assert await caller.call("candidate", {"room": "r", "candidate": cand(i)}) == {
            "ok": True,
            "held": True,
        }
    await caller.call("candidate", {"room": "r", "candidate": None})

    ack = await answerer.call("join", {"room": "r"})
    assert ack["ok"] and ack["role"] == "answerer"
    assert ack["offer"] == offer("r")["description"]
    assert ack["candidates"] == [cand(i) for i in range(5)] + [None]

    assert await answerer.call("answer", answer("r")) == {"ok": True}
    assert await caller.next("answer") == answer("r")
    await answerer.call("candidate", {"room": "r", "candidate": cand(7, ufrag=True)})
    assert await caller.next("candidate") == {"room": "r", "candidate": cand(7, ufrag=True)}
    await caller.call("candidate", {"room": "r", "candidate": cand(8)})
    assert await answerer.next("candidate") == {"room": "r", "candidate": cand(8)}
    await caller.nothing_more()
    await answerer.nothing_more()


async def test_answerer_first_receives_offer_event(parties: Any) -> None:
    caller, answerer = await parties(), await parties()
    ack = await answerer.call("join", {"room": "r"})
    assert ack == {"ok": True, "role": "answerer", "offer": None, "candidates": []}
    assert error_code(await answerer.call("answer", answer("r"))) == "no_peer"
    assert (
        error_code(await answerer.call("candidate", {"room": "r", "candidate": cand(0)}))
        == "no_peer"
    )

    assert await caller.call("offer", offer("r")) == {"ok": True, "role": "caller", "held": False}
    assert await answerer.next("offer") == {**offer("r"), "candidates": []}
    await caller.call("candidate", {"room": "r", "candidate": cand(1)})
    assert await answerer.next("candidate") == {"room": "r", "candidate": cand(1)}
    await answerer.call("answer", answer("r"))
    assert await caller.next("answer") == answer("r")


async def test_burst_of_100_candidates_without_awaiting_acks(parties: Any) -> None:
    """Fired back to back, half held and half live: each arrives once, in order."""
    caller, answerer = await parties(), await parties()
    await caller.call("offer", offer("burst"))
    for i in range(50):
        await caller.sio.emit("candidate", {"room": "burst", "candidate": cand(i)})
    join = asyncio.create_task(answerer.call("join", {"room": "burst"}))
    for i in range(50, 100):
        await caller.sio.emit("candidate", {"room": "burst", "candidate": cand(i)})
    ack = await join
    received = list(ack["candidates"])
    while len(received) < 100:  # the rest arrive live, on the answerer's own socket
        received.append((await answerer.next("candidate"))["candidate"])
    await answerer.nothing_more()
    assert received == [cand(i) for i in range(100)]


async def test_burst_of_100_answerer_candidates_arrive_in_order(parties: Any) -> None:
    caller, answerer = await parties(), await parties()
    await caller.call("offer", offer("r"))
    await answerer.call("join", {"room": "r"})
    for i in range(100):
        await answerer.sio.emit("candidate", {"room": "r", "candidate": cand(i)})
    await answerer.sio.emit("candidate", {"room": "r", "candidate": None})
    got = [(await caller.next("candidate"))["candidate"] for _ in range(101)]
    assert got == [cand(i) for i in range(100)] + [None]
    await caller.nothing_more()


async def test_outsiders_never_receive_a_rooms_messages(parties: Any) -> None:
    caller, answerer, outsider = await parties(), await parties(), await parties()
    await outsider.call("offer", offer("elsewhere"))
    await caller.call("offer", offer("r"))
    await answerer.call("join", {"room": "r"})
    await answerer.call("answer", answer("r"))
    await caller.call("candidate", {"room": "r", "candidate": cand(1)})
    await answerer.call("candidate", {"room": "r", "candidate": cand(2)})
    # an outsider cannot inject into, or hang up, the room
    assert error_code(await outsider.call("answer", answer("r"))) == "not_in_room"
    assert (
        error_code(await outsider.call("candidate", {"room": "r", "candidate": cand(3)}))
        == "not_in_room"
    )
    assert error_code(await outsider.call("hangup", {"room": "r"})) == "not_in_room"
    await answerer.call("hangup", {"room": "r"})
    await outsider.nothing_more()
    assert (await caller.next("answer"))["room"] == "r"
    assert (await caller.next("candidate"))["candidate"] == cand(2)
    assert await caller.next("hangup") == {"room": "r", "reason": "hangup"}


async def test_room_busy_full_and_wrong_role(parties: Any) -> None:
    a, b, c = await parties(), await parties(), await parties()
    await a.call("offer", offer("r"))
    assert error_code(await c.call("offer", offer("r"))) == "room_busy"
    await b.call("join", {"room": "r"})
    assert error_code(await c.call("join", {"room": "r"})) == "room_full"
    assert error_code(await b.call("offer", offer("r"))) == "wrong_role"
    assert error_code(await a.call("answer", answer("r"))) == "wrong_role"
    # the refused attempts changed nothing: the call goes on
    await b.call("answer", answer("r"))
    assert await a.next("answer") == answer("r")


async def test_renegotiation_reaches_present_answerer(parties: Any) -> None:
    caller, answerer = await parties(), await parties()
    await caller.call("offer", offer("r", sdp="first"))
    await answerer.call("join", {"room": "r"})
    ack = await caller.call("offer", offer("r", sdp="second"))
    assert ack == {"ok": True, "role": "caller", "held": False}
    assert (await answerer.next("offer"))["description"]["sdp"] == "second"


async def test_renegotiation_before_join_replaces_what_is_held(parties: Any) -> None:
    caller, answerer = await parties(), await parties()
    await caller.call("offer", offer("r", sdp="first"))
    await caller.call("candidate", {"room": "r", "candidate": cand(1)})
    await caller.call("offer", offer("r", sdp="restart"))
    await caller.call("candidate", {"room": "r", "candidate": cand(2)})
    ack = await answerer.call("join", {"room": "r"})
    assert ack["offer"]["sdp"] == "restart"
    assert ack["candidates"] == [cand(2)]


async def test_hangup_then_room_is_free(parties: Any) -> None:
    caller, answerer, newcomer = await parties(), await parties(), await parties()
    await caller.call("offer", offer("r"))
    await answerer.call("join", {"room": "r"})
    assert await caller.call("hangup", {"room": "r"}) == {"ok": True}
    assert await answerer.next("hangup") == {"room": "r", "reason": "hangup"}
    assert error_code(await caller.call("candidate", {"room": "r", "candidate": None})) == (
        "not_in_room"
    )
    assert (await newcomer.call("offer", offer("r")))["held"] is True
    await caller.nothing_more()


async def test_disconnect_is_peer_left_without_grace(hub_config: Config) -> None:
    running, runner = await start_hub(replace(hub_config, resume_grace=0))
    try:
        caller, answerer = await party(running.url), await party(running.url)
        await caller.call("offer", offer("r"))
        await answerer.call("join", {"room": "r"})
        await caller.sio.disconnect()
        assert await answerer.next("hangup") == {"room": "r", "reason": "peer_left"}
        assert running.hub.rooms.get("r") is None
        await answerer.close()
    finally:
        await runner.cleanup()


async def test_lobby_lists_waiting_callers_and_pushes_changes(parties: Any) -> None:
    watcher, caller, answerer = await parties(), await parties(name="carol"), await parties()
    ack = await watcher.call("rooms", {"watch": True})
    assert ack == {"ok": True, "rooms": []}
    await caller.call("offer", offer("lobby-1"))
    pushed = await watcher.next("rooms")
    assert [(r["room"], r["caller"]) for r in pushed["rooms"]] == [("lobby-1", "carol")]
    assert pushed["rooms"][0]["waitingSeconds"] >= 0
    listed = await answerer.call("rooms", {})
    assert [r["room"] for r in listed["rooms"]] == ["lobby-1"]
    await answerer.call("join", {"room": "lobby-1"})
    assert await watcher.next("rooms") == {"rooms": []}
    assert error_code(await watcher.call("rooms", {"watch": "yes"})) == "invalid"


async def test_healthz(parties: Any, hub: RunningHub) -> None:
    caller = await parties()
    await caller.call("offer", offer("r"))
    async with aiohttp.ClientSession() as http, http.get(f"{hub.url}/healthz") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["status"] == "ok"
    assert body["rooms"] == 1 and body["heldOffers"] == 1 and body["sockets"] == 1
    assert body["uptimeSeconds"] >= 0


async def test_page_and_vendor_script_are_served(hub: RunningHub) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{hub.url}/vendor/socket.io.esm.min.js") as resp:
            assert resp.status == 200, "run `make setup` to install static/node_modules"
            assert "javascript" in resp.headers["Content-Type"]
        async with http.get(f"{hub.url}/static/../pyproject.toml") as resp:
            assert resp.status in (403, 404)


# -- expiry and token: hubs with other settings -------------------------------------------


async def test_unanswered_offer_expires(hub_config: Config) -> None:
    running, runner = await start_hub(replace(hub_config, offer_ttl=0.4, sweep_interval=0.1))
    try:
        caller = await party(running.url)
        answerer_first = await party(running.url)
        await caller.call("offer", offer("r1"))
        await answerer_first.call("join", {"room": "r2"})
        assert await caller.next("hangup") == {"room": "r1", "reason": "expired"}
        assert await answerer_first.next("hangup") == {"room": "r2", "reason": "expired"}
        assert len(running.hub.rooms) == 0
        assert (await caller.welcome)["limits"]["offerTtlSeconds"] == 0.4
        await caller.close()
        await answerer_first.close()
    finally:
        await runner.cleanup()


async def refused_with(url: str, auth: Any) -> Any:
    """Connect and return the connect error's data, failing if the connect succeeds."""
    client = socketio.AsyncClient(reconnection=False)
    errors: list[Any] = []
    client.on("connect_error", errors.append)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(url, auth=auth, transports=["websocket"], wait_timeout=10)
    assert errors, "no connect_error event"
    return errors[0]


async def test_access_token(hub_config: Config) -> None:
    running, runner = await start_hub(replace(hub_config, token="s3cret-0123456789abc"))
    try:
        for auth in ({}, {"token": "wrong"}, {"token": 5}, {"name": "eve"}):
            error = await refused_with(running.url, auth)
            assert error["message"] == "unauthorized"
            assert "token" in error["data"]
        ok = await party(running.url, token="s3cret-0123456789abc")
        assert (await ok.call("rooms", {}))["ok"] is True
        await ok.close()
    finally:
        await runner.cleanup()


async def test_bad_name_is_refused(hub: RunningHub) -> None:
    spoofs = ("bob\u202egnp.exe", "a\u0007b", "x\ud800", "\u2066isolated")  # bidi, BEL, surrogate
    for bad in ({"name": "x" * 65}, {"name": ""}, {"name": 7}, *({"name": n} for n in spoofs)):
        error = await refused_with(hub.url, bad)
        assert error["message"] == "invalid"
        assert "1-64 printable characters" in error["data"]
    assert hub.hub.rooms.socket_count == 0
    # letters of any script, emoji and joined emoji sequences are names
    for good in ("Zoë", "小明", "👩\u200d👩\u200d👧 family"):
        p = await party(hub.url, name=good)
        await p.close()


async def test_ice_servers_from_config(hub_config: Config) -> None:
    servers = ({"urls": ["stun:127.0.0.1:3478"]},)
    running, runner = await start_hub(replace(hub_config, ice_servers=servers))
    try:
        p = await party(running.url)
        assert p.welcome.result()["iceServers"] == [{"urls": ["stun:127.0.0.1:3478"]}]
        await p.close()
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("transports", [["polling"], ["polling", "websocket"]])
async def test_long_polling_and_upgraded_clients_relay_in_order(
    hub: RunningHub, transports: list[str]
) -> None:
    """Browsers start on long-polling and upgrade; both paths keep order and exactly-once."""
    caller = Party()
    await caller.sio.connect(hub.url, transports=transports, wait_timeout=10)
    await asyncio.wait_for(caller.welcome, 10)
    answerer = await party(hub.url)
    try:
        await caller.call("offer", offer("poll"))
        for i in range(20):
            await caller.sio.emit("candidate", {"room": "poll", "candidate": cand(i)})
        ack = await answerer.call("join", {"room": "poll"})
        for i in range(20, 40):
            await caller.sio.emit("candidate", {"room": "poll", "candidate": cand(i)})
        live = [
            (await answerer.next("candidate"))["candidate"]
            for _ in range(40 - len(ack["candidates"]))
        ]
        assert ack["candidates"] + live == [cand(i) for i in range(40)]
        await answerer.call("answer", answer("poll"))
        assert await caller.next("answer") == answer("poll")
        for i in range(30):
            await answerer.sio.emit("candidate", {"room": "poll", "candidate": cand(i)})
        assert [(await caller.next("candidate"))["candidate"] for _ in range(30)] == [
            cand(i) for i in range(30)
        ]
        await caller.nothing_more()
    finally:
        # python-engineio's client lingers ~30 s when it closes a polling connection
        # itself; a close from the hub ends its pending poll at once
        await hub.hub.sio.disconnect(caller.sio.get_sid())
        await caller.close()
        await answerer.close()
