"""Bad input of every kind: a clear error ack, nothing else changes, the hub stays up."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.clientlog import ClientFaultLog
from tests.conftest import RunningHub

from .client import Party, answer, cand, error_code, offer, party

EVENTS = ("offer", "join", "answer", "candidate", "hangup", "rooms")

BAD: list[tuple[str, Any, str]] = [
    ("offer", "not an object", "invalid"),
    ("offer", ["room", "x"], "invalid"),
    ("offer", None, "invalid"),
    ("offer", {}, "invalid"),
    ("offer", {"room": "ok"}, "invalid"),
    ("offer", {"room": "bad room!", "description": {"type": "offer", "sdp": ""}}, "invalid"),
    ("offer", {"room": "", "description": {"type": "offer", "sdp": ""}}, "invalid"),
    ("offer", {"room": "r" * 65, "description": {"type": "offer", "sdp": ""}}, "invalid"),
    ("offer", {"room": 5, "description": {"type": "offer", "sdp": ""}}, "invalid"),
    ("offer", {"room": "ok", "description": {"type": "answer", "sdp": ""}}, "invalid"),
    ("offer", {"room": "ok", "description": {"type": "offer", "sdp": 5}}, "invalid"),
    ("offer", {"room": "ok", "description": "v=0"}, "invalid"),
    ("offer", {"room": "ok", "description": {"type": "offer", "sdp": "x" * 65537}}, "too_large"),
    ("join", {}, "invalid"),
    ("join", {"room": ["x"]}, "invalid"),
    ("join", {"room": "über"}, "invalid"),
    ("answer", {"room": "ok", "description": {"type": "offer", "sdp": ""}}, "invalid"),
    ("answer", {"room": "nowhere", "description": {"type": "answer", "sdp": ""}}, "not_in_room"),
    ("candidate", {"room": "ok"}, "invalid"),
    ("candidate", {"room": "ok", "candidate": "candidate:1"}, "invalid"),
    ("candidate", {"room": "ok", "candidate": {"sdpMid": "0"}}, "invalid"),
    ("candidate", {"room": "ok", "candidate": {"candidate": "c", "sdpMLineIndex": "0"}}, "invalid"),
    (
        "candidate",
        {"room": "ok", "candidate": {"candidate": "c", "sdpMLineIndex": True}},
        "invalid",
    ),
    ("candidate", {"room": "ok", "candidate": {"candidate": "c", "sdpMid": 0}}, "invalid"),
    ("candidate", {"room": "ok", "candidate": {"candidate": "c" * 1025}}, "too_large"),
    ("candidate", {"room": "nowhere", "candidate": None}, "not_in_room"),
    ("hangup", {"room": "nowhere"}, "not_in_room"),
    ("hangup", 42, "invalid"),
    ("rooms", "all", "invalid"),
    ("dance", {}, "unknown_event"),
    ("connect", {}, "unknown_event"),
]


@pytest.fixture
async def call_in_progress(hub: RunningHub) -> Any:
    """A live call in room ``live`` whose parties must never notice the bad input."""
    caller, answerer = await party(hub.url), await party(hub.url)
    await caller.call("offer", offer("live"))
    await answerer.call("join", {"room": "live"})
    yield caller, answerer
    await caller.nothing_more()
    await answerer.nothing_more()
    await answerer.call("answer", answer("live"))
    assert await caller.next("answer") == answer("live")
    await caller.close()
    await answerer.close()


@pytest.mark.parametrize(("event", "payload", "code"), BAD)
async def test_bad_payload_gets_clear_error(
    hub: RunningHub, call_in_progress: Any, event: str, payload: Any, code: str
) -> None:
    p = await party(hub.url)
    await p.call("offer", offer("ok"))
    before = len(hub.hub.rooms)
    ack = await p.call(event, payload)
    assert error_code(ack) == code
    message = ack["error"]["message"]
    assert len(message) < 300
    assert "x" * 50 not in message and "c" * 50 not in message  # never echoes bodies
    assert len(hub.hub.rooms) == before
    await p.close()


async def test_event_without_arguments_or_with_extra_arguments(hub: RunningHub) -> None:
    p = await party(hub.url)
    assert error_code(await p.sio.call("join", timeout=10)) == "invalid"
    ack = await p.sio.call("join", ({"room": "a"}, "extra"), timeout=10)
    assert ack["ok"] is True
    await p.close()


async def test_events_without_ack_are_processed_and_failures_only_logged(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="signaling")
    caller, answerer = await party(hub.url), await party(hub.url)
    await caller.sio.emit("offer", offer("noack"))
    await caller.sio.emit("candidate", {"room": "noack", "candidate": cand(1)})
    await caller.sio.emit("offer", "garbage")
    await caller.sio.emit("nonsense", {"x": 1})
    await caller.call("rooms", {})  # a round trip: everything emitted before it is handled
    ack = await answerer.call("join", {"room": "noack"})
    assert ack["offer"] == offer("noack")["description"]
    assert ack["candidates"] == [cand(1)]
    assert "payload must be a JSON object" in caplog.text
    await caller.close()
    await answerer.close()


async def test_oversized_message_closes_only_that_socket(
    hub: RunningHub, call_in_progress: Any
) -> None:
    big = await party(hub.url)
    await big.sio.emit("offer", offer("huge", sdp="x" * 1_000_000))
    await big.sio.sleep(0.5)
    other = await party(hub.url)
    assert (await other.call("rooms", {}))["ok"] is True
    assert hub.hub.rooms.get("huge") is None
    await big.close()
    await other.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    data=st.lists(
        st.tuples(
            st.sampled_from((*EVENTS, "bogus", "")),
            st.recursive(
                st.none()
                | st.booleans()
                | st.integers()
                | st.floats(allow_nan=False)
                | st.text(max_size=70),
                lambda children: (
                    st.lists(children, max_size=4)
                    | st.dictionaries(
                        st.sampled_from(
                            ["room", "description", "candidate", "type", "sdp", "sdpMid", "watch"]
                        )
                        | st.text(max_size=5),
                        children,
                        max_size=4,
                    )
                ),
                max_leaves=10,
            ),
        ),
        min_size=1,
        max_size=8,
    )
)
async def test_random_payloads_never_break_the_hub(hub: RunningHub, data: Any) -> None:
    fuzzer = await party(hub.url)
    try:
        for event, payload in data:
            if event in ("connect", "disconnect"):
                continue
            ack = await fuzzer.sio.call(event, payload, timeout=10)
            assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool), ack
            if not ack["ok"]:
                assert ack["error"]["code"] and ack["error"]["message"]
    finally:
        await fuzzer.close()
    await assert_normal_call_works(hub.url)


async def assert_normal_call_works(url: str) -> None:
    caller: Party = await party(url)
    answerer: Party = await party(url)
    room = f"normal-{id(caller)}"
    await caller.call("offer", offer(room))
    await caller.call("candidate", {"room": room, "candidate": cand(0)})
    ack = await answerer.call("join", {"room": room})
    assert ack["candidates"] == [cand(0)]
    await answerer.call("answer", answer(room))
    assert await caller.next("answer") == answer(room)
    await caller.call("hangup", {"room": room})
    assert await answerer.next("hangup") == {"room": room, "reason": "hangup"}
    await caller.close()
    await answerer.close()


BAD_HTTP = [
    "/socket.io/?EIO=4&transport=polling&a=" + "x" * 20_000,  # request line over aiohttp's 8190
    "/" + "y" * 20_000,
    "/socket.io/?EIO=4&transport=polling&sid=nosuch",
    "/socket.io/?EIO=9&transport=polling",
    "/socket.io/?EIO=4&transport=bogus",
]


async def _status_of(url: str, target: str) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    status = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return status


async def test_bad_http_requests_log_one_warning_per_kind_and_no_traceback(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for _ in range(5):  # repeated at will, as anyone who can reach the port can
        for target in BAD_HTTP:
            assert b" 400 " in await _status_of(hub.url, target), target
    faults = [r for r in caplog.records if r.getMessage().startswith("client fault:")]
    hubs = 2 if hub.config.redis else 1  # a group's hubs each log their own
    # one per kind and hub, not per try
    assert 1 <= len(faults) <= 4 * hubs, [r.getMessage() for r in faults]
    assert all(r.levelno == logging.WARNING for r in faults)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR
    ]
    texts = " ".join(r.getMessage() for r in faults)
    assert "8190" in texts and "Invalid session" in texts
    # and the hub still serves a legitimate client
    p = await party(hub.url)
    assert (await p.call("rooms", {}))["ok"] is True
    await p.close()


def test_client_fault_log_keeps_the_traceback_of_our_own_faults(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = ClientFaultLog(logging.getLogger("signaling.test"))
    caplog.set_level(logging.DEBUG, logger="signaling.test")
    try:
        raise RuntimeError("a bug of ours")
    except RuntimeError:
        log.exception("Error handling request from %s", "127.0.0.1")
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info is not None
    log.error("Invalid transport")
    log.error("Invalid transport")
    assert [r.getMessage() for r in caplog.records[1:]] == ["client fault: Invalid transport"]


async def test_second_connect_on_a_connected_socket_is_refused_and_closes_it(
    hub: RunningHub,
) -> None:
    """docs/protocol.md: after any refused connect the hub closes the socket.

    Lean closes the WebSocket; stock can only send Engine.IO's CLOSE (``1``), see
    docs/security.md "With --transport stock".
    """
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(hub.url + "/socket.io/?EIO=4&transport=websocket")
        assert (await asyncio.wait_for(ws.receive_str(), 10)).startswith("0{")
        await ws.send_str("40{}")
        assert (await asyncio.wait_for(ws.receive_str(), 10)).startswith("40{")
        await ws.send_str("40{}")
        seen: list[str] = []
        async with asyncio.timeout(10):
            while (msg := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                seen.append(msg.data)
                if msg.data == "1":
                    break
        await ws.close()
    rest = [s for s in seen if not s.startswith('42["welcome"')]
    assert rest[:1] == ['44"Unable to connect"'], seen
    assert seen[-1] == "1" or msg.type is not aiohttp.WSMsgType.TEXT, seen
    p = await party(hub.url)  # the hub goes on
    assert (await p.call("rooms", {}))["ok"] is True
    await p.close()
