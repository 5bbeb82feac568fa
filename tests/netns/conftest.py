"""Fixtures for calls between isolated hosts: the namespaces, coturn and a hub in them."""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import HubProcess, spawn_hub
from tests.netns.net import SERVICE, Topology, new_topology, require_root_and_tools

TURN_PORT = 3478
READY = re.compile(rf"(UDP|TCP) listener opened on\s*:\s*{re.escape(SERVICE)}:{TURN_PORT}")
StartHub = Callable[..., HubProcess]


@pytest.fixture(scope="module")
def topology() -> Iterator[Topology]:
    require_root_and_tools()
    topo = new_topology()
    try:
        yield topo
    finally:
        topo.destroy()


@pytest.fixture(scope="module")
def turn_secret() -> str:
    return secrets.token_urlsafe(24)


@pytest.fixture(scope="module")
def coturn(
    topology: Topology, turn_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Path]:
    """coturn on SERVICE:3478 (UDP and TCP), TURN REST credentials (use-auth-secret).

    Peers' own addresses are denied as relay peers, as a NAT would make them
    unreachable from the internet: only relay-to-relay paths work. Yields its log.
    """
    folder = tmp_path_factory.mktemp("coturn")
    conf = folder / "turnserver.conf"
    conf.write_text(
        "\n".join(
            [
                f"listening-ip={SERVICE}",
                f"relay-ip={SERVICE}",
                f"listening-port={TURN_PORT}",
                "min-port=49152",
                "max-port=49352",
                "use-auth-secret",
                f"static-auth-secret={turn_secret}",
                "realm=p2pcall.test",
                "denied-peer-ip=10.231.1.0-10.231.2.255",
                "no-tls",
                "no-dtls",
                "no-cli",
                "log-file=stdout",
                "simple-log",
                "verbose",
                "pidfile=",
                "",
            ]
        )
    )
    log = folder / "turn.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            topology.exec(topology.server, ["turnserver", "-c", str(conf)]),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while {m.group(1) for m in READY.finditer(_read(log))} != {"UDP", "TCP"}:
            if proc.poll() is not None:
                pytest.fail(f"turnserver exited with {proc.returncode}; see {log}")
            if time.monotonic() > deadline:
                pytest.fail(f"turnserver did not open its listeners within 30 s; see {log}")
            time.sleep(0.1)
        yield log
    finally:
        proc.terminate()
        proc.wait(10)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


@pytest.fixture
def start_hub(topology: Topology) -> Iterator[StartHub]:
    """Start ``python -m signaling`` in the server namespace on SERVICE; stopped at the end."""
    started: list[HubProcess] = []

    def start(*args: str, env: dict[str, str] | None = None) -> HubProcess:
        hub = spawn_hub("--host", SERVICE, *args, wrap=topology.exec(topology.server, []), env=env)
        started.append(hub)
        return hub

    yield start
    for hub in started:
        hub.stop()
