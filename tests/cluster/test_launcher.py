"""deploy/cluster.py (``make cluster``) as a real subprocess: it starts, serves, stops.

It runs the real thing: redis-server on a Unix socket, two ``python -m signaling --redis``
hubs on it and HAProxy; a call placed through its URL crosses both hubs.
"""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from deploy.cluster import free_port
from tests.cluster.conftest import Connect, need
from tests.conftest import ROOT
from tests.hub.client import answer, offer

LIMIT = 30.0


@dataclass
class Launcher:
    process: subprocess.Popen[str]
    lines: queue.Queue[str | None]
    log: list[str]
    pids: dict[str, int]
    url: str = ""
    redis: str = ""

    def until(self, pattern: str) -> re.Match[str]:
        """Read its output until ``pattern`` matches a line, at most LIMIT seconds."""
        deadline = time.monotonic() + LIMIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"launcher ended before {pattern!r}:\n{''.join(self.log)}")
            if m := re.search(r"started (\S+) \(pid (\d+)\)", line):
                self.pids[m.group(1)] = int(m.group(2))
            if m := re.search(pattern, line):
                return m
        raise AssertionError(f"no {pattern!r} within {LIMIT:g} s:\n{''.join(self.log)}")


def _pump(stream: subprocess.Popen[str], lines: queue.Queue[str | None], log: list[str]) -> None:
    assert stream.stdout is not None
    with stream.stdout:
        for line in stream.stdout:
            log.append(line)
            lines.put(line)
    lines.put(None)


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie has exited; only its parent (gone too) could reap it
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture
def launcher() -> Iterator[Launcher]:
    need("redis-server", "redis-server")
    need("haproxy", "haproxy")
    proc = subprocess.Popen(
        [sys.executable, "deploy/cluster.py", "--port", str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    lines: queue.Queue[str | None] = queue.Queue()
    log: list[str] = []
    threading.Thread(target=_pump, args=(proc, lines, log), daemon=True).start()
    la = Launcher(proc, lines, log, {})
    try:
        la.url = la.until(r"ready: open (http://\S+)/ ").group(1)
        la.redis = la.until(r"  redis: (\S+)").group(1)
        la.until("Ctrl-C stops everything")
        yield la
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(LIMIT)


async def test_it_serves_calls_and_stops_everything_on_sigterm(
    launcher: Launcher, connect: Connect
) -> None:
    assert set(launcher.pids) == {"redis", "hub1", "hub2", "haproxy"}
    assert launcher.redis.startswith("unix:///"), launcher.redis
    # pinned to different hubs: only a shared Redis gets the answer to the caller
    caller = await connect(launcher.url, hub="hub1")
    answerer = await connect(launcher.url, hub="hub2")
    ack = await caller.call("offer", offer("launcher"))
    assert ack == {"ok": True, "role": "caller", "held": True}
    ack = await answerer.call("join", {"room": "launcher"})
    assert ack["offer"] == offer("launcher")["description"]
    await answerer.call("answer", answer("launcher"))
    assert await caller.next("answer") == answer("launcher")
    # HAProxy's lines (behind its name) show each party on the hub its cookie named
    await caller.close()
    await answerer.close()
    launcher.until(r"\[haproxy\] \S+ hubs/hub1 101 GET /socket.io/ ")
    launcher.until(r"\[haproxy\] \S+ hubs/hub2 101 GET /socket.io/ ")

    launcher.process.send_signal(signal.SIGTERM)
    assert launcher.process.wait(LIMIT) == 0
    launcher.until(r"\[cluster\] stopped")
    assert all(gone(pid) for pid in launcher.pids.values()), launcher.pids


async def test_a_killed_hub_leaves_the_other_serving_and_redis_death_stops_all(
    launcher: Launcher, connect: Connect
) -> None:
    caller = await connect(launcher.url, hub="hub1")
    assert (await caller.call("offer", offer("held")))["held"] is True
    os.kill(launcher.pids["hub1"], signal.SIGKILL)
    launcher.until(r"hub1 \(exit -9\) died; hub2 carries on")
    # the held offer outlived its hub: an answerer through HAProxy gets it from hub2
    answerer = await connect(launcher.url)
    ack = await answerer.call("join", {"room": "held"})
    assert ack["offer"] == offer("held")["description"]
    await answerer.close()
    await caller.close()
    assert launcher.process.poll() is None
    # what the group cannot do without: the launcher stops and fails naming it
    os.kill(launcher.pids["redis"], signal.SIGKILL)
    assert await asyncio.to_thread(launcher.process.wait, LIMIT) == 1
    launcher.until(r"redis \(exit -9\) died; stopping the rest")
    launcher.until(r"\[cluster\] stopped")
    assert all(gone(pid) for pid in launcher.pids.values()), launcher.pids


def test_a_port_in_use_is_refused_before_anything_starts() -> None:
    """Otherwise /healthz on that port is answered by its owner and "ready" is a lie."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "deploy/cluster.py", "--port", str(port)],
            capture_output=True, text=True, cwd=ROOT, timeout=LIMIT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.strip() == (
        f"[cluster] cannot listen on 127.0.0.1:{port}: address already in use "
        "(--bind, --port; CLUSTER_BIND, CLUSTER_PORT)"
    ), done.stdout
    assert "started" not in done.stdout and "Traceback" not in done.stderr


@pytest.mark.parametrize("value", ["abc", "70000", "-1", "0"])
def test_a_bad_cluster_port_is_a_usage_line(value: str) -> None:
    done = subprocess.run(
        [sys.executable, "deploy/cluster.py"],
        capture_output=True, text=True, cwd=ROOT, timeout=LIMIT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "CLUSTER_PORT": value},
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines()[-1] == (
        "deploy/cluster.py: error: argument --port: expected a TCP port from 1 to 65535 "
        f"(--port, CLUSTER_PORT), got '{value}'"
    )
    assert "Traceback" not in done.stderr and done.stdout == ""
