"""NAT traversal through a real coturn on loopback: the hub hands out TURN, peers relay."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace

import pytest

from peer.config import config_from_args
from peer.errors import MediaError
from signaling import Config
from signaling.config import parse_ice_server
from tests.conftest import start_hub
from tests.peer.pair import run_both, side
from tests.peer.test_call import assert_media_flowed

TURN_USER, TURN_SECRET = "p2pcall", "loopback-only"


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stun_answers(port: int) -> bool:
    """Send a STUN Binding request; True once the server replies."""
    request = struct.pack("!HHI12s", 0x0001, 0, 0x2112A442, os.urandom(12))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        s.sendto(request, ("127.0.0.1", port))
        try:
            reply, _ = s.recvfrom(2048)
        except OSError:
            return False
    return reply[:2] == b"\x01\x01"


@pytest.fixture(scope="module")
def turn_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("turnserver")
    if binary is None:
        pytest.fail("coturn is not installed: apt-get install coturn (make test installs it)")
    log = (tmp_path_factory.mktemp("coturn") / "turnserver.log").open("w")
    port = free_port(socket.SOCK_DGRAM)
    relay = free_port(socket.SOCK_DGRAM)
    proc = subprocess.Popen(
        [
            binary,
            "-n",
            "--listening-ip=127.0.0.1",
            "--relay-ip=127.0.0.1",
            f"--listening-port={port}",
            f"--min-port={relay}",
            f"--max-port={relay + 40}",
            "--allow-loopback-peers",
            "--lt-cred-mech",
            f"--user={TURN_USER}:{TURN_SECRET}",
            "--realm=p2pcall",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--log-file=stdout",
            "--simple-log",
            "--pidfile=",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # a refused probe returns at once, so wait by the clock, not by a count of probes
        deadline = time.monotonic() + 20
        while not stun_answers(port):
            if proc.poll() is not None:
                pytest.fail(f"turnserver exited with {proc.returncode}; see {log.name}")
            if time.monotonic() > deadline:
                pytest.fail(f"turnserver did not answer STUN within 20 s; see {log.name}")
            time.sleep(0.1)
        yield f"turn:{TURN_USER}:{TURN_SECRET}@127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@asynccontextmanager
async def hub_handing_out(turn: str) -> AsyncIterator[str]:
    """A hub whose ``welcome`` names ``turn`` as its only ICE server; yields its URL."""
    running, runner = await start_hub(
        replace(Config(port=0), ice_servers=(parse_ice_server(turn),))
    )
    try:
        yield running.url
    finally:
        await runner.cleanup()


@pytest.mark.slow
async def test_relay_only_call_through_coturn_from_the_hubs_ice_servers(turn_url: str) -> None:
    async with hub_handing_out(turn_url) as url:
        async with (
            side(url, "caller", "turn", relay_only=True) as caller,
            side(url, "answerer", "turn", relay_only=True) as answerer,
        ):
            await run_both(caller, answerer, "caller", seconds=2.0)
            for s in (caller, answerer):
                assert_media_flowed(s.call, "VP8")
                # only relayed candidates were offered: the media went through coturn
                assert s.call.pc is not None and s.call.pc.localDescription is not None
                sdp = s.call.pc.localDescription.sdp
                assert " typ relay" in sdp and " typ host" not in sdp


@pytest.mark.slow
async def test_wrong_turn_secret_fails_to_connect(turn_url: str) -> None:
    async with hub_handing_out(turn_url.replace(TURN_SECRET, "wrong")) as url:
        async with side(url, "caller", "badturn", relay_only=True) as caller:
            # the peer tries an allocation before the call, and says why it failed
            with pytest.raises(MediaError, match=r"TURN authentication failed .*401"):
                await caller.call.start()


def test_relay_only_flag_and_environment() -> None:
    base = ["--room", "r", "--role", "caller"]
    assert config_from_args(base, environ={}).relay_only is False
    assert config_from_args([*base, "--relay-only"], environ={}).relay_only is True
    assert config_from_args(base, environ={"PEER_RELAY_ONLY": "1"}).relay_only is True
