"""``python -m peer`` as a real subprocess: a whole call, and every exit code with its line."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from peer.config import config_from_args
from peer.errors import UsageError
from peer.session import run_peer
from peer.signaling import SignalingClient
from peer.xserver import x_server_fault
from signaling import Config
from tests.conftest import RunningHub, spawn_hub, start_hub

from .cli_run import finish, run_cli, start_cli

SMALL = ["--size", "320x240", "--fps", "20"]


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_two_cli_peers_call_and_chat(hub: RunningHub, tmp_path: Path) -> None:
    common = ["--server", hub.url, "--room", "cli", *SMALL, "--chat"]
    caller = await start_cli(
        *common, "--role", "caller", "--name", "ann", "--duration", "5", "--codec", "h264",
        "--stats-json", str(tmp_path / "caller.json"),
    )  # fmt: skip
    answerer = await start_cli(
        *common, "--role", "answerer", "--name", "bob", "--stats-json", "-", "--audio", "tone"
    )
    assert caller.stdin is not None
    caller.stdin.write(b"hello from ann\n")
    await caller.stdin.drain()
    done_caller, done_answerer = await asyncio.gather(finish(caller), finish(answerer))
    assert done_caller.code == 0, done_caller.stderr
    assert done_answerer.code == 0, done_answerer.stderr
    assert "call ended (duration)" in done_caller.stderr
    assert "call ended (hangup)" in done_answerer.stderr
    assert "waiting for" in done_caller.stderr + done_answerer.stderr
    assert "connected |" in done_caller.stderr
    assert "bob: " not in done_caller.stdout

    assert "ann: hello from ann" in done_answerer.stdout
    answerer_stats = json.loads(done_answerer.stdout[done_answerer.stdout.index("{") :])
    caller_stats = json.loads((tmp_path / "caller.json").read_text())
    for stats in (caller_stats, answerer_stats):
        assert stats["exit_code"] == 0
        assert stats["frames_received"] > 10
        assert stats["frames_lost"] <= max(3, stats["frames_received"] // 20)
        assert stats["video"] == {"width": 320, "height": 240, "codec": "H264"}
        assert stats["latency_ms"]["p50"] is not None
        assert stats["fps"] > 0 and stats["bitrate_kbps"] > 0
        assert stats["connected_ms"] > 0 and stats["first_frame_ms"] >= stats["connected_ms"]
        assert stats["rtt_ms"] is not None


async def test_exit_3_hub_down(unused_tcp_port: int) -> None:
    url = f"http://127.0.0.1:{unused_tcp_port}"
    done = await run_cli("--server", url, "--room", "r", "--role", "caller")
    assert done.code == 3
    assert done.last_error_line.startswith(f"p2pcall-peer: cannot reach the hub at {url}")


async def test_exit_3_room_full(hub: RunningHub) -> None:
    clients = [SignalingClient(hub.url), SignalingClient(hub.url)]
    for c in clients:
        await c.connect()
    try:
        await clients[0].offer("full", {"type": "offer", "sdp": "v=0\r\n"})
        await clients[1].join("full")
        done = await run_cli("--server", hub.url, "--room", "full", "--role", "answerer")
        assert done.code == 3
        assert done.last_error_line == (
            "p2pcall-peer: join: room 'full' already has an answerer; "
            "a room holds one caller and one answerer"
        )
        busy = await run_cli("--server", hub.url, "--room", "full", "--role", "caller")
        assert busy.code == 3
        assert "already has a caller" in busy.last_error_line
    finally:
        for c in clients:
            await c.close()


async def test_exit_3_wrong_token() -> None:
    running = spawn_hub("--token", "s3cret-0123456789abc")
    try:
        done = await run_cli(
            "--server", running.url, "--room", "r", "--role", "caller", "--token", "x"
        )
        assert done.code == 3
        assert done.last_error_line == (
            f"p2pcall-peer: hub {running.url} refused the access token (--token)"
        )
        assert "s3cret-0123456789abc" not in done.stderr and "x)" not in done.stderr.replace(
            "(--token)", ""
        )
    finally:
        running.process.terminate()
        running.process.wait(10)


async def test_an_ipv6_literal_ice_server_from_the_hub_is_skipped_with_a_warning() -> None:
    """The hub's list is for browsers too: aiortc cannot parse ``stun:[::1]``, so the
    peer says so once and calls with the rest, instead of ``ValueError: malformed uri``."""
    running = spawn_hub("--ice-server", "stun:[::1]:3478", "--ice-server", "stun:127.0.0.1:9")
    try:
        done = await run_cli(
            "--server", running.url, "--room", "v6", "--role", "caller", *SMALL, "--timeout", "2"
        )  # fmt: skip
        assert done.code == 4, done.stderr
        assert done.last_error_line == (
            "p2pcall-peer: no answerer came to room 'v6' within 2 s (--timeout)"
        )
        warnings = [ln for ln in done.stderr.splitlines() if "skipping ICE server" in ln]
        assert len(warnings) == 1, done.stderr
        assert warnings[0].endswith(
            "skipping ICE server 'stun:[::1]:3478' from the hub: aiortc cannot use it "
            "(IPv6 literals are not supported by its ICE agent)"
        )
    finally:
        running.process.terminate()
        running.process.wait(10)


@pytest.mark.parametrize("token", [None, ""])
async def test_exit_3_no_token_for_a_hub_that_needs_one(token: str | None) -> None:
    """An empty PEER_TOKEN is no token: the line says none was given, not that it was wrong."""
    running = spawn_hub("--token", "s3cret-0123456789abc")
    try:
        done = await run_cli(
            "--server", running.url, "--room", "r", "--role", "caller",
            env={} if token is None else {"PEER_TOKEN": token},
        )  # fmt: skip
        assert done.code == 3
        assert done.last_error_line == (
            f"p2pcall-peer: hub {running.url} needs an access token and none was given "
            "(--token / PEER_TOKEN)"
        )
    finally:
        running.process.terminate()
        running.process.wait(10)


async def test_exit_4_no_answerer_before_timeout(hub: RunningHub, tmp_path: Path) -> None:
    stats = tmp_path / "s.json"
    done = await run_cli(
        "--server", hub.url, "--room", "alone", "--role", "caller", *SMALL,
        "--timeout", "2", "--stats-json", str(stats),
    )  # fmt: skip
    assert done.code == 4
    assert (
        done.last_error_line
        == "p2pcall-peer: no answerer came to room 'alone' within 2 s (--timeout)"
    )
    assert "waiting for answerer" in done.stderr
    written = json.loads(stats.read_text())
    assert written["exit_code"] == 4 and written["connected_ms"] is None
    assert "no answerer" in written["error"]


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_exit_4_when_the_other_peer_is_killed_mid_call(hub: RunningHub) -> None:
    """SIGKILL: no hang-up on the hub nor over DTLS; the survivor's media goes silent and
    ICE consent (RFC 7675) expires: a media failure, not a hang-up with exit 0."""
    common = ["--server", hub.url, "--room", "killed", *SMALL]
    caller = await start_cli(*common, "--role", "caller")
    answerer = await start_cli(*common, "--role", "answerer")
    assert answerer.stderr is not None
    while b"connected |" not in await asyncio.wait_for(answerer.stderr.readline(), 60):
        pass
    caller.kill()
    await caller.wait()
    done = await finish(answerer, limit=90)
    assert done.code == 4, done.stderr
    assert re.fullmatch(
        r"p2pcall-peer: the media connection with the caller in room 'killed' closed after "
        r"the call was connected, nothing received for \d+ s: .* \(the caller is gone: .*\)",
        done.last_error_line,
    ), done.last_error_line
    assert "Traceback" not in done.stderr and "call ended" not in done.stderr


@pytest.mark.parametrize("wayland", ["", "wayland-0"])
async def test_exit_2_show_without_display(wayland: str) -> None:
    """Wayland alone is refused too: OpenCV's Qt here has only the xcb plugin and would
    abort (SIGABRT) after the offer was sent."""
    done = await run_cli(
        "--server", "http://127.0.0.1:9", "--room", "r", "--role", "caller", "--show",
        env={"DISPLAY": "", "WAYLAND_DISPLAY": wayland},
    )  # fmt: skip
    assert done.code == 2
    assert done.last_error_line == (
        "p2pcall-peer: --show needs X11's DISPLAY, which is not set; the video window is an "
        "X11 window (a Wayland session provides DISPLAY through XWayland)"
    )


def _silent_display() -> int:
    """A display number no X server answers on here (the tests' Xvfb use lower ones)."""
    return next(n for n in range(170, 200) if x_server_fault(f":{n}") is not None)


async def test_exit_2_show_with_a_display_no_x_server_answers(tmp_path: Path) -> None:
    """A DISPLAY left over from a stopped Xvfb: OpenCV's Qt would abort after the offer."""
    display = f":{_silent_display()}"
    done = await run_cli(
        "--server", "http://127.0.0.1:9", "--room", "r", "--role", "caller", "--show",
        env={"DISPLAY": display},
    )  # fmt: skip
    assert done.code == 2, done.stderr
    assert re.fullmatch(
        rf"p2pcall-peer: --show: no X server answers on DISPLAY='{display}' "
        rf"\(/tmp/\.X11-unix/X{display[1:]}: [a-z ]+\); start one \(for example: "
        rf"Xvfb {display} &\) or run without --show",
        done.last_error_line,
    ), done.last_error_line


async def test_run_peer_with_show_checks_the_x_server_too(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the API (no CLI), the same refusal, before anything connects."""
    display = f":{_silent_display()}"
    monkeypatch.setenv("DISPLAY", display)
    argv = ["--server", "http://127.0.0.1:9", "--room", "r", "--role", "caller"]
    cfg = dataclasses.replace(config_from_args(argv, environ={}), show=True)
    with pytest.raises(UsageError, match=rf"^--show: no X server answers on DISPLAY='{display}'"):
        await run_peer(cfg, {})


def test_x_server_fault_tells_a_listening_display_from_a_silent_one() -> None:
    free = _silent_display()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(f"\0/tmp/.X11-unix/X{free}")  # abstract: nothing left on disk
        server.listen()
        assert x_server_fault(f":{free}") is None
        assert x_server_fault(f"unix:{free}.0") is None
    assert x_server_fault(f":{free}") is not None
    assert x_server_fault("nonsense") == (
        "DISPLAY='nonsense' is not [host]:number[.screen] such as :0"
    )
    with socket.socket() as closed:  # a TCP port nobody listens on: display N is 6000 + N
        closed.bind(("127.0.0.1", 0))
        number = closed.getsockname()[1] - 6000
    if number >= 0:
        assert "127.0.0.1 port" in (x_server_fault(f"127.0.0.1:{number}") or "")


async def test_exit_2_bad_name_before_connecting() -> None:
    """Port 9 has no hub: exit 2, not 3, shows the name was refused before connecting."""
    done = await run_cli(
        "--server", "http://127.0.0.1:9", "--room", "r", "--role", "caller",
        env={"PEER_NAME": "\u202eevil"},
    )  # fmt: skip
    assert done.code == 2, done.stderr
    assert done.last_error_line.startswith(
        "p2pcall-peer: PEER_NAME (--name): must be 1-64 characters with no control"
    )
    assert done.last_error_line.endswith("got '\\u202eevil'")
    assert "\u202e" not in done.stderr


async def test_exit_2_usage() -> None:
    done = await run_cli("--room", "r", "--role", "boss")
    assert done.code == 2
    assert done.last_error_line == "p2pcall-peer: --role: expected caller or answerer, got 'boss'"


@pytest.mark.timeout(120)
async def test_room_new_prints_an_answer_link_to_a_private_room(hub: RunningHub) -> None:
    caller = await start_cli(
        "--server", hub.url, "--room", "new", "--role", "caller", *SMALL, "--audio", "none"
    )  # fmt: skip
    try:
        assert caller.stdout is not None
        line = (await asyncio.wait_for(caller.stdout.readline(), 60)).decode()
        m = re.fullmatch(r"private room ([A-Za-z0-9_-]{22}): answer at (\S+)\n", line)
        assert m, line
        room, link = m.groups()
        assert link == f"{hub.url}/?room={room}&role=answerer&auto=1"
        for _ in range(600):  # the caller's offer is held under the generated room
            held = hub.hub.rooms.get(room)
            if held is not None and held.offer is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"no held offer in room {room}")
        assert hub.hub.rooms.lobby(0.0) == [], "a private room is never listed"
    finally:
        caller.terminate()
        await finish(caller)


@pytest.fixture
async def capped_hub() -> AsyncIterator[RunningHub]:
    """One connection per address, one wrong token per minute: each limit in one try."""
    config = Config(port=0, max_connections_per_address=1, token=TOKEN, max_token_failures=1)
    running, runner = await start_hub(config)
    try:
        yield running
    finally:
        await runner.cleanup()


TOKEN = "a-token-of-16-chars-or-more"


async def test_exit_3_over_the_connection_cap_quotes_the_hub(capped_hub: RunningHub) -> None:
    """python-socketio says only "Connection error" for the hub's 503: the peer asks why."""
    port = int(capped_hub.url.rsplit(":", 1)[1])
    _, held = await asyncio.open_connection("127.0.0.1", port)  # this address's one connection
    try:
        done = await run_cli(
            "--server", capped_hub.url, "--room", "r", "--role", "caller", "--token", TOKEN
        )
    finally:
        held.close()
    assert done.code == 3, done.stderr
    assert done.last_error_line == (
        f"p2pcall-peer: the hub at {capped_hub.url} refused the connection: limit: this "
        "address is over 1 open connections (--max-connections-per-address); close some or "
        "try again later"
    )


async def test_exit_3_token_guessing_throttled_says_limit(capped_hub: RunningHub) -> None:
    common = ["--server", capped_hub.url, "--room", "r", "--role", "caller"]
    wrong = await run_cli(*common, "--token", "wrong-token-of-16-chars")
    assert wrong.code == 3 and "refused the access token" in wrong.last_error_line
    throttled = await run_cli(*common, "--token", TOKEN)  # right, but too late
    assert throttled.code == 3, throttled.stderr
    assert re.fullmatch(
        rf"p2pcall-peer: hub {capped_hub.url} refused the connect: too many wrong access "
        r"tokens from your address; try again in \d+ s \(.*--max-token-failures\)",
        throttled.last_error_line,
    ), throttled.last_error_line


async def test_exit_3_https_to_a_plain_hub_names_tls(hub: RunningHub) -> None:
    url = hub.url.replace("http://", "https://")
    done = await run_cli("--server", url, "--room", "r", "--role", "caller")
    assert done.code == 3, done.stderr
    assert done.last_error_line.startswith(f"p2pcall-peer: the TLS handshake with {url} failed")
    assert done.last_error_line.endswith("reached with http://, not https://")


async def test_exit_3_a_hub_that_does_not_answer_to_the_host_name() -> None:
    running, runner = await start_hub(Config(port=0, allowed_hosts=("hub.example",)))
    try:
        done = await run_cli("--server", running.url, "--room", "r", "--role", "caller")
    finally:
        await runner.cleanup()
    assert done.code == 3, done.stderr
    assert done.last_error_line == (
        f"p2pcall-peer: the hub at {running.url} does not answer to that host name: "
        "this hub does not answer to host '127.0.0.1' (see --allowed-host); "
        "use a name it was started with --allowed-host for"
    )


async def test_exit_3_a_web_server_that_is_not_a_hub() -> None:
    runner = web.AppRunner(web.Application())  # answers 404 to everything
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        done = await run_cli("--server", url, "--room", "r", "--role", "caller")
    finally:
        await runner.cleanup()
    assert done.code == 3, done.stderr
    assert done.last_error_line == (
        f"p2pcall-peer: {url} answered HTTP 404 to /healthz: it is not a p2pcall hub "
        "(check --server)"
    )


@contextlib.asynccontextmanager
async def _tcp_server(greeting: bytes | None) -> AsyncIterator[str]:
    """The URL of a TCP server that sends ``greeting`` and then nothing, or nothing at all."""
    held: list[asyncio.StreamWriter] = []

    async def serve(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # kept open: a stopped process answers nothing but keeps it
        if greeting is not None:
            writer.write(greeting)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        async with server:
            yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        for writer in held:
            writer.close()
            await writer.wait_closed()


async def test_exit_3_a_server_that_never_answers_within_the_timeout() -> None:
    """A stopped hub (SIGSTOP) keeps accepting TCP: the connect must still give up."""
    async with _tcp_server(None) as url:
        done = await run_cli("--server", url, "--room", "r", "--role", "caller", "--timeout", "2")
    assert done.code == 3, done.stderr
    assert done.last_error_line == (
        f"p2pcall-peer: the server at {url} took the connection but did not answer within "
        "2 s; is the hub stopped or overloaded? check --server"
    )
    assert "Unclosed client session" not in done.stderr


async def test_exit_3_a_server_that_does_not_speak_http() -> None:
    async with _tcp_server(b"SSH-2.0-OpenSSH_9.2\r\n") as url:
        done = await run_cli("--server", url, "--room", "r", "--role", "caller", "--timeout", "5")
    assert done.code == 3, done.stderr
    assert done.last_error_line == (
        f"p2pcall-peer: {url} did not answer as a web server (ClientResponseError): "
        "it is not a p2pcall hub (check --server)"
    )
    assert "Unclosed client session" not in done.stderr and "Traceback" not in done.stderr
