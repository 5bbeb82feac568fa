"""SIGTERM: sockets close without anyone being told a peer left; what was open is logged."""

from __future__ import annotations

import asyncio

from tests.conftest import spawn_hub

from .client import answer, offer, party

WAIT = 10.0


async def test_sigterm_closes_sockets_without_peer_left() -> None:
    hp = spawn_hub("--drain-timeout", "2")
    try:
        caller, answerer, waiting = await party(hp.url), await party(hp.url), await party(hp.url)
        await caller.call("offer", offer("live"))
        await answerer.call("join", {"room": "live"})
        await answerer.call("answer", answer("live"))
        assert (await caller.next("answer"))["room"] == "live"
        await waiting.call("offer", offer("held"))
        hp.process.terminate()
        for p in (caller, answerer, waiting):
            await asyncio.wait_for(p.sio.wait(), WAIT)  # returns once it is disconnected
        for p in (caller, answerer, waiting):
            assert p.events.empty(), p.events.get_nowait()
            await p.close()
    finally:
        log = hp.stop()
    assert hp.process.returncode == 0
    assert "shutting down: closing 3 sockets; 2 rooms open (1 in a call, 1 held offers" in log
    assert "Traceback" not in log
