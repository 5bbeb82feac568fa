"""Calls between two hosts with no route to each other: only a TURN relay can carry them.

See :mod:`tests.netns.net` for the topology. The hub and coturn run in the server
namespace; each peer runs ``python -m peer`` in its own host namespace.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.netns.conftest import TURN_PORT, StartHub
from tests.netns.net import HOST_A, HOST_B, SERVICE, Topology

pytestmark = pytest.mark.slow

UDP_TURN = f"turn:{SERVICE}:{TURN_PORT}"
TCP_TURN = f"turn:{SERVICE}:{TURN_PORT}?transport=tcp"
PEER_TIMEOUT = 25  # --timeout of each peer: connect within this, or fail with one line
FAIL_TIMEOUT = 12  # --timeout where the call is meant to fail: how long it may try
RUN_LIMIT = PEER_TIMEOUT + 30  # the process must have exited by then


@dataclass
class PeerRun:
    side: str
    returncode: int
    stderr: str
    stats: dict[str, Any]

    @property
    def last_line(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.startswith("p2pcall-peer:")]
        return lines[-1] if lines else ""


def start_peer(
    topo: Topology, side: str, hub_url: str, room: str, role: str, *extra: str
) -> subprocess.Popen[str]:
    """``python -m peer`` on host ``side``; stats JSON on stdout, the log on stderr."""
    argv = [sys.executable, "-m", "peer", "--server", hub_url, "--room", room, "--role", role,
            "--size", "320x240", "--fps", "15", "--timeout", str(PEER_TIMEOUT),
            "--stats-json", "-", "-v", "--no-mdns", *extra]  # fmt: skip
    # a later --timeout in ``extra`` wins (argparse keeps the last)
    return subprocess.Popen(
        topo.exec(topo.host(side), argv),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def finish(side: str, proc: subprocess.Popen[str], deadline: float) -> PeerRun:
    """Wait (bounded) for a peer to exit; kill it if it overstays."""
    try:
        out, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return PeerRun(side, proc.returncode, err, json.loads(out) if out.strip() else {})


def run_peer(topo: Topology, side: str, hub_url: str, room: str, *args: str) -> PeerRun:
    return finish(side, start_peer(topo, side, hub_url, room, *args), time.monotonic() + RUN_LIMIT)


def run_peers(topo: Topology, hub_url: str, room: str, *extra: str) -> tuple[PeerRun, PeerRun]:
    """Caller on host a (hangs up 3 s after connecting), answerer on host b, both bounded."""
    caller = start_peer(topo, "a", hub_url, room, "caller", "--duration", "3", *extra)
    answerer = start_peer(topo, "b", hub_url, room, "answerer", *extra)
    deadline = time.monotonic() + RUN_LIMIT
    try:
        return finish("a", caller, deadline), finish("b", answerer, deadline)
    finally:
        for proc in (caller, answerer):
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def assert_relayed_call(run: PeerRun) -> None:
    assert run.returncode == 0, f"host {run.side}: {run.last_line}\n{run.stderr[-3000:]}"
    pair = run.stats["selected_pair"]
    assert pair is not None, run.stats
    assert (pair["local"], pair["remote"]) == ("relay", "relay"), pair
    assert pair["local_address"].startswith(f"{SERVICE}:")
    assert run.stats["frames_received"] > 10, run.stats
    assert "selected pair relay -> relay" in run.stderr


def turn_hub(start_hub: StartHub, secret: str, *args: str) -> str:
    return start_hub(*args, env={"SIGNALING_TURN_SECRET": secret}).url


def test_the_hosts_have_no_route_to_each_other(topology: Topology) -> None:
    assert topology.route_error("a", HOST_B) == "Network is unreachable"
    assert topology.route_error("b", HOST_A) == "Network is unreachable"
    assert topology.route_error("a", SERVICE) is None
    assert topology.route_error("b", SERVICE) is None


def test_python_peers_connect_only_through_turn_with_minted_credentials(
    topology: Topology, coturn: Path, turn_secret: str, start_hub: StartHub
) -> None:
    url = turn_hub(start_hub, turn_secret, "--turn-url", UDP_TURN, "--turn-url", TCP_TURN)
    caller, answerer = run_peers(topology, url, "relayed")
    for run in (caller, answerer):
        assert_relayed_call(run)
        assert run.stats["turn_url"] == UDP_TURN
        print(f"host {run.side} selected pair: {json.dumps(run.stats['selected_pair'])}")


def test_relay_only_between_the_isolated_hosts(
    topology: Topology, coturn: Path, turn_secret: str, start_hub: StartHub
) -> None:
    url = turn_hub(start_hub, turn_secret, "--turn-url", UDP_TURN)
    caller, answerer = run_peers(topology, url, "relayonly", "--relay-only")
    for run in (caller, answerer):
        assert_relayed_call(run)
        print(
            f"host {run.side} --relay-only selected pair: {json.dumps(run.stats['selected_pair'])}"
        )


def test_without_turn_the_call_fails_with_no_route_within_the_timeout(
    topology: Topology, start_hub: StartHub
) -> None:
    url = start_hub().url
    began = time.monotonic()
    caller, answerer = run_peers(topology, url, "noturn", "--timeout", str(FAIL_TIMEOUT))
    assert time.monotonic() - began < FAIL_TIMEOUT + 20
    for run in (caller, answerer):
        assert run.returncode == 4, run.stderr[-3000:]
        assert "no route to the peer" in run.last_line, run.last_line
        assert "no TURN relay was given" in run.last_line, run.last_line
        assert "Traceback" not in run.stderr
        print(f"host {run.side}: {run.last_line}")


def test_expired_credentials_fail_naming_turn_authentication(
    topology: Topology, coturn: Path, turn_secret: str, start_hub: StartHub
) -> None:
    hub = start_hub("--turn-url", UDP_TURN, "--turn-ttl", "1",
                    env={"SIGNALING_TURN_SECRET": turn_secret})  # fmt: skip
    welcome = fetch_welcome(topology, hub.url)
    turn = welcome["iceServers"][-1]
    expiry = int(turn["username"].split(":", 1)[0])
    while time.time() < expiry + 1:  # wait by the clock for the credentials to run out
        time.sleep(0.2)
    ice = ice_server_flag(turn)
    caller, answerer = run_peers(
        topology, hub.url, "expired", "--ice-server", ice, "--timeout", str(FAIL_TIMEOUT)
    )
    for run in (caller, answerer):
        assert run.returncode == 4, run.stderr[-3000:]
        assert "TURN authentication failed" in run.last_line, run.last_line
        assert "401" in run.last_line and "expired at" in run.last_line, run.last_line
        assert turn_secret not in run.stderr
        print(f"host {run.side}: {run.last_line}")


def test_udp_to_coturn_dropped_falls_back_to_tcp_turn(
    topology: Topology, coturn: Path, turn_secret: str, start_hub: StartHub
) -> None:
    url = turn_hub(start_hub, turn_secret, "--turn-url", UDP_TURN, "--turn-url", TCP_TURN)
    topology.drop_udp_to("a", TURN_PORT)
    try:
        caller, answerer = run_peers(topology, url, "tcpturn")
    finally:
        topology.allow_udp_to("a", TURN_PORT)
    assert_relayed_call(caller)
    assert_relayed_call(answerer)
    assert caller.stats["turn_url"] == TCP_TURN
    assert answerer.stats["turn_url"] == UDP_TURN
    assert f"TURN: using {TCP_TURN}, because {UDP_TURN} did not answer" in caller.stderr


def fetch_welcome(topo: Topology, url: str) -> dict[str, Any]:
    """Connect from host a, return the hub's ``welcome``."""
    code = (
        "import asyncio, json, sys\n"
        "from peer.signaling import SignalingClient\n"
        "async def main():\n"
        "    c = SignalingClient(sys.argv[1], timeout=10)\n"
        "    w = await c.connect()\n"
        "    await c.close()\n"
        "    print(json.dumps(w.ice_servers))\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        topo.exec(topo.host("a"), [sys.executable, "-c", code, url]),
        capture_output=True, text=True, timeout=30, cwd=ROOT, check=True,
    )  # fmt: skip
    return {"iceServers": json.loads(done.stdout)}


def ice_server_flag(server: dict[str, Any]) -> str:
    from urllib.parse import quote

    user, cred = quote(server["username"], safe=""), quote(server["credential"], safe="")
    return f"turn:{user}:{cred}@{server['urls'][0].removeprefix('turn:')}"


@pytest.mark.parametrize("relay", ["0", "1"], ids=["all", "relay-param"])
def test_chromium_page_and_python_peer_connect_through_turn(
    topology: Topology,
    coturn: Path,
    turn_secret: str,
    start_hub: StartHub,
    artifacts_dir: Path,
    relay: str,
) -> None:
    url = turn_hub(start_hub, turn_secret, "--turn-url", UDP_TURN, "--turn-url", TCP_TURN)
    room = f"browser{relay}"
    page_url = f"{url}/?room={room}&role=caller&auto=1&name=page&relay={relay}"
    browser = subprocess.Popen(
        topology.exec(
            topology.host("a"),
            [
                sys.executable,
                "-m",
                "tests.netns.browser_side",
                page_url,
                str(artifacts_dir / "page.png"),
            ],
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        python = run_peer(topology, "b", url, room, "answerer", "--duration", "4")
        out, err = browser.communicate(timeout=RUN_LIMIT)
    finally:
        if browser.poll() is None:
            browser.kill()
            browser.communicate()
    page = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    (artifacts_dir / "python.stderr.txt").write_text(python.stderr)
    assert browser.returncode == 0, f"page: {page}\n{err[-3000:]}"
    assert_relayed_call(python)
    assert page["pair"]["local"] == "relay" and page["pair"]["remote"] == "relay", page
    assert page["route"].startswith("relay → relay"), page
    assert page["frames"] >= 10 and page["relayChecked"] is (relay == "1")
    print(f"page selected pair: {page['route']}; python: {python.stats['selected_pair']}")
