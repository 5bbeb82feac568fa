"""Shared fixtures: a real hub, in-process (``hub``) or as a subprocess (``hub_process``)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO

import pytest
from aiohttp import web

from signaling import Config, Hub, create_app
from signaling.server import HUB_KEY, make_runner

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


@dataclass
class RunningHub:
    url: str
    hub: Hub
    config: Config


async def start_hub(config: Config) -> tuple[RunningHub, web.AppRunner]:
    app = create_app(replace(config, port=0))
    runner = make_runner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return RunningHub(f"http://127.0.0.1:{port}", app[HUB_KEY], config), runner


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
        metafunc.parametrize("transport", ["lean", "stock"])


@pytest.fixture
def transport() -> str:
    """The ``Config.transport`` of the hub a test starts; contract suites get both."""
    return "auto"


@pytest.fixture
def hub_config(transport: str) -> Config:
    """Override in a test module to start the hub with other settings.

    A short drain: tests leave clients that never read, and shutdown waits for them.
    """
    return Config(port=0, drain_timeout=0.5, transport=transport)


@pytest.fixture
async def hub(hub_config: Config, transport: str) -> AsyncIterator[RunningHub]:
    if transport != "auto":  # a module's own hub_config does not name one
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
