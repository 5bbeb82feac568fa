"""GStreamer's ``webrtcbin`` (Debian 1.22) calls the Python answerer.

webrtcbin has an RSA DTLS certificate and no ECDSA cipher suite; when our peer answers
it is the DTLS client, so this is the real-world check of the RSA suites added in
``peer.aiortc_seam``. The caller runs under the system ``python3`` (PyGObject and
GStreamer are Debian packages, which ``make sysdeps`` installs).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from peer import aiortc_seam
from peer.errors import DtlsFailed
from peer.protocol import Event
from peer.signaling import SignalingClient
from tests.conftest import ROOT, RunningHub

from .pair import side, wait_until

SYSTEM_PYTHON = "/usr/bin/python3"
DRIVER = ROOT / "tests" / "peer" / "webrtcbin_caller.py"
PACKAGES = (
    "gstreamer1.0-plugins-bad gstreamer1.0-plugins-good gstreamer1.0-nice "
    "gir1.2-gst-plugins-bad-1.0 python3-gi"
)
PROBE = (
    "import gi; gi.require_version('Gst', '1.0'); gi.require_version('GstWebRTC', '1.0'); "
    "from gi.repository import Gst, GstWebRTC; Gst.init(None); "
    "assert Gst.ElementFactory.find('webrtcbin') and Gst.ElementFactory.find('vp8enc')"
)
WAIT = 30.0


def require_webrtcbin() -> None:
    try:
        probe = subprocess.run(
            [SYSTEM_PYTHON, "-c", PROBE], capture_output=True, text=True, timeout=30
        )
    except FileNotFoundError:
        pytest.fail(f"{SYSTEM_PYTHON} not found; install Debian's python3 and: {PACKAGES}")
    if probe.returncode != 0:
        pytest.fail(
            f"GStreamer webrtcbin is missing ({probe.stderr.strip()[-200:]}); "
            f"run `make sysdeps` or apt-get install {PACKAGES}"
        )


@dataclass
class Webrtcbin:
    proc: asyncio.subprocess.Process
    client: SignalingClient
    room: str
    received: int = 0
    errors: list[str] = field(default_factory=list)
    offered: asyncio.Event = field(default_factory=asyncio.Event)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())

    async def from_gstreamer(self) -> None:
        """Relay its offer and candidates to the hub; note what it receives."""
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            message = json.loads(raw)
            if "offer" in message:
                await self.client.offer(self.room, {"type": "offer", "sdp": message["offer"]})
                self.offered.set()
            elif "candidate" in message:
                await self.client.candidate(self.room, message["candidate"])
            elif "received" in message:
                self.received = message["received"]
            elif "error" in message:
                self.errors.append(message["error"])

    async def to_gstreamer(self) -> None:
        """Give it the answer and our trickled candidates from the hub."""
        while True:
            item = await self.client.events.get()
            if item.event == Event.ANSWER:
                self.send({"answer": item.payload["description"]["sdp"]})
            elif item.event == Event.CANDIDATE:
                self.send({"candidate": item.payload["candidate"]})


@asynccontextmanager
async def webrtcbin_caller(url: str, room: str) -> AsyncIterator[Webrtcbin]:
    require_webrtcbin()
    client = SignalingClient(url, name="webrtcbin", timeout=10)
    await client.connect()
    proc = await asyncio.create_subprocess_exec(
        SYSTEM_PYTHON,
        str(DRIVER),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    caller = Webrtcbin(proc, client, room)
    tasks = [
        asyncio.create_task(caller.from_gstreamer()),
        asyncio.create_task(caller.to_gstreamer()),
    ]
    try:
        yield caller
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        await client.close()


@pytest.mark.slow
@pytest.mark.parametrize("first", ["caller", "answerer"])
async def test_webrtcbin_caller_is_answered(hub: RunningHub, first: str) -> None:
    room = f"gst-{first}"
    async with webrtcbin_caller(hub.url, room) as caller:
        if first == "caller":
            await asyncio.wait_for(caller.offered.wait(), WAIT)
        async with side(hub.url, "answerer", room) as me:
            await me.call.start()
            task = asyncio.create_task(me.call.run(connect_timeout=WAIT))
            try:
                await wait_until(
                    lambda: (
                        task.done()
                        or (caller.received >= 30 and me.call.stats.frames_received >= 30)
                    ),
                    WAIT,
                )
                if task.done():
                    raise AssertionError(f"the answerer ended: {task.result()!r}")
                assert me.call.stats.summary()["video"]["codec"] == "VP8"
                assert caller.errors == []
                await caller.client.hangup(room)
                assert await asyncio.wait_for(task, 15) == "hangup"
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


@pytest.mark.slow
async def test_webrtcbin_needs_the_rsa_suites(
    hub: RunningHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the seam's hooks off (aiortc's own ECDSA-only list) the handshake fails: DTLS."""
    monkeypatch.setattr(aiortc_seam, "_checked", False)
    room = "gst-ecdsa-only"
    async with webrtcbin_caller(hub.url, room) as caller:
        await asyncio.wait_for(caller.offered.wait(), WAIT)
        async with side(hub.url, "answerer", room) as me:
            await me.call.start()
            with pytest.raises(DtlsFailed, match="DTLS handshake with the caller failed"):
                await me.call.run(connect_timeout=WAIT)
