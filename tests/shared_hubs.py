"""Hub groups on one real redis-server, for the contract suites' ``redis`` runs.

:func:`start_redis` runs redis-server on a Unix socket in a temp dir (no port to
race for); :class:`RoundRobin` is a TCP front that sends each new connection to
the next hub in turn, so consecutive test clients (a caller, then an answerer)
land on different hubs, as behind a load balancer.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

REDIS_INSTALL = "redis-server is not installed: apt-get install redis-server (make sysdeps does)"
READY = "ready to accept connections"


@dataclass
class RedisServer:
    url: str
    process: subprocess.Popen[str]
    dir: Path

    log: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def stop(self) -> None:
        """Stop it (SIGTERM) and close its log pipe."""
        self.process.terminate()
        self.process.wait(10)
        if self.reader is not None:
            self.reader.join(10)


def start_redis(directory: Path, *, appendonly: bool = False) -> RedisServer:
    """Start redis-server on ``directory/redis.sock``; return once it accepts connections."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail(REDIS_INSTALL)
    sock = directory / "redis.sock"
    proc = subprocess.Popen(
        [exe, "--port", "0", "--unixsocket", str(sock), "--dir", str(directory), "--save", "",
         "--appendonly", "yes" if appendonly else "no", "--appendfsync", "everysec"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:  # its log: ends only when it exits
        if READY in line.lower():
            break
    else:
        raise RuntimeError(f"redis-server exited with {proc.wait(5)} before it was ready")
    server = RedisServer(f"unix://{sock}", proc, directory)
    # keep draining its log so it never blocks on a full pipe
    server.reader = threading.Thread(target=_drain, args=(proc.stdout, server.log), daemon=True)
    server.reader.start()
    return server


def _drain(stream: IO[str], log: list[str]) -> None:
    with stream:
        log.extend(stream)


@dataclass
class RoundRobin:
    """A TCP front on 127.0.0.1: connection *n* goes to ``backends[n % len(backends)]``.

    Sticky like a load balancer must be for Engine.IO long-polling: a request
    naming a ``sid=`` goes to the hub whose handshake answer carried that sid.
    """

    backends: list[int]
    port: int = 0
    server: asyncio.Server | None = None
    count: int = 0
    sids: dict[str, int] = field(default_factory=dict)

    async def start(self) -> RoundRobin:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readuntil(b"\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        sid = SID.search(first)
        backend = self.sids.get(sid.group(1).decode()) if sid else None
        if backend is None:
            backend = self.backends[self.count % len(self.backends)]
            self.count += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", backend)
        except OSError:
            writer.close()
            return
        up_writer.write(first)
        pipes = [
            asyncio.ensure_future(_pipe(reader, up_writer)),
            asyncio.ensure_future(_pipe(up_reader, writer, lambda s: self._learn(s, backend))),
        ]
        await asyncio.wait(pipes, return_when=asyncio.FIRST_COMPLETED)
        for pipe in pipes:
            pipe.cancel()
        for w in (writer, up_writer):
            w.close()

    def _learn(self, data: bytes, backend: int) -> None:
        for match in HANDSHAKE_SID.finditer(data):
            self.sids[match.group(1).decode()] = backend

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


SID = re.compile(rb"[?&]sid=([A-Za-z0-9_-]+)")
HANDSHAKE_SID = re.compile(rb'0\{"sid":"([A-Za-z0-9_-]+)"')


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    seen: Callable[[bytes], None] | None = None,
) -> None:
    try:
        while data := await reader.read(65536):
            if seen is not None:
                seen(data)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
