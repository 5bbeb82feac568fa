"""The hub's edge under hostile input: every fault closes one socket, logs little, frees all.

Raw Engine.IO over aiohttp WebSockets and raw TCP, against a real hub on port 0.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import socket
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web

from signaling import Config
from signaling.edge import CONNECTION_GUARD_KEY
from signaling.engine import LEAN_TRANSPORT, SEND_STARTED
from signaling.fastws import BATCH_BYTES
from signaling.protocol import MAX_LOBBY_ROOMS
from signaling.server import HUB_KEY
from tests.conftest import RunningHub, start_hub

from .client import cand, error_code, offer, party
from .client import until as _until

WAIT = 10.0
TOKEN = "t" * 24


@pytest.fixture
async def hub_with(hub_config: Config) -> AsyncIterator[Callable[..., Any]]:
    runners = []

    async def start(**changes: Any) -> RunningHub:
        running, runner = await start_hub(replace(hub_config, **changes))
        runners.append(runner)
        return running

    yield start
    for runner in runners:
        await runner.cleanup()


async def _open(session: aiohttp.ClientSession, url: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(url + "/socket.io/?EIO=4&transport=websocket")
    first = await asyncio.wait_for(ws.receive_str(), WAIT)
    assert first.startswith("0{"), first
    return ws


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> list[str]:
    """Read until the hub closes the WebSocket; return the Socket.IO packets seen first."""
    seen: list[str] = []
    async with asyncio.timeout(WAIT):
        while True:
            msg = await ws.receive()
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return seen
            if msg.type is aiohttp.WSMsgType.ERROR:
                return seen
            if msg.type is aiohttp.WSMsgType.TEXT and msg.data[:1] == "4":
                seen.append(msg.data[1:])


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not bad, [r.getMessage() for r in bad]


# -- 1: anchored validation ----------------------------------------------------------


async def test_room_with_trailing_newline_is_invalid(hub: RunningHub) -> None:
    p = await party(hub.url)
    ack = await p.call("offer", offer("demo\n"))
    assert error_code(ack) == "invalid"
    assert len(hub.hub.rooms) == 0
    await p.close()


# -- 2 and 6: connects that raise, refusals, token guessing ---------------------------


async def test_connect_that_raises_is_refused_invalid_and_leaves_nothing(
    hub_with: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    running = await hub_with(token=TOKEN)
    sio = running.hub.sio
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            ws = await _open(session, running.url)
            await ws.send_str('40{"token":"\\ud800"}')  # a lone surrogate
            seen = await _closed(ws)
            assert len(seen) == 1 and seen[0].startswith("4"), seen
            assert json.loads(seen[0][1:])["message"] == "invalid"
    await _until(lambda: not sio.eio.sockets)
    assert running.hub.rooms.socket_count == 0
    assert not sio.manager.rooms.get("/", {}).get(None), "no half-registered session"
    _no_tracebacks(caplog)


async def test_socket_is_closed_after_a_refused_token(hub_with: Callable[..., Any]) -> None:
    running = await hub_with(token=TOKEN)
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, running.url)
        await ws.send_str('40{"token":"guess-1"}')
        seen = await _closed(ws)  # no second guess on the same socket
        assert [json.loads(s[1:])["message"] for s in seen] == ["unauthorized"]


async def test_wrong_tokens_are_throttled_per_address(hub_with: Callable[..., Any]) -> None:
    running = await hub_with(token=TOKEN, max_token_failures=3, token_failure_window=3600)
    codes = []
    async with aiohttp.ClientSession() as session:
        for i in range(4):
            ws = await _open(session, running.url)
            await ws.send_str(json.dumps({"token": f"guess-{i}"}).join(("40", "")))
            (reply,) = await _closed(ws)
            codes.append(json.loads(reply[1:]))
        ws = await _open(session, running.url)  # even the right token waits its turn
        await ws.send_str("40" + json.dumps({"token": TOKEN}))
        (reply,) = await _closed(ws)
        codes.append(json.loads(reply[1:]))
    assert [c["message"] for c in codes] == ["unauthorized"] * 3 + ["limit", "limit"]
    assert "--max-token-failures" in codes[3]["data"]


async def test_connects_without_a_token_are_refused_but_never_throttled(
    hub_with: Callable[..., Any],
) -> None:
    """No token is no guess: a page opened without ?token= must not lock its address out."""
    running = await hub_with(token=TOKEN, max_token_failures=1, token_failure_window=3600)
    replies = []
    async with aiohttp.ClientSession() as session:
        for auth in ("", "{}", '{"name":"alice"}', "", '{"token":"' + TOKEN + '"}'):
            ws = await _open(session, running.url)
            await ws.send_str("40" + auth)
            if "token" in auth:
                reply = await asyncio.wait_for(ws.receive_str(), WAIT)
                assert reply.startswith('40{"sid"'), reply  # the right token still gets in
                await ws.close()
                break
            (refusal,) = await _closed(ws)
            replies.append(json.loads(refusal[1:]))
    assert [r["message"] for r in replies] == ["unauthorized"] * 4
    assert all(r["data"] == "missing access token: this hub needs auth.token" for r in replies)


# -- 7: malformed packets ---------------------------------------------------------------

MALFORMED: list[str | bytes] = [
    '42\xff["rooms",{}]',
    '42["rooms",{',
    "42" + "[" * 50_000,
    '451-["offer",{"_placeholder":true,"num":0}]',
    b"\x04binary",
    "4" + "0{not json",
    '42["offer",{"room":"x","description":{"type":"offer","sdp":"v"}}]x',
]


async def _connected_then(
    session: aiohttp.ClientSession, url: str, frame: str | bytes
) -> aiohttp.ClientWebSocketResponse:
    """A WebSocket that connected to ``/``, then sent ``frame`` as it is."""
    ws = await _open(session, url)
    await ws.send_str("40")
    assert (await asyncio.wait_for(ws.receive_str(), WAIT)).startswith("40")
    if isinstance(frame, bytes):
        await ws.send_bytes(frame)
    else:
        await ws.send_str(frame)
    return ws


async def test_malformed_packets_close_their_socket_with_one_warning(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hub.hub.sio.eio.warnings.interval = 3600.0
    bystander = await party(hub.url)
    await bystander.call("offer", offer("safe"))
    async with aiohttp.ClientSession() as session:
        for frame in MALFORMED:
            await _closed(await _connected_then(session, hub.url, frame))
    await _until(lambda: hub.hub.rooms.socket_count == 1)
    await bystander.nothing_more()
    assert hub.hub.rooms.get("safe") is not None
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "malformed packet" in warnings[0].getMessage(), [
        r.getMessage() for r in warnings
    ]
    _no_tracebacks(caplog)
    await bystander.close()


# not an Engine.IO type a client sends: stock python-engineio logged a traceback for each
# (an IndexError, a ValueError) and kept the socket open
UNKNOWN_TYPES = ["9", "7{}", "0", "6", "x", ""]


@pytest.mark.parametrize("transport", ["lean", "stock"])
@pytest.mark.parametrize("frame", UNKNOWN_TYPES)
async def test_unknown_packet_type_closes_its_socket_with_one_reasoned_warning(
    hub: RunningHub, caplog: pytest.LogCaptureFixture, frame: str
) -> None:
    caplog.set_level(logging.INFO)
    bystander = await party(hub.url)
    async with aiohttp.ClientSession() as session:
        ws = await _connected_then(session, hub.url, frame)
        await _closed(ws)
        assert ws.closed
    await _until(lambda: hub.hub.rooms.socket_count == 1)
    assert (await bystander.call("rooms", {}))["ok"] is True
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    shown = f"type {frame[:1]!r}" if frame else "an empty Engine.IO packet"
    assert "malformed packet (MalformedPacket: " in warnings[0] and shown in warnings[0]
    assert "not 1-5 (close,ping,pong,message,upgrade)" in warnings[0], warnings
    _no_tracebacks(caplog)
    await bystander.close()


async def test_unknown_packet_type_in_a_polling_post_is_refused(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    base = hub.url + "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as session:
        async with session.get(base) as resp:
            sid = json.loads((await resp.text())[1:])["sid"]
        async with session.post(f"{base}&sid={sid}", data="9") as resp:
            assert resp.status == 400
            assert "Engine.IO packet type '9' is not 1-5" in await resp.text()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "malformed packet" in warnings[0], warnings
    _no_tracebacks(caplog)


# -- 3: bounded send queue, abort on ping timeout ----------------------------------------


# a WebSocket upgrade of a new Engine.IO connection, as a browser sends it
UPGRADE = (
    b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)


async def _raw_ws(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A WebSocket client on a tiny receive buffer that reads only the handshake."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(UPGRADE)
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    return reader, writer


def _frame(text: str) -> bytes:
    """One masked client text frame (RFC 6455 section 5.2), zero mask for simplicity."""
    data = text.encode()
    if len(data) < 126:
        return bytes([0x81, 0x80 | len(data)]) + b"\0\0\0\0" + data
    assert len(data) < 65536
    return struct.pack("!BBH", 0x81, 0x80 | 126, len(data)) + b"\0\0\0\0" + data


async def _server_frame(reader: asyncio.StreamReader) -> str:
    """Read one unmasked server text frame (RFC 6455 section 5.2); its text."""
    opcode, payload = await _any_server_frame(reader)
    assert opcode == 0x81, f"expected a final text frame, got first byte {opcode:#x}"
    return payload.decode()


async def _any_server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked server frame: its first byte (FIN + opcode) and payload."""
    first, second = await reader.readexactly(2)
    size = second & 0x7F
    if size == 126:
        (size,) = struct.unpack("!H", await reader.readexactly(2))
    elif size == 127:
        (size,) = struct.unpack("!Q", await reader.readexactly(8))
    return first, await reader.readexactly(size)


async def _lobby_of(hub: RunningHub, rooms: int) -> None:
    caller = await party(hub.url, name="n" * 64)
    for i in range(rooms):
        await caller.sio.emit("offer", offer(f"{i:04d}" + "r" * 60))
    await caller.call("rooms", {})


async def _non_reader(running: RunningHub, requests: int) -> asyncio.StreamWriter:
    """A connected Socket.IO client that sends ``requests`` lobby requests and reads none."""
    _reader, writer = await _raw_ws(int(running.url.rsplit(":", 1)[1]))
    writer.write(_frame("40"))
    await _until(lambda: running.hub.rooms.socket_count == 2)
    for i in range(requests):
        writer.write(_frame(f'42{i}["rooms",{{}}]'))
    return writer


async def test_a_client_that_never_reads_is_closed_at_the_queue_cap(
    hub_with: Callable[..., Any],
) -> None:
    running = await hub_with(max_rooms_per_socket=1000, max_queued_bytes=200_000)
    await _lobby_of(running, 100)  # each rooms ack is ~17 KB
    writer = await _non_reader(running, 3000)
    await _until(lambda: running.hub.rooms.socket_count == 1)
    writer.close()


async def test_a_client_that_never_reads_leaves_one_batch_in_the_hub_s_buffer(
    hub_with: Callable[..., Any],
) -> None:
    """Frames queued together leave in one write, but at most BATCH_BYTES of them at once."""
    running = await hub_with(
        max_rooms_per_socket=1000,
        max_queued_bytes=1 << 30,
        ping_interval=600,
        ping_timeout=600,
        send_timeout=600,
    )
    await _lobby_of(running, 100)  # each rooms ack is ~17 KB: a read turn queues ~0.5 MB
    eio = running.hub.sio.eio
    writer = await _non_reader(running, 1000)
    stalled = [s for s in eio.sockets.values() if getattr(s, LEAN_TRANSPORT, None)]
    await _until(lambda: any(getattr(s, SEND_STARTED, None) for s in stalled))
    buffered = max(getattr(s, LEAN_TRANSPORT).get_write_buffer_size() for s in stalled)
    # A few of aiohttp's 64 KiB flow-control steps (~235 KB measured, ~80 KB with aiohttp's
    # writes alone), whatever the backlog: an unbounded batch left ~750 KB here, and more
    # with every read turn's worth of acks.
    assert buffered <= 6 * BATCH_BYTES, buffered
    writer.close()


async def test_a_reader_that_falls_behind_gets_every_relay_once_in_order(
    hub_with: Callable[..., Any],
) -> None:
    """Sends that leave at the end of the turn and sends that queue behind a full buffer
    keep one order: the caller stops reading while ~5 MB of candidates is relayed to it,
    more than the kernel's largest send buffer here (4 MiB, tcp_wmem) holds."""
    running = await hub_with(max_queued_bytes=8 << 20, ping_interval=600, ping_timeout=600)
    reader, writer = await _raw_ws(int(running.url.rsplit(":", 1)[1]))
    opening = await asyncio.wait_for(_server_frame(reader), WAIT)
    eio_socket = running.hub.sio.eio.sockets[json.loads(opening[1:])["sid"]]
    writer.write(_frame("40"))
    await _until(lambda: running.hub.rooms.socket_count == 1)
    writer.write(_frame("420" + json.dumps(["offer", offer("slow")])))
    answerer = await party(running.url)
    await answerer.call("join", {"room": "slow"})
    count, pad = 10_000, "x" * 900

    async def send(numbers: range) -> None:
        for i in numbers:
            body = dict(cand(i), candidate=f"{cand(i)['candidate']} {pad}")
            await answerer.sio.emit("candidate", {"room": "slow", "candidate": body})
        await answerer.call("rooms", {})  # every candidate before it has been relayed

    await send(range(count // 2))
    # the hub is holding some: the caller's small receive buffer is full
    assert (
        getattr(eio_socket, LEAN_TRANSPORT).get_write_buffer_size() or not eio_socket.queue.empty()
    )
    # the rest is relayed while the caller reads and the hub's backlog drains
    sending = asyncio.create_task(send(range(count // 2, count)))
    seen: list[int] = []
    async with asyncio.timeout(WAIT):
        while len(seen) < count:
            text = await _server_frame(reader)
            if text.startswith('42["candidate"'):
                seen.append(int(json.loads(text[2:])[1]["candidate"]["candidate"].split()[0][10:]))
    await sending
    assert seen == list(range(count))
    writer.close()
    await answerer.close()


async def test_replies_to_requests_sent_with_the_engineio_close_still_arrive(
    hub: RunningHub,
) -> None:
    """A client that sends its last requests and its Engine.IO CLOSE together gets the
    replies before the WebSocket closes, as it did when every send went through the queue."""
    reader, writer = await asyncio.open_connection("127.0.0.1", int(hub.url.rsplit(":", 1)[1]))
    requests = ["40", "421" + json.dumps(["offer", offer("last")]), '422["rooms",{}]', "1"]
    writer.write(UPGRADE + b"".join(_frame(r) for r in requests))  # one segment
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    seen: list[str] = []
    async with asyncio.timeout(WAIT):
        while (frame := await _any_server_frame(reader))[0] == 0x81:
            seen.append(frame[1].decode())
    assert frame[0] == 0x88  # the close frame, after every reply
    kinds = [text[:3] for text in seen]
    assert kinds[:1] == ['0{"'] and "40{" in kinds and "431" in kinds and "432" in kinds, seen
    assert any(text.startswith('42["welcome"') for text in seen), seen
    writer.close()


async def test_the_101_and_the_open_packet_leave_in_one_write(hub: RunningHub) -> None:
    """One segment, so one read: the upgrade's headers and the Engine.IO OPEN after them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", int(hub.url.rsplit(":", 1)[1]))
    writer.write(UPGRADE)
    got = await asyncio.wait_for(reader.read(65536), WAIT)
    head, _, rest = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"X-Frame-Options" not in head  # no document in a 101 (docs/security.md)
    assert rest[:1] == b"\x81" and rest[2:9] == b'0{"sid"', rest[:40]
    writer.close()


async def test_an_upgrade_aiohttp_refuses_leaves_no_session(hub: RunningHub) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(hub.url.rsplit(":", 1)[1]))
    writer.write(UPGRADE.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""))
    status = await asyncio.wait_for(reader.readline(), WAIT)
    assert status.startswith(b"HTTP/1.1 400"), status
    assert not hub.hub.sio.eio.sockets  # its Engine.IO session went with the refusal
    writer.close()


async def test_a_websocket_from_an_origin_not_allowed_is_refused(
    hub_with: Callable[..., Any],
) -> None:
    running = await hub_with(cors_origins=("http://app.test",))
    url = running.url + "/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await session.ws_connect(url, headers={"Origin": "http://evil.test"})
        assert refused.value.status == 400
        ws = await session.ws_connect(url, headers={"Origin": "http://app.test"})
        assert (await asyncio.wait_for(ws.receive_str(), WAIT)).startswith("0{")
        await ws.close()
    assert len(running.hub.sio.eio.sockets) <= 1  # the refused one left nothing behind


async def test_a_shed_long_polling_socket_ends_its_waiting_poll_at_once(
    hub_with: Callable[..., Any],
) -> None:
    """At shutdown (or any limit) a long-poll GET must not hold its connection until the
    ping timeout: aiohttp would wait its whole shutdown timeout for it."""
    running = await hub_with(ping_interval=600, ping_timeout=600)
    client = socketio.AsyncClient(reconnection=False)
    await client.connect(running.url, transports=["polling"], wait_timeout=WAIT)
    eio = running.hub.sio.eio
    await _until(lambda: bool(eio._polling))  # its next long-poll is waiting
    running.hub.sio.abort_all()
    await _until(lambda: not eio._polling)
    await client.disconnect()


async def test_ping_timeout_aborts_a_socket_with_a_backlog(hub_with: Callable[..., Any]) -> None:
    running = await hub_with(
        max_rooms_per_socket=1000, max_queued_bytes=1 << 30, ping_interval=0.5, ping_timeout=0.5
    )
    await _lobby_of(running, 100)
    eio = running.hub.sio.eio
    writer = await _non_reader(running, 1000)
    await _until(lambda: any(s.last_ping for s in eio.sockets.values()))
    # the backlog is never read, so neither is the ping: the socket must go anyway
    await _until(lambda: running.hub.rooms.socket_count == 1)
    writer.close()


async def test_a_write_stalled_past_the_send_timeout_closes_the_socket(
    hub_with: Callable[..., Any],
) -> None:
    # no queue cap and no ping in reach: only the send timeout can close it
    running = await hub_with(
        max_rooms_per_socket=1000,
        max_queued_bytes=1 << 30,
        ping_interval=600,
        ping_timeout=600,
        send_timeout=0.5,
    )
    await _lobby_of(running, 100)
    # ~17 MB of acks, far past the TCP buffers of a reader of 4 KB
    writer = await _non_reader(running, 1000)
    await _until(lambda: running.hub.rooms.socket_count == 1)
    assert await _closed_by_limit(running.url, "send_timeout") == 1.0
    assert await _closed_by_limit(running.url, "send_queue") == 0.0
    writer.close()


# -- 5: hub-wide and per-address held bytes --------------------------------------------------


async def test_held_bytes_caps_refuse_with_limit_naming_the_cap(
    hub_with: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    sdp = "v=0\r\n" + "a" * 50_000
    running = await hub_with(max_held_bytes=120_000)
    a, b = await party(running.url), await party(running.url)
    assert (await a.call("offer", offer("one", sdp)))["held"] is True
    assert (await b.call("offer", offer("two", sdp)))["held"] is True
    ack = await b.call("offer", offer("three", sdp))
    assert error_code(ack) == "limit" and "--max-held-bytes " in ack["error"]["message"]
    assert running.hub.rooms.get("three") is None
    for _ in range(20):  # a client retrying a full hub
        assert error_code(await b.call("offer", offer("three", sdp))) == "limit"
    # the operator hears that the hub is full, once per interval, without the room's name
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warned if "--max-held-bytes reached" in w]) == 1, warned
    assert not [w for w in warned if "three" in w]
    await a.call("hangup", {"room": "one"})  # frees its share
    assert (await b.call("offer", offer("three", sdp)))["held"] is True
    for room in ("two", "three"):
        await b.call("hangup", {"room": room})
    assert running.hub.budget.total == 0
    await b.close()

    running = await hub_with(max_held_bytes_per_address=70_000)
    c = await party(running.url)
    await c.call("offer", offer("one", sdp))
    ack = await c.call("offer", offer("two", sdp))
    assert error_code(ack) == "limit" and "--max-held-bytes-per-address" in ack["error"]["message"]
    await a.close()
    await c.close()


# -- 4: slow headers, connections per address ------------------------------------------------


async def _eof_within_bound(reader: asyncio.StreamReader) -> None:
    async with asyncio.timeout(WAIT):
        while await reader.read(4096):
            pass


async def _closed_by_limit(url: str, limit: str) -> float:
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        text = await resp.text()
    line = f'p2pcall_sockets_closed_total{{limit="{limit}"}} '
    found = [ln for ln in text.splitlines() if ln.startswith(line)]
    return float(found[0].split()[-1]) if found else 0.0


async def test_half_sent_request_headers_time_out(
    hub_with: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    running = await hub_with(request_timeout=0.5)
    port = int(running.url.rsplit(":", 1)[1])
    # a whole request, then idle past the timeout: closed too, but not counted
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
    idle_writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await idle_reader.readline()).startswith(b"HTTP/1.1 200"), "no reply to a request"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    await _eof_within_bound(reader)
    await _eof_within_bound(idle_reader)
    writer.close()
    idle_writer.close()
    # the hub counts in connection_lost, before the socket closes: EOF means it is done
    assert await _closed_by_limit(running.url, "request_timeout") == 1.0
    lines = [r.getMessage() for r in caplog.records if "--request-timeout" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "sent no whole request within 0.5 s" in lines[0], lines
    _no_tracebacks(caplog)


async def _healthz_reply(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    async with asyncio.timeout(WAIT):
        reply = await reader.read()
    writer.close()
    return reply


async def test_connections_per_address_are_capped(hub_with: Callable[..., Any]) -> None:
    running = await hub_with(max_connections_per_address=3)
    port = int(running.url.rsplit(":", 1)[1])
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _eof_within_bound(reader)  # the fourth is shed at once
    writer.close()
    for _, w in held:
        w.close()
    for _ in range(int(WAIT / 0.05)):  # the hub frees the slots once it has seen them close
        if not (await _healthz_reply(port)).startswith(b"HTTP/1.1 503 "):
            break
        await asyncio.sleep(0.05)
    p = await party(running.url)  # a slot is free again once they are gone
    await p.close()


async def test_shed_connection_is_told_which_limit_without_a_traceback(
    hub_with: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    running = await hub_with(max_connections_per_address=2)
    port = int(running.url.rsplit(":", 1)[1])
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    shed = []
    for _ in range(3):  # each shed connection once cost a "Task exception" traceback
        shed.append(await _healthz_reply(port))
    for _, w in held:
        w.close()
    for reply in shed:
        head, body = reply.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 503 "), reply
        assert body.startswith(b"limit: this address is over 2 open connections"), reply
        assert b"--max-connections-per-address" in body, reply
    await asyncio.sleep(0)
    gc.collect()  # a failed, unretrieved task logs its traceback when collected
    await asyncio.sleep(0)
    lines = [m for r in caplog.records if "--max-connections-per" in (m := r.getMessage())]
    assert len(lines) == 1 and "shedding new ones" in lines[0], lines
    _no_tracebacks(caplog)


async def test_engineio_close_from_the_client_ends_its_connection(hub: RunningHub) -> None:
    """An Engine.IO CLOSE (``1``) ends the socket; its WebSocket must not stay open after
    it, with no ping and no timeout left to end it (a connection held for ever)."""
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, hub.url)
        await ws.send_str("40")
        await _until(lambda: hub.hub.sessions.socket_count == 1)
        await ws.send_str("1")
        await _closed(ws)
        assert hub.hub.sessions.socket_count == 0


# -- 8: long-polling POST bodies -----------------------------------------------------------


async def _polling_session(port: int) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Connection: close\r\n\r\n"
    )
    body = (await asyncio.wait_for(reader.read(), WAIT)).split(b"\r\n\r\n", 1)[1]
    writer.close()
    return str(json.loads(body[1:])["sid"])


async def _post(port: int, sid: str, parts: list[bytes], headers: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n".encode()
        + b"Host: 127.0.0.1\r\nConnection: close\r\nContent-Type: text/plain\r\n"
        + headers
        + b"\r\n"
    )
    for i, part in enumerate(parts):
        if i:
            await writer.drain()
            await asyncio.sleep(0.3)  # the pause under test: the body arrives in pieces
        writer.write(part)
    reply = await asyncio.wait_for(reader.read(), WAIT)
    writer.close()
    return reply


async def _get_poll(port: int, sid: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n".encode()
        + b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    return reader, writer


async def test_a_second_concurrent_long_poll_is_refused_at_once(hub: RunningHub) -> None:
    port = int(hub.url.rsplit(":", 1)[1])
    sid = await _polling_session(port)
    _first, first_writer = await _get_poll(port, sid)  # nothing queued: it waits for a ping
    await _until(lambda: sid in hub.hub.sio.eio._polling)
    reader, writer = await _get_poll(port, sid)
    reply = await asyncio.wait_for(reader.read(), WAIT)  # not parked until the socket dies
    assert reply.startswith(b"HTTP/1.1 400") and b"a long-poll is already open" in reply, reply
    writer.close()
    first_writer.close()


async def test_polling_post_arriving_in_pieces_is_read_whole(hub: RunningHub) -> None:
    port = int(hub.url.rsplit(":", 1)[1])
    sid = await _polling_session(port)
    reply = await _post(port, sid, [b"40"], b"Content-Length: 2\r\n")
    assert reply.startswith(b"HTTP/1.1 200"), reply
    packet = "42" + json.dumps(["offer", offer("pieces", "v=0\r\n" + "a" * 60_000)])
    body = packet.encode()
    reply = await _post(
        port, sid, [body[:30_000], body[30_000:]], f"Content-Length: {len(body)}\r\n".encode()
    )
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    await _until(lambda: hub.hub.rooms.get("pieces") is not None)


async def test_chunked_polling_post_is_a_clear_4xx(hub: RunningHub) -> None:
    port = int(hub.url.rsplit(":", 1)[1])
    sid = await _polling_session(port)
    reply = await _post(port, sid, [b"2\r\n40\r\n0\r\n\r\n"], b"Transfer-Encoding: chunked\r\n")
    assert reply.startswith(b"HTTP/1.1 411"), reply
    assert b"Content-Length" in reply.split(b"\r\n\r\n", 1)[1]


async def test_polling_post_that_is_not_utf8_closes_its_socket_without_a_traceback(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    """python-engineio decodes a polling body itself, and logs its own traceback when that
    fails (then answers 200 and keeps the socket): the hub must treat it as malformed."""
    caplog.set_level(logging.INFO)
    port = int(hub.url.rsplit(":", 1)[1])
    sid = await _polling_session(port)
    reply = await _post(port, sid, [b"40"], b"Content-Length: 2\r\n")
    assert reply.startswith(b"HTTP/1.1 200"), reply
    body = b'\xff\xfe42["rooms",{}]'
    reply = await _post(port, sid, [body], f"Content-Length: {len(body)}\r\n".encode())
    assert reply.startswith(b"HTTP/1.1 400"), reply
    assert b"malformed" in reply.split(b"\r\n\r\n", 1)[1], reply
    await _until(lambda: sid not in hub.hub.sio.eio.sockets)
    _no_tracebacks(caplog)
    assert [r for r in caplog.records if "malformed packet" in r.getMessage()]


# -- 10: ping settings reach Engine.IO -----------------------------------------------------


async def test_ping_settings_reach_engineio(hub_with: Callable[..., Any]) -> None:
    assert Config().ping_interval + Config().ping_timeout <= 25
    running = await hub_with(ping_interval=3.0, ping_timeout=4.0)
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(running.url + "/socket.io/?EIO=4&transport=websocket")
        first = await asyncio.wait_for(ws.receive_str(), WAIT)
        handshake = json.loads(first[1:])
        assert (handshake["pingInterval"], handshake["pingTimeout"]) == (3000, 4000)
        await ws.close()


# -- 11: the page's files and headers --------------------------------------------------------


async def test_only_the_page_files_are_served_with_safe_headers(
    hub_with: Callable[..., Any],
) -> None:
    running = await hub_with()
    async with aiohttp.ClientSession() as session:
        for path in (
            "/static/package.json",
            "/static/package-lock.json",
            "/static/node_modules/socket.io-client/package.json",
            "/static/index.html",
        ):
            async with session.get(running.url + path) as resp:
                assert resp.status == 404, path
        async with session.get(running.url + "/") as resp:
            assert resp.status == 200
            csp = resp.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["X-Frame-Options"] == "DENY"
        for path in ("/static/app.js", "/static/style.css", "/vendor/socket.io.esm.min.js"):
            async with session.get(running.url + path) as resp:
                assert resp.status == 200, path
                assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_allowed_host_and_cors_origin(hub_with: Callable[..., Any]) -> None:
    running = await hub_with(allowed_hosts=("127.0.0.1",), cors_origins=("http://app.test",))
    poll = "/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as session:
        async with session.get(running.url + "/", headers={"Host": "evil.test"}) as resp:
            assert resp.status == 421 and "--allowed-host" in await resp.text()
        async with session.get(running.url + poll, headers={"Origin": "http://evil.test"}) as resp:
            assert resp.status == 400
        async with session.get(running.url + poll, headers={"Origin": "http://app.test"}) as resp:
            assert resp.status == 200
            assert resp.headers["Access-Control-Allow-Origin"] == "http://app.test"


# -- observability ---------------------------------------------------------------------------


async def test_metrics_in_prometheus_text_format(hub_with: Callable[..., Any]) -> None:
    running = await hub_with(max_queued_bytes=200_000, max_rooms_per_socket=1000)
    caller, answerer = await party(running.url), await party(running.url)
    await caller.call("offer", offer("m"))
    await answerer.call("join", {"room": "m"})
    await answerer.call("answer", {"room": "m", "description": {"type": "answer", "sdp": "v"}})
    assert error_code(await caller.call("offer", offer("bad room"))) == "invalid"
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, running.url)
        await ws.send_str("40")
        await ws.receive_str()
        await ws.send_str('42["rooms",{')
        await _closed(ws)
        async with session.get(running.url + "/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=")
            text = await resp.text()
    for line in (
        "p2pcall_sockets 2.0",
        "p2pcall_rooms 1.0",
        "p2pcall_held_offers 0.0",
        "p2pcall_held_bytes 0.0",
        'p2pcall_events_total{event="offer"} 2.0',
        'p2pcall_refusals_total{code="invalid"} 1.0',
        'p2pcall_sockets_closed_total{limit="malformed_packet"} 1.0',
        "p2pcall_relay_seconds_count 1.0",
    ):
        assert line in text, (line, text)
    await caller.close()
    await answerer.close()


async def test_metrics_carry_what_healthz_reports(hub_with: Callable[..., Any]) -> None:
    running = await hub_with(resume_grace=60.0)
    staying = await party(running.url)
    async with aiohttp.ClientSession() as session:
        leaving = await _open(session, running.url)
        await leaving.send_str("40")
        await leaving.receive_str()
        await leaving.send_str("420" + json.dumps(["offer", offer("kept")]))
        async with asyncio.timeout(WAIT):  # its ack: the session holds a room
            while not (await leaving.receive_str()).startswith("430"):
                pass
        await leaving.close()  # no Socket.IO goodbye: a lost client, its session waits
        await _until(lambda: running.hub.sessions.away_count == 1)
        async with session.get(running.url + "/healthz") as resp:
            health = await resp.json()
        async with session.get(running.url + "/metrics") as resp:
            text = await resp.text()
    values = {
        name: float(value)
        for name, _, value in (line.partition(" ") for line in text.splitlines())
        if not name.startswith("#")
    }
    assert (health["sessions"], health["awaySessions"]) == (2, 1)
    assert values["p2pcall_sessions"] == 2.0
    assert values["p2pcall_away_sessions"] == 1.0
    assert values["p2pcall_sockets"] == health["sockets"] == 1
    # read later than /healthz, which rounds to the millisecond
    assert health["uptimeSeconds"] - 0.001 <= values["p2pcall_uptime_seconds"] < 60
    await staying.close()


# -- 14: private rooms -------------------------------------------------------------------------


async def test_private_offer_is_held_but_never_listed(hub: RunningHub) -> None:
    caller, answerer, stranger = [await party(hub.url) for _ in range(3)]
    assert (await caller.call("offer", offer("pub")))["held"] is True
    assert (await caller.call("offer", offer("secret", private=True)))["held"] is True
    lobby = (await stranger.call("rooms", {}))["rooms"]
    assert [r["room"] for r in lobby] == ["pub"]
    assert (await answerer.call("join", {"room": "secret"}))["offer"] is not None
    assert error_code(await stranger.call("offer", offer("x", private="yes"))) == "invalid"
    for p in (caller, answerer, stranger):
        await p.close()


async def test_lobby_pushes_never_stack_on_a_reader_that_is_behind(
    hub_with: Callable[..., Any],
) -> None:
    running = await hub_with(max_rooms_per_socket=1000, lobby_interval=0.02)
    hub = running.hub
    caller = await party(running.url, name="n" * 64)
    for i in range(150):  # a lobby push is then ~25 KB
        await caller.sio.emit("offer", offer(f"{i:04d}" + "r" * 60))
    await caller.call("rooms", {})
    _reader, writer = await _raw_ws(int(running.url.rsplit(":", 1)[1]))
    writer.write(_frame("40"))
    await _until(lambda: hub.rooms.socket_count == 2)
    writer.write(_frame('421["rooms",{"watch":true}]'))
    await _until(lambda: len(hub.lobby_watchers) == 1)
    watcher = list(hub.sio.eio.sockets.values())[-1]  # the raw client, connected last
    depths = []
    for i in range(150, 400):  # each offer changes the lobby; each sweep pushes it
        await caller.call("offer", offer(f"{i:04d}" + "r" * 60))
        await _until(lambda: hub._lobby_sent == hub.rooms.lobby_version)
        depths.append(watcher.queue.qsize())
    assert max(depths[-100:]) <= 2, depths  # the kernel buffers filled long ago
    writer.close()
    await caller.close()


async def test_a_lobby_filled_by_one_client_stays_bounded_for_every_watcher(
    hub_with: Callable[..., Any],
) -> None:
    """One client's many public offers must not make the lobby larger than a watcher's
    send queue: that closed every watcher (the page lost its hub) instead of the filler."""
    running = await hub_with(max_rooms_per_socket=1000, max_queued_bytes=256 * 1024)
    caller = await party(running.url, name="\u00e9" * 64)  # 2 bytes per character in UTF-8
    for i in range(MAX_LOBBY_ROOMS + 150):
        await caller.sio.emit("offer", offer(f"{i:04d}" + "r" * 60))
    watcher = await party(running.url)
    ack = await watcher.call("rooms", {"watch": True})
    assert [r["room"][:4] for r in ack["rooms"]] == [f"{i:04d}" for i in range(MAX_LOBBY_ROOMS)]
    assert ack["more"] == 150  # the oldest listed first, the rest counted
    await caller.call("hangup", {"room": "0000" + "r" * 60})
    pushed = await watcher.next("rooms")
    assert len(pushed["rooms"]) == MAX_LOBBY_ROOMS and pushed["more"] == 149
    assert watcher.sio.connected and running.hub.rooms.socket_count == 2
    await watcher.close()
    await caller.close()


async def _first_packet(ws: aiohttp.ClientWebSocketResponse, prefix: str) -> str:
    async with asyncio.timeout(WAIT):
        while not (data := await ws.receive_str()).startswith(prefix):
            pass
    return data


async def test_refusals_name_what_was_sent(hub: RunningHub) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await _open(session, hub.url)
        await ws.send_str("40" + json.dumps({"lastSeq": 10**40}))
        refused = await _first_packet(ws, "44")
        assert "from 0 to 2^53" in refused and "got 1e+40" in refused, refused
        ws = await _open(session, hub.url)
        await ws.send_str("40")
        await _first_packet(ws, "42")  # welcome
        await ws.send_str("427[123,{}]")
        ack = json.loads((await _first_packet(ws, "437"))[3:])[0]
        assert ack["error"]["code"] == "unknown_event" and "'123'" in ack["error"]["message"], ack
        await ws.close()


@pytest.mark.parametrize("transport_name", ["lean", "stock"])
async def test_clients_gone_during_their_upgrade_leave_no_traceback(
    caplog: pytest.LogCaptureFixture, transport_name: str
) -> None:
    """A tab closed while connecting: the upgrade's answer meets a closed transport."""
    caplog.set_level(logging.INFO)
    running, runner = await start_hub(Config(port=0, transport=transport_name))
    assert isinstance(runner, web.AppRunner)
    app = runner.app
    port = int(running.url.rsplit(":", 1)[1])
    for _ in range(100):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(UPGRADE)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST at once, before the 101 can be read
    try:
        guard = app[CONNECTION_GUARD_KEY]
        await _until(lambda: guard.open_connections() == 0)
        if transport_name == "lean":  # the stock transport keeps them to the ping timeout
            await _until(lambda: not app[HUB_KEY].sio.eio.sockets)
        _no_tracebacks(caplog)
    finally:
        await runner.cleanup()
