"""``make cluster``: Redis, two hubs sharing it and HAProxy in front of them, on loopback.

Starts ``redis-server`` on a Unix socket in a temporary directory (no TCP port at all;
nothing written to disk: a demo), ``python -m signaling --port 0 --redis
unix:///TMP/redis.sock`` twice and ``haproxy -f deploy/haproxy.cfg`` on
``127.0.0.1:8080``, each after the one before is ready (a log line, then a GET through
HAProxy). Every child's output is printed with its name in front. Ctrl-C or SIGTERM stops
them all, HAProxy first and Redis last. A hub that dies on its own is reported and the
other carries on (that is what the group is for); when Redis, HAProxy or the last hub
dies, the rest are stopped too and the launcher exits 1 naming it. Children run in their
own session (a terminal's Ctrl-C reaches only the launcher, which stops them in order) and
get SIGTERM should the launcher itself be killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import os
import re
import shlex
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

HAPROXY_CFG = Path(__file__).resolve().with_name("haproxy.cfg")
HUB_NAMES = ("hub1", "hub2")  # the `server` lines of haproxy.cfg
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
PR_SET_PDEATHSIG = 1
INSTALL = {"redis-server": "redis-server", "haproxy": "haproxy"}
try:
    _LIBC: ctypes.CDLL | None = ctypes.CDLL(None)
except OSError:
    _LIBC = None


class ClusterError(Exception):
    """A child could not start or died; the message names it."""


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the launcher dies (Linux).

    Only a call into the already loaded libc: nothing here may take a lock that another
    thread of the parent held at fork.
    """
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (for HAProxy, which has no port 0 to report)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def cannot_listen(host: str, port: int) -> str | None:
    """Why HAProxy could not listen on ``host:port``, or None when it could.

    Checked before anything starts: otherwise the launcher's readiness check, a GET of
    ``/healthz`` on that port, is answered by whatever already listens there, and the
    launcher says "ready" just before HAProxy fails to bind.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as HAProxy binds
        try:
            s.bind((host, port))
        except OSError as exc:
            shown = f"[{host}]" if ":" in host else host
            why = (exc.strerror or str(exc)).lower()  # "address already in use"
            flags = "--bind, --port; CLUSTER_BIND, CLUSTER_PORT"
            return f"cannot listen on {shown}:{port}: {why} ({flags})"
    return None


def haproxy_env(
    bind: str, port: int, hubs: Sequence[str], stats: Path, check_host: str = "localhost"
) -> dict[str, str]:
    """The variables deploy/haproxy.cfg reads, for hubs given as ``HOST:PORT``."""
    if len(hubs) != len(HUB_NAMES):
        raise ValueError(f"haproxy.cfg has {len(HUB_NAMES)} hubs, got {len(hubs)}: {hubs!r}")
    env = {
        "CLUSTER_BIND": bind,
        "CLUSTER_PORT": str(port),
        "CLUSTER_STATS": str(stats),
        "CHECK_HOST": check_host,
    }
    env.update({name.upper(): hub for name, hub in zip(HUB_NAMES, hubs, strict=True)})
    return env


@dataclass(eq=False)
class Child:
    """One process whose output is printed as ``[name] line``; ``ready`` waits for a line."""

    name: str
    argv: list[str]
    env: Mapping[str, str] = field(default_factory=dict)
    ready_line: re.Pattern[str] | None = None
    process: asyncio.subprocess.Process | None = None
    ready: asyncio.Future[re.Match[str]] | None = None
    _reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.ready = asyncio.get_running_loop().create_future()
        self.process = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        say(f"started {self.name} (pid {self.process.pid}): {shlex.join(self.argv)}")
        self._reader = asyncio.create_task(self._read(), name=f"read {self.name}")

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            line = raw.decode(errors="replace").rstrip()
            print(f"[{self.name}] {line}", flush=True)
            if self.ready_line is not None and self.ready is not None and not self.ready.done():
                m = self.ready_line.search(line)
                if m:
                    self.ready.set_result(m)

    async def wait_ready(self, limit: float = READY_TIMEOUT) -> re.Match[str]:
        """The ready line's match; fails naming the child if it exits or stays silent."""
        assert self.process is not None and self.ready is not None
        exited = asyncio.ensure_future(self.process.wait())
        waiting: set[asyncio.Future[Any]] = {self.ready, exited}
        try:
            done, _ = await asyncio.wait(
                waiting, timeout=limit, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            exited.cancel()
        if self.ready in done:
            return self.ready.result()
        if exited in done:
            raise ClusterError(f"{self.name} exited with {exited.result()} before it was ready")
        raise ClusterError(f"{self.name} was not ready within {limit:g} s")

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT; waits for its output to end."""
        if self.process is None:
            return
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                say(f"{self.name} ignored SIGTERM for {STOP_TIMEOUT:g} s; killing it")
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self._reader, STOP_TIMEOUT)


def say(line: str) -> None:
    print(f"[cluster] {line}", flush=True)


async def wait_http(url: str, limit: float = READY_TIMEOUT) -> None:
    """GET ``url`` until it answers 200, every 50 ms, at most ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
        while True:
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.get(url) as response:
                    if response.status == 200:
                        return
            if loop.time() > deadline:
                raise ClusterError(f"{url} did not answer 200 within {limit:g} s")
            await asyncio.sleep(0.05)


@dataclass(frozen=True)
class Options:
    bind: str  # HAProxy's address
    port: int  # HAProxy's port
    hub_args: list[str]  # appended to every hub's command line


async def run(opts: Options) -> int:
    """Start everything, wait for Ctrl-C/SIGTERM or a child's death, stop everything."""
    for binary, package in INSTALL.items():
        if shutil.which(binary) is None:
            say(f"{binary} is not installed: apt-get install {package} (or make sysdeps)")
            return 1
    if (why := cannot_listen(opts.bind, opts.port)) is not None:
        say(why)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    children: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="p2pcall-cluster-") as rundir:
        # a signal during start-up stops it there, too
        supervise = asyncio.create_task(_supervise(opts, Path(rundir), children))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({supervise, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not supervise.done():
                say("stopping")
                supervise.cancel()
                with contextlib.suppress(asyncio.CancelledError, ClusterError):
                    await supervise
                return 0
            supervise.result()
            return 0  # not reached: _supervise only returns by raising
        except ClusterError as exc:
            say(f"{exc}; stopping the rest")
            return 1
        finally:
            stopping.cancel()
            for child in reversed(children):
                await child.stop()
            say("stopped")


async def _supervise(opts: Options, rundir: Path, children: list[Child]) -> None:
    """Start the children in order, then wait until one of them exits (ClusterError)."""
    # a Unix socket in the run directory: only this user can reach it (mode 700), no
    # port to race for, and it goes away with the directory
    sock = rundir / "redis.sock"
    redis = Child(
        "redis",
        # a demo: nothing is written to disk (docs/deploy.md has the production settings)
        ["redis-server", "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
         "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction",
         "--dir", str(rundir)],
        ready_line=re.compile(r"[Rr]eady to accept connections"),
    )  # fmt: skip
    children.append(redis)
    await redis.start()
    await redis.wait_ready()
    redis_url = f"unix://{sock}"

    hubs: dict[str, str] = {}
    for name in HUB_NAMES:
        hub = Child(
            name,
            # HAProxy keeps the per-address connection cap: the hub sees only its address
            [sys.executable, "-m", "signaling", "--host", "127.0.0.1", "--port", "0",
             "--redis", redis_url, "--max-connections-per-address", "0", *opts.hub_args],
            ready_line=re.compile(r"listening on (http://\S+)"),
        )  # fmt: skip
        children.append(hub)
        await hub.start()
        hubs[name] = (await hub.wait_ready()).group(1)

    env = haproxy_env(
        opts.bind, opts.port, [u.removeprefix("http://") for u in hubs.values()],
        rundir / "haproxy.sock",
    )  # fmt: skip
    haproxy = Child("haproxy", ["haproxy", "-db", "-f", str(HAPROXY_CFG)], env=env)
    children.append(haproxy)
    await haproxy.start()
    shown = f"[{opts.bind}]" if ":" in opts.bind else opts.bind
    page = f"http://{shown}:{opts.port}/"
    await _until_ready_or_dead(wait_http(f"{page}healthz"), haproxy)

    say(f"ready: open {page} in two tabs")
    for name, url in hubs.items():
        say(f"  {name}: {url} (sticky cookie hub={name})")
    say(f"  redis: {redis_url} (redis-cli -s {sock})")
    say("Ctrl-C stops everything")

    waiters = {
        asyncio.ensure_future(c.process.wait()): c for c in children if c.process is not None
    }
    try:
        while True:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            dead = {t: waiters.pop(t) for t in done}
            names = ", ".join(f"{c.name} (exit {t.result()})" for t, c in dead.items())
            alive = [c.name for c in waiters.values() if c.name in hubs]
            # a hub's death is what the group exists for: the others carry its sessions
            if all(c.name in hubs for c in dead.values()) and alive:
                say(f"{names} died; {', '.join(alive)} carries on (its clients resume there)")
                continue
            raise ClusterError(f"{names} died")
    finally:
        for task in waiters:
            task.cancel()


async def _until_ready_or_dead(ready: Coroutine[Any, Any, None], child: Child) -> None:
    """Await ``ready`` unless ``child`` exits first."""
    assert child.process is not None
    task = asyncio.ensure_future(ready)
    exited = asyncio.ensure_future(child.process.wait())
    waiting: set[asyncio.Future[Any]] = {task, exited}
    try:
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
    if not task.done():
        task.cancel()
        raise ClusterError(f"{child.name} exited with {child.process.returncode} before ready")
    task.result()


def tcp_port(text: str) -> int:
    """``--port`` / ``CLUSTER_PORT``: an integer from 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a TCP port from 1 to 65535 (--port, CLUSTER_PORT), got {text!r}"
        )
    return port


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deploy/cluster.py",
        description="Redis, two p2pcall hubs on it and HAProxy in front, until Ctrl-C.",
    )
    p.add_argument(
        "--bind",
        default=os.environ.get("CLUSTER_BIND", "127.0.0.1"),
        help="address HAProxy listens on (env CLUSTER_BIND; default 127.0.0.1)",
    )
    p.add_argument(
        "--port",
        type=tcp_port,
        # a string: argparse checks it with tcp_port too, so a bad CLUSTER_PORT is a usage line
        default=os.environ.get("CLUSTER_PORT", "8080"),
        help="port HAProxy listens on (env CLUSTER_PORT; default 8080)",
    )
    p.add_argument(
        "--hub-arg",
        action="append",
        default=[],
        help="extra argument for every hub, repeatable (the same limits on each: "
        "--hub-arg=--offer-ttl --hub-arg=300)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    opts = Options(args.bind, args.port, args.hub_arg)
    return asyncio.run(run(opts))


if __name__ == "__main__":
    sys.exit(main())
