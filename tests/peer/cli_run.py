"""Run ``python -m peer`` as a real subprocess without blocking the test's event loop."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from tests.conftest import ROOT


@dataclass
class Finished:
    code: int
    stdout: str
    stderr: str

    @property
    def last_error_line(self) -> str:
        lines = [ln for ln in self.stderr.splitlines() if ln.startswith("p2pcall-peer:")]
        return lines[-1] if lines else ""


async def start_cli(
    *args: str, env: dict[str, str] | None = None, python: Sequence[str] = ()
) -> asyncio.subprocess.Process:
    """``--no-mdns`` always: a test sends no multicast DNS query off loopback.

    ``python`` are interpreter options put before ``-m peer`` (``-X importtime``).
    """
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PEER_")}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        *python,
        "-m",
        "peer",
        "--no-mdns",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=ROOT,
        env={**clean, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


async def finish(proc: asyncio.subprocess.Process, limit: float = 90) -> Finished:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), limit)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        message = f"peer did not exit within {limit} s; stderr:\n{err.decode()}"
        raise AssertionError(message) from None
    assert proc.returncode is not None
    return Finished(proc.returncode, out.decode(), err.decode())


async def run_cli(*args: str, env: dict[str, str] | None = None, limit: float = 90) -> Finished:
    proc = await start_cli(*args, env=env)
    assert proc.stdin is not None
    proc.stdin.close()
    return await finish(proc, limit)
