"""Real redis-server and HAProxy (deploy/haproxy.cfg) for the several-hubs tests.

Both must be installed: a missing binary fails the test with the package to install,
it never skips. Everything binds 127.0.0.1 on free ports.
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
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
import socketio
from yarl import URL

from deploy.cluster import HAPROXY_CFG, free_port, haproxy_env
from tests.conftest import HubProcess, spawn_hub
from tests.hub.client import TIMEOUT

COOKIE = "hub"  # `cookie hub insert ...` in haproxy.cfg


def need(binary: str, package: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.fail(f"{binary} is not installed: install it: apt-get install {package}")
    return path


def _collect(stream: IO[str], lines: list[str], seen: threading.Event) -> None:
    with stream:
        for line in stream:
            lines.append(line)
            seen.set()


@dataclass
class Redis:
    url: str
    process: subprocess.Popen[str]
    log: list[str]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    """redis-server on a free loopback port, ready when it says so; stopped afterwards."""
    binary = need("redis-server", "redis-server")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    log: list[str] = []
    try:
        for line in proc.stdout:  # ends at its exit: the loop cannot hang on a dead child
            log.append(line)
            if "Ready to accept connections" in line:
                break
        else:
            pytest.fail(f"redis-server exited with {proc.wait(5)}: {''.join(log)}")
        reader = threading.Thread(
            target=_collect, args=(proc.stdout, log, threading.Event()), daemon=True
        )
        reader.start()
        yield Redis(f"redis://127.0.0.1:{port}/0", proc, log)
    finally:
        proc.terminate()
        proc.wait(10)


@dataclass
class Front:
    """HAProxy from deploy/haproxy.cfg; ``log`` holds its request lines as they come."""

    url: str
    process: subprocess.Popen[str]
    log: list[str]
    stats: Path

    def requests(self, path: str = "/socket.io/") -> list[tuple[str, int]]:
        """(server, status) of every logged request for ``path``."""
        out = []
        for line in self.log:
            m = re.match(r"\S+ hubs/(\S+) (-?\d+) \S+ (\S+) ", line)
            if m and m.group(3) == path:
                out.append((m.group(1), int(m.group(2))))
        return out

    def state(self, server: str) -> str:
        """UP, DOWN, ... from ``show stat`` on the admin socket."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(str(self.stats))
            s.sendall(b"show stat\n")
            data = s.makefile().read()
        for row in data.splitlines():
            fields = row.split(",")
            if fields[:2] == ["hubs", server]:
                return fields[17]
        raise AssertionError(f"no server {server!r} in show stat")


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
    threading.Thread(
        target=_collect, args=(proc.stdout, log, threading.Event()), daemon=True
    ).start()
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
    proc.terminate()
    proc.wait(10)
    raise AssertionError(f"haproxy did not answer /healthz within {TIMEOUT:g} s: {''.join(log)}")


@pytest.fixture
def two_hubs() -> Iterator[list[HubProcess]]:
    """Two plain hubs (no --redis yet) as subprocesses on free ports.

    A short ping interval: a long-polling GET is held that long, and a polling client's
    disconnect waits for it.
    """
    args = ("--ping-interval", "1", "--ping-timeout", "5")
    hubs = [spawn_hub(*args), spawn_hub(*args)]
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
        f.process.terminate()
        f.process.wait(10)


def cookie_session(url: str, hub: str | None = None) -> aiohttp.ClientSession:
    """An HTTP session that keeps HAProxy's sticky cookie, optionally pinned to ``hub``.

    aiohttp's default cookie jar drops cookies set by an IP-address host (127.0.0.1), so
    a stock python-socketio client loses stickiness there: ``unsafe=True`` keeps them.
    """
    jar = aiohttp.CookieJar(unsafe=True)
    if hub is not None:
        jar.update_cookies({COOKIE: hub}, response_url=URL(url))
    return aiohttp.ClientSession(cookie_jar=jar)


@dataclass
class Client:
    sio: socketio.AsyncClient
    welcome: dict[str, Any]


@pytest.fixture
async def connect() -> AsyncIterator[Callable[..., Any]]:
    """``await connect(url, hub=None, transports=["websocket"])``: a Socket.IO client
    that got its welcome; all are closed afterwards."""
    opened: list[tuple[socketio.AsyncClient, aiohttp.ClientSession]] = []

    async def open_client(
        url: str, hub: str | None = None, transports: tuple[str, ...] = ("websocket",)
    ) -> Client:
        http = cookie_session(url, hub)
        sio = socketio.AsyncClient(reconnection=False, http_session=http)
        opened.append((sio, http))
        welcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()

        def on_welcome(data: dict[str, Any]) -> None:
            if not welcome.done():
                welcome.set_result(data)

        sio.on("welcome", on_welcome)
        await sio.connect(url, transports=list(transports), wait_timeout=TIMEOUT)
        return Client(sio, await asyncio.wait_for(welcome, TIMEOUT))

    yield open_client
    for sio, http in opened:
        if sio.connected:
            await sio.disconnect()
        await http.close()


async def sockets_on(hub: HubProcess) -> int:
    async with aiohttp.ClientSession() as http, http.get(f"{hub.url}/healthz") as r:
        return int((await r.json())["sockets"])


async def until_sockets(hubs: list[HubProcess], counts: list[int]) -> None:
    """Wait (bounded) until each hub reports that many open sockets."""
    seen: list[int] = []

    async def check() -> bool:
        seen[:] = [await sockets_on(h) for h in hubs]
        return seen == counts

    for _ in range(int(TIMEOUT / 0.02)):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"sockets per hub {seen}, expected {counts}")
