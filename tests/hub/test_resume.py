"""Sessions and resume against a real hub, with real faults (tests/faults.py).

Contract v1.1 "Sessions and resume": each case cuts, stalls or restarts for real and
checks what each party receives, exactly once, in order, with contiguous ``seq``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from signaling import Config
from tests.conftest import RunningHub, start_hub
from tests.faults import FaultProxy

from .client import Party, answer, cand, error_code, offer, party, until
from .test_hub import refused_with

WAIT = 10.0


@pytest.fixture
async def proxy(hub: RunningHub) -> AsyncIterator[FaultProxy]:
    p = await FaultProxy.to_url(hub.url)
    yield p
    await p.close()


@pytest.fixture
async def parties() -> AsyncIterator[Callable[..., Any]]:
    made: list[Party] = []

    async def track(p: Party) -> Party:
        made.append(p)
        return p

    yield track
    for p in made:
        await p.close()


async def in_room(parties: Any, caller_url: str, answerer_url: str) -> tuple[Party, Party]:
    """A caller and an answerer in room ``r``: offered, then joined."""
    caller = await parties(await party(caller_url))
    answerer = await parties(await party(answerer_url))
    await caller.call("offer", offer("r"))
    await answerer.call("join", {"room": "r"})
    return caller, answerer


async def drop(p: Party, proxy: FaultProxy, hub: RunningHub) -> None:
    """Cut ``p``'s TCP connection and wait until both ends know."""
    away = hub.hub.sessions.away_count
    assert proxy.cut() >= 1
    await until(lambda: not p.sio.connected and hub.hub.sessions.away_count > away)


async def test_caller_drops_while_holding_and_resumes_with_everything_once_in_order(
    hub: RunningHub, proxy: FaultProxy, parties: Any
) -> None:
    caller = await parties(await party(proxy.url, name="alice"))
    await caller.call("offer", offer("r"))
    await caller.call("candidate", {"room": "r", "candidate": cand(0)})
    await drop(caller, proxy, hub)

    answerer = await parties(await party(hub.url))
    ack = await answerer.call("join", {"room": "r"})
    assert ack["offer"] == offer("r")["description"] and ack["candidates"] == [cand(0)]
    assert await answerer.call("answer", answer("r")) == {"ok": True}
    for i in range(1, 4):
        assert await answerer.call("candidate", {"room": "r", "candidate": cand(i)}) == {
            "ok": True,
            "held": False,
        }

    back = await parties(await caller.resume(proxy.url))
    assert back.welcome.result()["resumed"] is True
    assert back.session == caller.session
    assert await back.next("answer") == answer("r")
    for i in range(1, 4):
        assert await back.next("candidate") == {"room": "r", "candidate": cand(i)}
    assert await answerer.next("peer_back") == {"room": "r"}
    # and live again, both ways
    await back.call("candidate", {"room": "r", "candidate": cand(9)})
    assert await answerer.next("candidate") == {"room": "r", "candidate": cand(9)}
    await back.nothing_more()
    await answerer.nothing_more()


async def test_half_open_caller_reoffering_from_a_new_connection_takes_over_at_once(
    hub: RunningHub, proxy: FaultProxy, parties: Any
) -> None:
    caller, answerer = await in_room(parties, proxy.url, hub.url)
    assert proxy.stall() == 1  # the hub still believes in the old connection
    await answerer.call("answer", answer("r"))  # lost in the half-open link

    fresh = await parties(await caller.resume(hub.url))
    assert fresh.welcome.result()["resumed"] is True
    assert await fresh.next("answer") == answer("r")
    ack = await fresh.call("offer", offer("r", sdp="v=0\r\nrestart\r\n"))
    assert ack == {"ok": True, "role": "caller", "held": False}
    restart = offer("r", sdp="v=0\r\nrestart\r\n")
    assert await answerer.next("offer") == {**restart, "candidates": []}
    await until(lambda: hub.hub.sessions.socket_count == 2)  # the old socket was kicked
    await answerer.nothing_more()  # no peer_left, no peer_away
    proxy.cut()  # let the stalled client learn its link is gone (no wait at teardown)


async def test_answerer_drops_mid_trickle_and_resends_what_was_not_acknowledged(
    hub: RunningHub, proxy: FaultProxy, parties: Any
) -> None:
    caller, answerer = await in_room(parties, hub.url, proxy.url)
    await answerer.call("answer", answer("r") | {"seq": 1})
    for i in range(2, 5):
        await answerer.call("candidate", {"room": "r", "candidate": cand(i), "seq": i})
    # seq 5 and 6 leave without waiting for acks, then the link dies
    await answerer.sio.emit("candidate", {"room": "r", "candidate": cand(5), "seq": 5})
    await answerer.sio.emit("candidate", {"room": "r", "candidate": cand(6), "seq": 6})
    assert await caller.next("answer") == answer("r")
    got = [(await caller.next("candidate"))["candidate"] for _ in range(3)]
    assert got == [cand(i) for i in range(2, 5)]
    await drop(answerer, proxy, hub)

    back = await parties(await answerer.resume(proxy.url))
    for seq in (5, 6, 7):  # the client re-sends what it never saw acknowledged, then goes on
        ack = await back.call("candidate", {"room": "r", "candidate": cand(seq), "seq": seq})
        assert ack["ok"] is True and ack["held"] is False
        assert seq < 7 or "duplicate" not in ack
    seen: list[tuple[str, Any]] = []
    while not seen or seen[-1][1].get("candidate") != cand(7):
        name, data = await caller.next_event()
        seen.append((name, data))
    # however many of 5 and 6 made it before the cut, each reaches the caller once, in order
    assert [d["candidate"] for n, d in seen if n == "candidate"] == [cand(5), cand(6), cand(7)]
    assert [n for n, _ in seen if n.startswith("peer_")] == ["peer_away", "peer_back"]
    await caller.nothing_more()


def _key(hub: RunningHub, p: Party) -> str:
    session = hub.hub.sessions.of_socket(p.sio.get_sid())
    assert session is not None
    return session.key


async def test_duplicate_requests_are_answered_from_memory_and_run_once(
    hub: RunningHub, parties: Any
) -> None:
    caller = await parties(await party(hub.url))
    answerer = await parties(await party(hub.url))
    first = await caller.call("offer", offer("r") | {"seq": 1})
    assert first == {"ok": True, "role": "caller", "held": True}
    assert await caller.call("offer", offer("r") | {"seq": 1}) == {**first, "duplicate": True}
    ack = await answerer.call("join", {"room": "r", "seq": 1})
    assert await answerer.call("join", {"room": "r", "seq": 1}) == {**ack, "duplicate": True}
    await answerer.call("answer", answer("r") | {"seq": 2})
    await answerer.call("answer", answer("r") | {"seq": 2})
    assert await caller.next("answer") == answer("r")
    await caller.nothing_more()
    assert error_code(await caller.call("rooms", {"seq": "x"})) == "invalid"


async def test_stale_request_older_than_the_ack_memory(hub: RunningHub, parties: Any) -> None:
    p = await parties(await party(hub.url))
    for seq in range(1, 67):
        await p.call("rooms", {"seq": seq})
    assert (await p.call("rooms", {"seq": 3}))["duplicate"] is True
    assert error_code(await p.call("rooms", {"seq": 2})) == "stale"


async def test_replay_from_a_middle_last_seq(
    hub: RunningHub, proxy: FaultProxy, parties: Any
) -> None:
    caller, answerer = await in_room(parties, proxy.url, hub.url)
    await answerer.call("answer", answer("r"))
    for i in range(5):
        await answerer.call("candidate", {"room": "r", "candidate": cand(i)})
    assert await caller.next("answer") == answer("r")
    for _ in range(5):
        await caller.next("candidate")
    await drop(caller, proxy, hub)
    back = await parties(await caller.resume(hub.url, last_seq=3))  # processed up to seq 3
    _, data = await back.next_event("candidate")
    assert data == {"room": "r", "candidate": cand(2), "seq": 4}
    assert (await back.next("candidate"))["candidate"] == cand(3)
    assert (await back.next("candidate"))["candidate"] == cand(4)
    await back.nothing_more()


async def test_bye_ends_rooms_at_once_and_frees_the_session(hub: RunningHub, parties: Any) -> None:
    caller, answerer = await in_room(parties, hub.url, hub.url)
    ack = await caller.call("bye", {})
    assert ack["ok"] is True and ack["session"] != caller.session
    assert await answerer.next("hangup") == {"room": "r", "reason": "peer_left"}
    assert hub.hub.rooms.get("r") is None
    again = await parties(await caller.resume(hub.url))
    assert again.welcome.result()["resumed"] is False
    assert again.welcome.result()["resumeError"] == "expired"


async def test_a_session_in_no_room_says_there_was_nothing_to_resume(
    hub: RunningHub, proxy: FaultProxy, parties: Any
) -> None:
    lonely = await parties(await party(proxy.url))
    sid = lonely.sio.get_sid()
    assert proxy.cut() >= 1
    await until(lambda: hub.hub.sessions.of_socket(sid) is None)
    w = (await parties(await lonely.resume(hub.url))).welcome.result()
    assert w["resumed"] is False and w["resumeError"] == "expired"  # the code the contract fixes
    assert w["resumeMessage"].startswith("nothing to resume: the session was in no room"), w
    assert w["resumeMessage"].endswith("you are connected as a new session, in no room"), w


async def test_unknown_session_connects_as_a_new_one(hub: RunningHub, parties: Any) -> None:
    p = await parties(await Party().connect(hub.url, session="never-issued", lastSeq=7))
    w = p.welcome.result()
    assert w["resumed"] is False and w["resumeError"] == "unknown"
    assert "no record of that session" in w["resumeMessage"], w
    assert w["session"] != "never-issued"
    for bad in ({"session": 5}, {"lastSeq": -1}, {"lastSeq": "3"}):
        error = await refused_with(hub.url, bad)
        assert error["message"] == "invalid" and "auth." in error["data"]
    # a string the hub could never have issued is just as unknown, whatever its length
    long = await parties(await Party().connect(hub.url, session="x" * 4000))
    assert long.welcome.result()["resumeError"] == "unknown"


async def test_a_resume_claiming_events_never_sent_is_refused(
    hub: RunningHub, parties: Any
) -> None:
    caller = await parties(await party(hub.url))
    assert (await caller.call("offer", offer("r")))["held"] is True
    claimed = caller.last_seq + 5
    error = await refused_with(hub.url, {"session": caller.session, "lastSeq": claimed})
    assert error["message"] == "invalid" and f"lastSeq {claimed} is above" in error["data"]
    # nothing changed: the session is still this socket's, its room still held
    assert hub.hub.sessions.of_socket(caller.sio.get_sid()) is not None
    assert hub.hub.rooms.get("r") is not None


@pytest.mark.parametrize("hub_config", [Config(port=0, resume_grace=1.0)])
async def test_grace_expiry_gives_peer_left_not_before_the_grace(
    hub: RunningHub, proxy: FaultProxy, parties: Any
) -> None:
    caller, answerer = await in_room(parties, proxy.url, hub.url)
    cut_at = time.monotonic()  # the hub's grace starts after this: a safe lower bound
    proxy.cut()
    assert await answerer.next("peer_away") == {"room": "r"}
    assert await answerer.next("hangup") == {"room": "r", "reason": "peer_left"}
    assert time.monotonic() - cut_at >= 1.0
    late = await parties(await caller.resume(hub.url))
    assert late.welcome.result()["resumeError"] == "expired"


@pytest.mark.parametrize("hub_config", [Config(port=0, resume_grace=0)])
async def test_grace_zero_is_v1(hub: RunningHub, proxy: FaultProxy, parties: Any) -> None:
    caller = await parties(await party(proxy.url))
    answerer = await parties(await party(hub.url))
    assert answerer.welcome.result()["limits"]["resumeGraceSeconds"] == 0
    await caller.call("offer", offer("r"))
    await answerer.call("join", {"room": "r"})
    proxy.cut()
    assert await answerer.next("hangup") == {"room": "r", "reason": "peer_left"}  # no peer_away
    assert hub.hub.rooms.get("r") is None
    late = await parties(await caller.resume(hub.url))
    assert late.welcome.result()["resumeError"] == "expired"
    await answerer.nothing_more()


async def test_queue_for_an_away_caller_past_the_limit_ends_the_room(hub_config: Config) -> None:
    running, runner = await start_hub(replace(hub_config, max_candidates=3))
    proxy = await FaultProxy.to_url(running.url)
    caller = await party(proxy.url)
    answerer = await party(running.url)
    try:
        await caller.call("offer", offer("r"))
        await answerer.call("join", {"room": "r"})
        proxy.cut()
        assert await answerer.next("peer_away") == {"room": "r"}
        for i in range(3):
            assert (await answerer.call("candidate", {"room": "r", "candidate": cand(i)}))["ok"]
        await answerer.call("candidate", {"room": "r", "candidate": cand(3)})
        assert await answerer.next("hangup") == {"room": "r", "reason": "peer_left"}
        back = await caller.resume(running.url)
        for i in range(3):
            assert (await back.next("candidate"))["candidate"] == cand(i)
        assert await back.next("hangup") == {"room": "r", "reason": "peer_left"}
        await back.close()
    finally:
        await answerer.close()
        await proxy.close()
        await runner.cleanup()
