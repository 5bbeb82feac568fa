"""A call whose signaling drops: media goes on, both sides resume (contract v1.1 resume).

Real aiortc peers, a real hub, and a real fault: both signaling connections go through
a TCP proxy (tests/faults.py) that cuts them and refuses reconnects for 5 s.
"""

from __future__ import annotations

import asyncio
import signal
from asyncio import Task
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from peer.call import Phase, SignalingState
from signaling import Config
from tests.conftest import RunningHub, spawn_hub, start_hub
from tests.faults import FaultProxy

from .pair import WAIT, Side, side, wait_until

CUT_SECONDS = 5.0


@asynccontextmanager
async def call_pair(url: str, room: str) -> AsyncIterator[tuple[Side, Side, list[Task[None]]]]:
    """A caller and an answerer in a call with frames flowing both ways, and their run tasks."""
    async with side(url, "caller", room) as caller, side(url, "answerer", room) as answerer:
        await caller.call.start()
        await answerer.call.start()

        async def run(s: Side) -> None:
            s.ended = await s.call.run(connect_timeout=WAIT)

        tasks = [asyncio.ensure_future(run(s)) for s in (caller, answerer)]
        both = (caller, answerer)
        await wait_until(lambda: all(s.call.stats.frames_received >= 10 for s in both))
        yield caller, answerer, tasks


async def signaling_is(both: tuple[Side, Side], state: SignalingState, limit: float = 20) -> None:
    await wait_until(lambda: all(s.call.signaling_state == state for s in both), limit)


@asynccontextmanager
async def call_across_a_hub_restart(
    room: str, how: int
) -> AsyncIterator[tuple[Side, Side, list[Task[None]]]]:
    """A call whose hub ``how`` stops and a new one replaces on the same port: both sides
    have connected to the new hub, whose memory store lost their sessions."""
    hub = spawn_hub()
    port = hub.url.rsplit(":", 1)[1]
    second = None
    try:
        async with call_pair(hub.url, room) as (caller, answerer, tasks):
            hub.process.send_signal(how)
            hub.process.wait(10)
            hub.stop()
            second = spawn_hub("--port", port)
            await signaling_is((caller, answerer), SignalingState.LOST, 30)
            yield caller, answerer, tasks
    finally:
        if second is not None:
            second.stop()


@pytest.mark.slow
async def test_signaling_cut_for_5_s_media_goes_on_and_both_resume(hub: RunningHub) -> None:
    proxy = await FaultProxy.to_url(hub.url)
    try:
        async with call_pair(proxy.url, "blip") as (caller, answerer, tasks):
            both = (caller, answerer)
            proxy.refuse(True)
            assert proxy.cut() == 2
            await signaling_is(both, SignalingState.RECONNECTING)
            before = [s.call.stats.frames_received for s in both]
            await asyncio.sleep(CUT_SECONDS)  # the outage itself, not a wait for an event
            during = [s.call.stats.frames_received - b for s, b in zip(both, before, strict=True)]
            assert min(during) >= 20, f"frames stopped while signaling was down: {during}"
            proxy.refuse(False)
            await signaling_is(both, SignalingState.RESUMED)
            await wait_until(lambda: not any(s.call.peer_away for s in both))
            assert all(s.call.phase == Phase.CONNECTED and s.ended is None for s in both)
            assert all(s.client.resumes == 1 for s in both)
            # signaling works again: a hang-up reaches the other side
            caller.call.request_hangup("done")
            await asyncio.wait_for(asyncio.gather(*tasks), WAIT)
            assert (caller.ended, answerer.ended) == ("done", "hangup")
            assert caller.call.signaling_states == [
                SignalingState.UP,
                SignalingState.RECONNECTING,
                SignalingState.RESUMED,
            ]
    finally:
        await proxy.close()


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
async def test_hub_restart_media_goes_on_and_the_lost_session_is_said_plainly(how: int) -> None:
    async with call_across_a_hub_restart("restart", how) as (caller, answerer, tasks):
        both = (caller, answerer)
        before = [s.call.stats.frames_received for s in both]
        assert all(s.call.phase == Phase.CONNECTED and s.ended is None for s in both)
        await wait_until(
            lambda: all(
                s.call.stats.frames_received - b >= 20 for s, b in zip(both, before, strict=True)
            )
        )
        assert "signaling lost, call goes on without the hub" in caller.call.notes
        caller.call.request_hangup("done")
        answerer.call.request_hangup("done")
        await asyncio.wait_for(asyncio.gather(*tasks), WAIT)


async def test_requests_wait_through_a_blip_and_are_sent_once(hub_config: Config) -> None:
    from peer.signaling import SignalingClient

    running, runner = await start_hub(hub_config)
    proxy = await FaultProxy.to_url(running.url)
    caller = SignalingClient(proxy.url, timeout=10)
    answerer = SignalingClient(running.url, timeout=10)
    try:
        await caller.connect()
        await answerer.connect()
        await answerer.join("r")
        await caller.offer("r", {"type": "offer", "sdp": "v=0\r\n"})
        assert (await asyncio.wait_for(answerer.events.get(), 10)).event == "offer"
        proxy.refuse(True)
        proxy.cut()
        await wait_until(lambda: not caller.connected)
        sent = asyncio.ensure_future(caller.candidate("r", None))  # waits for the resume
        await asyncio.sleep(0.5)  # give it every chance to go out too early
        assert not sent.done()
        proxy.refuse(False)
        assert (await asyncio.wait_for(sent, 20))["ok"] is True
        got = [(await asyncio.wait_for(answerer.events.get(), 10)) for _ in range(3)]
        assert [g.event for g in got] == ["peer_away", "peer_back", "candidate"]
        assert answerer.events.empty()
    finally:
        await caller.close()
        await answerer.close()
        await proxy.close()
        await runner.cleanup()


@pytest.mark.slow
async def test_after_a_hub_restart_a_hang_up_still_ends_the_other_side() -> None:
    """No hub to carry the hang-up: the closed DTLS connection says it."""
    async with call_across_a_hub_restart("gone", signal.SIGKILL) as (caller, answerer, tasks):
        caller.call.request_hangup("done")
        await asyncio.wait_for(tasks[0], WAIT)
        await caller.call.close()  # the caller's process ends: its DTLS closes
        await asyncio.wait_for(tasks[1], WAIT)
        assert (caller.ended, answerer.ended) == ("done", "hangup")
        assert answerer.call.phase == Phase.ENDED
        assert answerer.call.signaling_state == SignalingState.LOST


async def test_a_connected_call_whose_connection_fails_ends_as_a_media_failure(
    hub: RunningHub,
) -> None:
    from peer.call import ConnectionChanged
    from peer.errors import ExitCode, MediaError

    async with call_pair(hub.url, "fails") as (caller, answerer, tasks):
        answerer.call.inbox.put_nowait(ConnectionChanged("failed"))
        with pytest.raises(MediaError, match="failed after the call was connected") as failed:
            await asyncio.wait_for(tasks[1], WAIT)
        assert failed.value.exit_code == ExitCode.MEDIA
        assert answerer.call.phase == Phase.ENDED
        caller.call.request_hangup("done")
        await asyncio.wait_for(tasks[0], WAIT)
