"""Two real aiortc peers through a real hub with stamped testsrc both ways."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from aiortc import RTCPeerConnection

from peer.call import Call, Phase
from peer.errors import CallStateError, CallTimeout
from peer.protocol import candidate_to_json, description_to_json
from peer.signaling import SignalingClient
from signaling import Config
from tests.conftest import RunningHub, start_hub

from .pair import run_both, side, wait_until

FULL = [Phase.WAITING, Phase.CONNECTING, Phase.CONNECTED, Phase.ENDED]


def assert_media_flowed(call: Call, codec: str) -> None:
    s = call.stats.summary()
    assert s["frames_received"] >= 20, s
    assert s["frames_stamped"] >= 0.9 * s["frames_received"], s
    # a handful of frames may go missing on a loaded 2-core box, not more
    assert s["frames_lost"] <= max(3, s["frames_stamped"] // 20), s
    assert s["latency_ms"]["p50"] is not None and s["latency_ms"]["p95"] >= 0, s
    assert s["video"] == {"width": 320, "height": 240, "codec": codec}
    assert s["connected_ms"] is not None and s["first_frame_ms"] is not None
    assert s["first_frame_ms"] >= s["connected_ms"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("first", "codec"),
    [("caller", "vp8"), ("answerer", "vp8"), ("caller", "h264"), ("answerer", "h264")],
)
async def test_call_both_orders_both_codecs(hub: RunningHub, first: str, codec: str) -> None:
    room = f"{first}-{codec}"
    async with (
        side(hub.url, "caller", room, codec=codec, audio="tone") as caller,
        side(hub.url, "answerer", room, audio="tone") as answerer,
    ):
        await run_both(caller, answerer, first, seconds=2.5)  # type: ignore[arg-type]
        assert (caller.ended, answerer.ended) == ("duration", "hangup")
        assert caller.call.phases == FULL
        assert answerer.call.phases == FULL
        for s in (caller, answerer):
            assert_media_flowed(s.call, codec.upper())
        assert caller.call.negotiations == answerer.call.negotiations == 1


@pytest.mark.slow
async def test_chat_and_renegotiation(hub: RunningHub) -> None:
    got: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    async with (
        side(hub.url, "caller", "chatroom") as caller,
        side(hub.url, "answerer", "chatroom", on_chat=got.put_nowait) as answerer,
    ):
        await caller.call.start()
        await answerer.call.start()
        runs = [
            asyncio.create_task(caller.call.run(connect_timeout=30)),
            asyncio.create_task(answerer.call.run(connect_timeout=30)),
        ]
        await asyncio.wait_for(caller.call.chat_open.wait(), 30)
        assert caller.call.send_chat("hello there")
        msg = await asyncio.wait_for(got.get(), 10)
        assert (msg["type"], msg["text"], msg["from"]) == ("chat", "hello there", "caller")
        assert isinstance(msg["ts"], int)

        before = answerer.call.stats.frames_received
        await caller.call.renegotiate()
        await wait_until(lambda: answerer.call.negotiations == caller.call.negotiations == 2)
        assert not any(r.done() for r in runs)
        target = answerer.call.stats.frames_received + 10
        await wait_until(lambda: answerer.call.stats.frames_received >= target)
        assert answerer.call.stats.frames_received > before
        assert caller.call.phase == answerer.call.phase == Phase.CONNECTED

        caller.call.request_hangup("done")
        reasons = await asyncio.wait_for(asyncio.gather(*runs), 15)
        assert reasons == ["done", "hangup"]
        assert caller.call.chat_received == []
        assert answerer.call.chat_received == [msg]


@pytest.mark.slow
async def test_trickled_candidates_from_a_browser_like_caller(hub: RunningHub) -> None:
    """The caller sends an SDP without candidates, then trickles them, then null."""
    raw = RTCPeerConnection()
    raw.addTransceiver("video", direction="recvonly")
    client = SignalingClient(hub.url, timeout=10)
    await client.connect()
    try:
        await raw.setLocalDescription(await raw.createOffer())
        local = raw.localDescription
        lines = [ln for ln in local.sdp.splitlines() if not ln.startswith("a=candidate")]
        lines = [ln for ln in lines if ln != "a=end-of-candidates"]
        offer = description_to_json(local)
        offer["sdp"] = "\r\n".join(lines) + "\r\n"
        await client.offer("trickle", offer)
        transceiver = raw.getTransceivers()[0]
        gatherer = transceiver.sender.transport.transport.iceGatherer
        trickled = gatherer.getLocalCandidates()
        assert trickled
        # Chromium hides host addresses behind mDNS names; one that never resolves must
        # not stop the call
        hidden = "candidate:1 1 udp 2113937151 0b7a6c2e-6a7e-4b1c-9a1a-2f5b1c3e4d5f.local"
        await client.candidate(
            "trickle", {"candidate": f"{hidden} 50000 typ host", "sdpMid": transceiver.mid}
        )
        for c in trickled:
            c.sdpMid, c.sdpMLineIndex = transceiver.mid, 0
            await client.candidate("trickle", candidate_to_json(c))
        await client.candidate("trickle", None)

        # resolution off: a test sends no multicast query onto the host's network
        async with side(hub.url, "answerer", "trickle", resolve_mdns=False) as answerer:
            await answerer.call.start()  # the join ack carries the offer and the candidates
            task = asyncio.create_task(answerer.call.run(connect_timeout=30))
            answer = await asyncio.wait_for(client.events.get(), 20)
            assert answer.event == "answer"
            await raw.setRemoteDescription(
                type(raw.localDescription)(**answer.payload["description"])
            )
            await asyncio.wait_for(answerer.call.connected.wait(), 30)
            ice = answerer.call.pc.getTransceivers()[0].receiver.transport.transport
            known = {(c.ip, c.port) for c in ice.getRemoteCandidates()}
            for c in trickled:
                assert (c.ip, c.port) in known
            await wait_until(lambda: answerer.call.remote_ice.ends_applied == 1)
            await client.hangup("trickle")
            assert await asyncio.wait_for(task, 15) == "hangup"
    finally:
        await raw.close()
        await client.close()


async def test_no_answerer_times_out(hub: RunningHub) -> None:
    async with side(hub.url, "caller", "lonely", video="none") as caller:
        await caller.call.start()
        with pytest.raises(CallTimeout, match="no answerer came to room 'lonely' within 1 s"):
            await caller.call.run(connect_timeout=1)
        assert caller.call.phases == [Phase.WAITING]


async def test_remote_candidates_wait_for_the_description(hub: RunningHub) -> None:
    """A candidate that arrives before any offer is kept, then applied after it."""
    async with side(hub.url, "answerer", "early", video="none") as answerer:
        await answerer.call.start()
        cand = {"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}
        await answerer.call._on_candidate(cand)
        await answerer.call._on_candidate(None)
        assert len(answerer.call.remote_ice.pending) == 2
        assert answerer.call.pc.remoteDescription is None


async def test_expired_room_ends_a_waiting_caller() -> None:
    running, runner = await start_hub(Config(port=0, offer_ttl=0.5))
    try:
        async with side(running.url, "caller", "ttl", video="none") as caller:
            await caller.call.start()
            with pytest.raises(CallTimeout, match="room 'ttl' expired on the hub"):
                await caller.call.run(connect_timeout=30)
    finally:
        await runner.cleanup()


@pytest.mark.slow
async def test_peer_left_leaves_a_call_whose_media_flows(hub: RunningHub) -> None:
    """``peer_left`` ends the other side's signaling, not the call: the media goes on,
    and a hang-up over DTLS alone (no hub to say it) still ends the call as a hang-up."""
    async with (
        side(hub.url, "caller", "left") as caller,
        side(hub.url, "answerer", "left") as answerer,
    ):
        await caller.call.start()
        await answerer.call.start()
        caller_run = asyncio.create_task(caller.call.run(connect_timeout=30))
        answerer_run = asyncio.create_task(answerer.call.run(connect_timeout=30))
        await asyncio.wait_for(answerer.call.first_frame.wait(), 30)
        await caller.client.close()  # the caller's session ends (bye); its media does not
        await wait_until(lambda: answerer.call.peer_gone)
        frames = answerer.call.stats.frames_received
        await wait_until(lambda: answerer.call.stats.frames_received > frames + 20)
        assert not answerer_run.done() and answerer.call.phase == Phase.CONNECTED
        assert "other side's signaling gone" in answerer.call.notes
        caller_run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await caller_run
        await caller.call.close()  # DTLS close_notify: the only word of the hang-up
        assert await asyncio.wait_for(answerer_run, 15) == "hangup"
        assert answerer.call.phases == FULL


async def test_phase_changes_are_guarded(hub: RunningHub) -> None:
    async with side(hub.url, "caller", "guard", video="none") as caller:
        await caller.call.hangup("done")
        assert caller.call.phases == [Phase.WAITING, Phase.ENDED]
        with pytest.raises(CallStateError, match="ended -> connecting"):
            caller.call._set_phase(Phase.CONNECTING)
        with pytest.raises(CallStateError, match="renegotiate"):
            await caller.call.renegotiate()
