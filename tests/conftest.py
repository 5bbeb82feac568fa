"""Shared fixtures: a real hub, in-process (``hub``) or as a subprocess (``hub_process``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import pytest
from aiohttp import web

from signaling import Config, Hub, create_app
from signaling.server import HUB_KEY, make_runner
from tests.shared_hubs import RedisServer, RoundRobin, start_redis

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


@dataclass
class RunningHub:
    url: str
    hub: Hub
    config: Config


async def start_hub(config: Config) -> tuple[RunningHub, web.AppRunner | HubGroup]:
    """Start a hub on a free port; with ``config.redis``, a group of two behind a
    round-robin front (see :func:`start_group`). Stop it with ``.cleanup()``."""
    if config.redis is not None:
        return await start_group(config)
    return await _start_one(config)


async def _start_one(config: Config) -> tuple[RunningHub, web.AppRunner]:
    app = create_app(replace(config, port=0))
    runner = make_runner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return RunningHub(f"http://127.0.0.1:{port}", app[HUB_KEY], config), runner


@dataclass
class HubGroup:
    """Hubs sharing one Redis, and the front that spreads connections over them."""

    hubs: list[RunningHub]
    runners: list[web.AppRunner]
    front: RoundRobin

    async def cleanup(self) -> None:
        await self.front.stop()
        for runner in self.runners:
            await runner.cleanup()


async def start_group(config: Config, count: int = 2) -> tuple[RunningHub, HubGroup]:
    """``count`` hubs on ``config.redis`` behind a round-robin front; ``.hub`` is the first.

    Each group gets its own key prefix, so groups of different tests never meet.
    """
    config = replace(config, redis_prefix=f"t{uuid.uuid4().hex[:12]}")
    hubs: list[RunningHub] = []
    runners: list[web.AppRunner] = []
    for _ in range(count):
        running, runner = await _start_one(config)
        hubs.append(running)
        runners.append(runner)
    front = await RoundRobin([int(h.url.rsplit(":", 1)[1]) for h in hubs]).start()
    group = HubGroup(hubs, runners, front)
    return RunningHub(f"http://127.0.0.1:{front.port}", hubs[0].hub, config), group


# The hub's contract suites: every test in them that starts a hub runs once per
# transport (signaling/transport.py), so the stock fallback is held to the same rows.
# Suites about lean-only internals (send-queue caps, send timeout, OrderedServer's own
# API) are not listed: the stock transport does not have those limits.
CONTRACT_SUITES = {
    "test_hub",
    "test_rooms",
    "test_resume",
    "test_sessions",
    "test_bad_input",
    "test_ordered_api",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rpartition(".")[2]
    if module in CONTRACT_SUITES and "transport" in metafunc.fixturenames:
        # "redis": two hubs on one redis-server, each new connection to the other hub
        metafunc.parametrize("transport", ["lean", "stock", "redis"])


@pytest.fixture
def transport() -> str:
    """The ``Config.transport`` of the hub a test starts; contract suites get both."""
    return "auto"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def hub_config(transport: str, request: pytest.FixtureRequest) -> Config:
    """Override in a test module to start the hub with other settings.

    A short drain: tests leave clients that never read, and shutdown waits for them.
    ``redis``: a lean hub group on the session's redis-server (:func:`start_group`).
    """
    if transport == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        return Config(port=0, drain_timeout=0.5, transport="lean", redis=redis.url)
    return Config(port=0, drain_timeout=0.5, transport=transport)


@pytest.fixture
async def hub(
    hub_config: Config, transport: str, request: pytest.FixtureRequest
) -> AsyncIterator[RunningHub]:
    if transport == "redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        hub_config = replace(hub_config, transport="lean", redis=redis.url)
    elif transport != "auto":  # a module's own hub_config does not name one
        hub_config = replace(hub_config, transport=transport)
    running, runner = await start_hub(hub_config)
    try:
        yield running
    finally:
        await runner.cleanup()


@dataclass
class HubProcess:
    url: str
    process: subprocess.Popen[str]
    log: list[str]
    reader: threading.Thread

    def stop(self) -> str:
        """Terminate it and return everything it logged."""
        self.process.terminate()
        self.process.wait(10)
        self.reader.join(10)
        return "".join(self.log)


def _drain(stream: IO[str], log: list[str]) -> None:
    """Collect a child's log to its end, then close it (no unclosed-pipe warning)."""
    with stream:
        log.extend(stream)


def spawn_hub(
    *args: str,
    wrap: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    preexec_fn: Callable[[], None] | None = None,
) -> HubProcess:
    """Run ``python -m signaling --port 0`` and read the bound URL from its log.

    ``wrap`` prefixes the command (e.g. ``ip netns exec NS``); ``env`` adds variables;
    ``preexec_fn`` runs in the child before it starts (e.g. to lower its fd limit).
    """
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.Popen(
        [*wrap, sys.executable, "-m", "signaling", "--port", "0", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
        preexec_fn=preexec_fn,
    )
    assert proc.stderr is not None
    log: list[str] = []
    for line in proc.stderr:
        log.append(line)
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            # keep draining its log so a chatty hub never blocks on a full pipe
            reader = threading.Thread(target=_drain, args=(proc.stderr, log), daemon=True)
            reader.start()
            return HubProcess(m.group(1), proc, log, reader)
    proc.wait(5)
    raise RuntimeError(f"hub exited with {proc.returncode} before listening")


@pytest.fixture(scope="session")
def hub_process() -> Iterator[HubProcess]:
    hp = spawn_hub()
    try:
        yield hp
    finally:
        hp.stop()


@pytest.fixture
def artifacts_dir(request: pytest.FixtureRequest) -> Path:
    """Per-test folder under ``test-artifacts/`` for screenshots and recordings."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
    path = ARTIFACTS / name
    path.mkdir(parents=True, exist_ok=True)
    return path
