"""Real hubs on one real redis-server (``--redis``) behind real HAProxy (deploy/haproxy.cfg).

redis-server comes from :func:`tests.shared_hubs.start_redis` (a Unix socket in the test's
temp dir), the hubs from :func:`tests.conftest.spawn_hub`, so these tests run the very
processes `make cluster` runs. HAProxy must be installed: a missing binary fails the test
with the package to install, it never skips. Everything listens on 127.0.0.1 or a Unix
socket.

The browser fixtures (Chromium through Playwright, the ``python -m peer`` subprocess) are
re-exported from tests/browser/conftest.py, so a test here drives the page and the peer
through HAProxy with the same fixtures as the browser suite.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import aiohttp
import pytest
from yarl import URL

from deploy.cluster import HAPROXY_CFG, free_port, haproxy_env
from tests.browser.conftest import (  # noqa: F401 (fixtures, found here by pytest)
    browser,
    open_page,
    page_keeper,
    playwright,
    start_peer,
)
from tests.conftest import HubProcess, spawn_hub
from tests.hub.client import TIMEOUT, Party
from tests.shared_hubs import RedisServer, start_redis

COOKIE = "hub"  # `cookie hub insert ...` in haproxy.cfg
# What make cluster gives each hub (deploy/cluster.py), with a short ping interval: a
# long-polling GET is held that long, and a polling client's disconnect waits for it.
# A long grace: a client whose hub died must still find its session on a loaded machine.
HUB_ARGS = (
    "--max-connections-per-address", "0",
    "--ping-interval", "1", "--ping-timeout", "5",
    "--resume-grace", "60",
)  # fmt: skip


def need(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed: install it: apt-get install {package}")
    return path


def _collect(stream: IO[str], lines: list[str]) -> None:
    with stream:
        for line in stream:
            lines.append(line)


@dataclass(frozen=True)
class Logged:
    """One request line of HAProxy's log (``%ci %b/%s %ST %HM %HP %tsc``)."""

    server: str
    status: int
    path: str
    # the sticky cookie's part of the termination state: "VN" a valid cookie routed it,
    # "NI" there was none and HAProxy inserted one (haproxy docs, "8.5 Session state")
    cookie: str


@dataclass
class Front:
    """HAProxy from deploy/haproxy.cfg; ``log`` holds its request lines as they come
    (a WebSocket's ``101`` once the upgrade went through)."""

    url: str
    process: subprocess.Popen[str]
    log: list[str]
    stats: Path

    def logged(self, path: str = "/socket.io/") -> list[Logged]:
        """Every logged request for ``path``, in the order they ended."""
        out = []
        for line in list(self.log):
            m = re.match(r"\S+ hubs/(\S+) (-?\d+) \S+ (\S+) \S\S(\S\S)", line)
            if m and m.group(3) == path:
                out.append(Logged(m.group(1), int(m.group(2)), path, m.group(4)))
        return out

    def requests(self, path: str = "/socket.io/") -> list[tuple[str, int]]:
        """(server, status) of every logged request for ``path``."""
        return [(r.server, r.status) for r in self.logged(path)]

    def command(self, line: str) -> str:
        """One command on the admin socket (``show stat``, ``set server ...``); its answer."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.stats))
            s.sendall(line.encode() + b"\n")
            return s.makefile().read()

    def stat(self, server: str) -> dict[str, str]:
        """``server``'s row of ``show stat`` on the admin socket, by column name
        (``status``: UP, DOWN, ...; ``scur``: connections it holds now)."""
        rows = self.command("show stat").splitlines()
        names = rows[0].removeprefix("# ").split(",")
        for row in rows[1:]:
            fields = row.split(",")
            if fields[:2] == ["hubs", server]:
                return dict(zip(names, fields, strict=False))
        raise AssertionError(f"no server {server!r} in show stat")

    def state(self, server: str) -> str:
        """UP, DOWN, ... (``status`` of ``show stat``)."""
        return self.stat(server)["status"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def start_front(hubs: list[str], stats: Path) -> Front:
    """HAProxy on a free port in front of ``hubs`` (``http://HOST:PORT``), once it answers."""
    binary = need("haproxy", "haproxy")
    port = free_port()
    env = haproxy_env("127.0.0.1", port, [h.removeprefix("http://") for h in hubs], stats)
    proc = subprocess.Popen(
        [binary, "-db", "-f", str(HAPROXY_CFG)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **env},
    )
    assert proc.stdout is not None
    log: list[str] = []
    threading.Thread(target=_collect, args=(proc.stdout, log), daemon=True).start()
    front = Front(f"http://127.0.0.1:{port}", proc, log, stats)
    # ready: a real GET through it reaches a hub (polled every 50 ms, bounded)
    for _ in range(int(TIMEOUT / 0.05)):
        if proc.poll() is not None:
            raise AssertionError(f"haproxy exited with {proc.returncode}: {''.join(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.settimeout(2)
                s.sendall(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
                if s.recv(64).split(b"\r\n", 1)[0].endswith(b" 200 OK"):
                    return front
        except OSError:
            pass
        time.sleep(0.05)
    front.stop()
    raise AssertionError(f"haproxy did not answer /healthz within {TIMEOUT:g} s: {''.join(log)}")


@pytest.fixture
def group_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own: the hubs use the default key prefix (the CLI
    has no other), so two tests' groups must not share one."""
    server = start_redis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def two_hubs(group_redis: RedisServer) -> Iterator[list[HubProcess]]:
    """Two ``python -m signaling --redis ...`` subprocesses on ``group_redis``."""
    hubs = [spawn_hub("--redis", group_redis.url, *HUB_ARGS) for _ in range(2)]
    try:
        yield hubs
    finally:
        for hub in hubs:
            if hub.process.poll() is None:
                hub.stop()
            else:
                hub.reader.join(10)


@pytest.fixture
def front(two_hubs: list[HubProcess], tmp_path: Path) -> Iterator[Front]:
    """HAProxy in front of ``two_hubs``: hub1 is the first, hub2 the second."""
    f = start_front([h.url for h in two_hubs], tmp_path / "haproxy.sock")
    try:
        yield f
    finally:
        f.stop()


def cookie_session(url: str, hub: str | None = None) -> aiohttp.ClientSession:
    """An HTTP session that keeps HAProxy's sticky cookie, optionally pinned to ``hub``.

    aiohttp's default cookie jar drops cookies set by an IP-address host (127.0.0.1), so
    a stock python-socketio client loses stickiness there: ``unsafe=True`` keeps them.
    """
    jar = aiohttp.CookieJar(unsafe=True)
    if hub is not None:
        jar.update_cookies({COOKIE: hub}, response_url=URL(url))
    return aiohttp.ClientSession(cookie_jar=jar)


Connect = Callable[..., Awaitable[Party]]


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """``await connect(url, hub=None, transports=("websocket",), resume=None)``: a
    :class:`~tests.hub.client.Party` that got its welcome, with its own cookie jar (pinned
    to ``hub`` if given); ``resume=party`` resumes that party's session. All are closed
    afterwards."""
    opened: list[tuple[Party, aiohttp.ClientSession]] = []

    async def open_party(
        url: str,
        hub: str | None = None,
        transports: tuple[str, ...] = ("websocket",),
        resume: Party | None = None,
    ) -> Party:
        http = cookie_session(url, hub)
        try:
            if resume is not None:
                party = await resume.resume(url, http_session=http)
            else:
                party = await Party(http_session=http).connect(url, transports=transports)
        except BaseException:
            await http.close()
            raise
        opened.append((party, http))
        return party

    yield open_party
    for party, http in opened:
        await party.close()
        await http.close()


async def health(hub: HubProcess) -> tuple[int, dict[str, object]]:
    """A hub's own ``GET /healthz``: HTTP status and body."""
    async with aiohttp.ClientSession() as http, http.get(f"{hub.url}/healthz") as r:
        return r.status, await r.json()


async def until_held(front: Front, counts: dict[str, int]) -> None:
    """Wait (bounded) until HAProxy holds that many connections to each named hub.

    HAProxy's count (``scur``), not the hubs': on one Redis every hub knows every
    socket of the group, so only the front can tell which hub a client reached. A
    WebSocket is one connection for its whole life; a polling request only while open.
    """
    seen: dict[str, int] = {}
    for _ in range(int(TIMEOUT / 0.05)):
        stats = await asyncio.to_thread(lambda: {s: front.stat(s) for s in counts})
        seen = {server: int(row["scur"]) for server, row in stats.items()}
        if seen == counts:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"HAProxy holds {seen} connections per hub, expected {counts}")


async def until_state(front: Front, server: str, prefix: str) -> str:
    """Wait (bounded) until HAProxy's state of ``server`` starts with ``prefix``; return it.

    Read from the admin socket in a thread: the event loop keeps serving the test's
    clients meanwhile."""
    state = ""
    for _ in range(int(TIMEOUT / 0.05)):
        state = await asyncio.to_thread(front.state, server)
        if state.startswith(prefix):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"HAProxy kept {server} {state}, never {prefix}")
