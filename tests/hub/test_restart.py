"""A hub process stopped (SIGTERM) or killed (SIGKILL) and restarted on the same port.

With the memory store its sessions are gone after the restart: clients come back as new
sessions with ``resumeError: "unknown"``. On SIGTERM nobody is told ``peer_left``: the
sessions go into grace, as they would for any other dropped connection.
"""

from __future__ import annotations

import signal

import pytest

from signaling import Config
from tests.conftest import spawn_hub, start_hub

from .client import offer, party, until


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL])
async def test_restart_on_the_same_port_gives_new_sessions_said_plainly(how: int) -> None:
    first = spawn_hub()
    port = first.url.rsplit(":", 1)[1]
    caller = await party(first.url)
    answerer = await party(first.url)
    second = None
    try:
        await caller.call("offer", offer("r"))
        await answerer.call("join", {"room": "r"})
        first.process.send_signal(how)
        first.process.wait(10)
        log = first.stop()
        second = spawn_hub("--port", port)
        assert second.url == first.url
        assert answerer.events.empty(), "no peer_left (nor anything else) on a hub stop"
        for old in (caller, answerer):
            back = await old.resume(second.url)
            w = back.welcome.result()
            assert w["resumed"] is False and w["resumeError"] == "unknown"
            assert w["session"] != old.session
            await back.close()
        assert caller.session not in log + "".join(second.log), "a session token was logged"
    finally:
        await caller.close()
        await answerer.close()
        if second is not None:
            second.stop()


async def test_shutdown_puts_sessions_into_grace_and_tells_nobody(hub_config: Config) -> None:
    running, runner = await start_hub(hub_config)
    caller, answerer = await party(running.url), await party(running.url)
    await caller.call("offer", offer("r"))
    await answerer.call("join", {"room": "r"})
    await runner.cleanup()
    assert running.hub.sessions.away_count == 2
    assert running.hub.rooms.get("r") is not None  # kept for a resume, not ended
    await until(lambda: not caller.sio.connected and not answerer.sio.connected)
    assert caller.events.empty() and answerer.events.empty()  # no peer_left, no peer_away
