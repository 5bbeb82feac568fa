"""The Python answerer against callers built like other stacks (issue: every real caller).

Each caller is a real aiortc connection whose offer is what Firefox, a hardware camera,
a voice-only client or an RSA-certificate stack sends; the answerer is our ``Call``,
over a real hub on loopback, and real frames flow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from peer import aiortc_seam, sdp
from peer.call import Call
from peer.errors import CallTimeout, DtlsFailed, NegotiationFailed
from peer.media import ToneSource
from peer.negotiation import plan_answer
from peer.signaling import SignalingClient
from tests.conftest import RunningHub

from .cli_run import finish, run_cli, start_cli
from .foreign import (
    MDNS_NAMES,
    Edit,
    Foreign,
    foreign_caller,
    keep,
    mdns_candidates,
    rsa_dtls,
)
from .pair import Side, side, wait_until

WAIT = 30.0


@asynccontextmanager
async def answering(
    hub: RunningHub, room: str, **options: object
) -> AsyncIterator[tuple[Side, asyncio.Task[str]]]:
    """Our answerer, joined and running; yields it and its ``run()`` task."""
    async with side(hub.url, "answerer", room, **options) as me:  # type: ignore[arg-type]
        await me.call.start()
        task = asyncio.create_task(me.call.run(connect_timeout=WAIT))
        try:
            yield me, task
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def connected(answerer: Call, task: asyncio.Task[str]) -> None:
    """Wait until the answerer is connected; raise at once what its run() raised."""
    waiter = asyncio.ensure_future(answerer.connected.wait())
    await asyncio.wait({waiter, task}, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task.done():
        raise AssertionError(f"the call ended: {task.result()!r}")
    assert answerer.connected.is_set(), "the answerer did not connect"


async def frames_both_ways(
    caller: Foreign, answerer: Call, task: asyncio.Task[str], kind: str = "video"
) -> None:
    await connected(answerer, task)
    await wait_until(lambda: caller.received[kind] >= 10, WAIT)
    if kind == "video":
        await wait_until(lambda: answerer.stats.frames_received >= 10, WAIT)


async def chat_both_ways(caller: Foreign, answerer: Call) -> None:
    await asyncio.wait_for(caller.chat_open.wait(), WAIT)
    await asyncio.wait_for(answerer.chat_open.wait(), WAIT)
    caller.send_chat("from the caller")
    await wait_until(lambda: len(answerer.chat_received) == 1)
    assert answerer.chat_received[0]["text"] == "from the caller"
    assert answerer.send_chat("from the answerer")
    await wait_until(lambda: len(caller.chat_got) == 1)
    assert caller.chat_got[0]["text"] == "from the answerer"


async def hang_up(caller: Foreign, task: asyncio.Task[str]) -> None:
    await caller.hangup()
    assert await asyncio.wait_for(task, 15) == "hangup"


# -- 1. mDNS-only candidates, then end-of-candidates ------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("first", "end"), [("caller", "null"), ("answerer", "null"), ("caller", "empty")]
)
async def test_mdns_only_caller_connects_through_its_checks(
    hub: RunningHub, first: str, end: str
) -> None:
    """Only ``.local`` hosts, then end-of-candidates: reached through its checks (prflx)."""
    room = f"mdns-{first}-{end}"
    async with foreign_caller(hub.url, room, video=True, data=True) as caller:
        await caller.prepare()
        marker = None if end == "null" else {"candidate": "", "sdpMid": caller.mid}
        trickle = [*mdns_candidates(caller.mid), marker]
        if first == "caller":
            await caller.offer(trickle=trickle)
        async with answering(hub, room, resolve_mdns=False) as (me, task):
            if first == "answerer":
                await caller.offer(trickle=trickle)
            await caller.take_answer()
            await frames_both_ways(caller, me.call, task)
            assert me.call.remote_ice.mdns_names == list(MDNS_NAMES)
            await wait_until(lambda: me.call.remote_ice.ends_applied == 1)
            await hang_up(caller, task)


@pytest.mark.slow
async def test_end_of_candidates_of_another_generation_is_ignored(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    """An empty-string candidate names its m-section and ufrag; a stale ufrag ends nothing."""
    caplog.set_level(logging.INFO, logger="peer")
    room = "stale-end"
    async with foreign_caller(hub.url, room, video=True) as caller:
        await caller.prepare()
        stale = {"candidate": "", "sdpMid": caller.mid, "usernameFragment": "stale"}
        unknown = {"candidate": "", "sdpMid": "nope"}
        await caller.offer(trickle=[*mdns_candidates(caller.mid), stale, unknown])
        async with answering(hub, room, resolve_mdns=False) as (me, task):
            await caller.take_answer()
            await frames_both_ways(caller, me.call, task)
            said = [r.getMessage() for r in caplog.records]
            assert any("of ICE generation 'stale', not the current" in m for m in said), said
            assert any("for mid 'nope': no such m-section; ignored" in m for m in said), said
            assert me.call.remote_ice.ends_applied == 0
            await hang_up(caller, task)


@pytest.mark.slow
async def test_empty_foundation_candidates_are_used(hub: RunningHub) -> None:
    """``candidate: 1 udp ...`` (no foundation) is a candidate like any other."""
    room = "no-foundation"
    async with foreign_caller(hub.url, room, video=True) as caller:
        await caller.prepare()
        real = caller.real_candidates()
        assert real
        bare = [{**c, "candidate": "candidate: " + c["candidate"].split(" ", 1)[1]} for c in real]
        assert all(c["candidate"].startswith("candidate: 1 udp ") for c in bare), bare
        await caller.offer(trickle=[*bare, None])
        async with answering(hub, room) as (me, task):
            await caller.take_answer()
            await frames_both_ways(caller, me.call, task)
            assert me.call.remote_ice.signalled == len(bare)
            ice = me.call.pc.getTransceivers()[0].receiver.transport.transport
            known = {(c.ip, c.port) for c in ice.getRemoteCandidates()}
            for c in bare:
                _, _, _, _, ip, port, *_ = c["candidate"].split(" ")
                assert (ip, int(port)) in known
            await hang_up(caller, task)


# -- 2. an m-section without a codec we implement ----------------------------------------

H264_MAIN = (
    "m=video 9 UDP/TLS/RTP/SAVPF 102",
    "a=rtpmap:102 H264/90000",
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f",
)
AMR_ONLY = ("m=audio 9 UDP/TLS/RTP/SAVPF 96", "a=rtpmap:96 AMR-WB/16000")


def inject_first(section: tuple[str, ...], mid: str) -> Callable[[str], str]:
    """Put a camera-like m-section first in the offer, bundled with the rest."""

    def edit(text: str) -> str:
        offer = sdp.split(text)
        model = offer.sections[0]
        transport = [
            ln
            for ln in model.lines
            if ln.startswith(("c=", "a=ice-", "a=fingerprint", "a=setup", "a=rtcp-mux"))
        ]
        lines = [section[0], *transport, f"a=mid:{mid}", "a=sendonly", *section[1:]]
        offer.sections.insert(0, sdp.Section(index=0, lines=lines))
        offer.session = [
            ln.replace("a=group:BUNDLE", f"a=group:BUNDLE {mid}") for ln in offer.session
        ]
        return sdp.join(offer, offer.sections, candidates=True)

    return edit


def only_codecs_first(section: tuple[str, ...]) -> Callable[[str], str]:
    """The caller's own first m-section, sent on the wire with only ``section``'s codecs.

    The caller's stack did offer that m-section, so it applies the real answer, port 0
    and all, as a browser does.
    """

    def edit(text: str) -> str:
        offer = sdp.split(text)
        first = offer.sections[0]
        kept = [
            ln for ln in first.lines[1:] if not ln.startswith(("a=rtpmap", "a=fmtp", "a=rtcp-fb"))
        ]
        first.lines = [section[0], *kept, *section[1:]]
        return sdp.join(offer, offer.sections, candidates=True)

    return edit


def sending_first(kind: str) -> Callable[[RTCPeerConnection], None]:
    """Give the caller a first m-section of ``kind`` that only sends (a camera's)."""

    def setup(pc: RTCPeerConnection) -> None:
        pc.addTransceiver(kind, direction="sendonly")

    return setup


@pytest.mark.slow
@pytest.mark.parametrize(
    ("first", "section", "kind"),
    [("caller", H264_MAIN, "video"), ("answerer", AMR_ONLY, "audio")],
)
async def test_m_section_without_usable_codec_is_rejected(
    hub: RunningHub,
    caplog: pytest.LogCaptureFixture,
    first: str,
    section: tuple[str, ...],
    kind: str,
) -> None:
    """The unusable m-section gets port 0 in the answer; the other media and chat go on."""
    caplog.set_level(logging.INFO, logger="peer")
    room = f"codec-{kind}"
    other = "audio" if kind == "video" else "video"
    edit = only_codecs_first(section)
    options = {"data": True, other: True, "setup": sending_first(kind)}
    async with foreign_caller(hub.url, room, **options) as caller:  # type: ignore[arg-type]
        if first == "caller":
            await caller.offer(edit)
        async with answering(hub, room, audio="tone") as (me, task):
            if first == "answerer":
                await caller.offer(edit)
            answer = sdp.split(await caller.take_answer())
            rejected = answer.sections[0]
            assert (rejected.kind, rejected.port, rejected.mid) == (kind, 0, "0")
            assert all(s.port != 0 for s in answer.sections[1:])
            assert "0" not in answer.bundle
            await frames_both_ways(caller, me.call, task, kind=other)
            await chat_both_ways(caller, me.call)
            assert me.call.rejected == ["m-section 0 (" + kind + ", mid '0')"]
            assert caller.pc.getTransceivers()[0].currentDirection == "inactive"
            lines = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
            assert len(lines) == 1, lines
            if kind == "video":
                assert "offered H264 (profile-level-id=4d001f)" in lines[0]
                assert "supports VP8, H264 (profile-level-id=42001f)" in lines[0]
            else:
                assert "offered AMR-WB/16000" in lines[0] and "opus/48000" in lines[0]
            await hang_up(caller, task)


@pytest.mark.slow
async def test_candidates_of_a_rejected_bundle_tag_reach_the_bundle(hub: RunningHub) -> None:
    """Candidates trickled for the rejected first m-section belong to the BUNDLE transport."""
    room = "codec-trickle"
    async with foreign_caller(hub.url, room, audio=True, setup=sending_first("video")) as caller:
        await caller.prepare()
        tagged = [{**c, "sdpMid": "0", "sdpMLineIndex": 0} for c in caller.real_candidates()]
        end = {"candidate": "", "sdpMid": "0"}
        await caller.offer(only_codecs_first(H264_MAIN), trickle=[*tagged, end])
        async with answering(hub, room, audio="tone") as (me, task):
            await caller.take_answer()
            await frames_both_ways(caller, me.call, task, kind="audio")
            assert me.call.remote_ice.signalled == len(tagged)
            await wait_until(lambda: me.call.remote_ice.ends_applied == 1)
            await hang_up(caller, task)


# -- 3. fewer media kinds offered than the answerer sends ---------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("first", "offered", "not_sent"),
    [
        ("caller", {"data": True}, ["video", "audio"]),
        ("answerer", {"data": True}, ["video", "audio"]),
        ("caller", {"audio": True}, ["video"]),
        ("answerer", {"video": True}, ["audio"]),
    ],
)
async def test_offer_with_fewer_kinds_than_our_sources(
    hub: RunningHub,
    caplog: pytest.LogCaptureFixture,
    first: str,
    offered: dict[str, bool],
    not_sent: list[str],
) -> None:
    """Data-only, audio-only, video-only offers to testsrc + tone: answered as offered."""
    caplog.set_level(logging.INFO, logger="peer")
    room = f"kinds-{first}-{'-'.join(offered)}"
    async with foreign_caller(hub.url, room, **offered) as caller:  # type: ignore[arg-type]
        if first == "caller":
            await caller.offer()
        async with answering(hub, room, audio="tone") as (me, task):
            if first == "answerer":
                await caller.offer()
            answer = sdp.split(await caller.take_answer())
            assert [s.kind for s in answer.sections] == [
                {"data": "application"}.get(k, k) for k in offered
            ]
            if "audio" in offered:  # Opus, offered first, is the codec of the answer
                audio = next(s for s in answer.sections if s.kind == "audio")
                rtpmap = next(ln for ln in audio.lines if ln.startswith("a=rtpmap:"))
                assert rtpmap.endswith(" opus/48000/2"), rtpmap
            if "data" in offered:
                await connected(me.call, task)
                await chat_both_ways(caller, me.call)
            else:
                await frames_both_ways(caller, me.call, task, kind=next(iter(offered)))
            assert me.call.not_sent == not_sent
            said = [r.getMessage() for r in caplog.records if "not sending" in r.getMessage()]
            assert len(said) == 1, said
            assert all(
                f"{kind} (the offer has no usable {kind} m-section)" in said[0] for kind in not_sent
            )
            await hang_up(caller, task)


# -- 4. a caller with an RSA DTLS certificate ----------------------------------------------


async def dtls_failure(
    hub: RunningHub,
    room: str,
    *,
    edit: Edit = keep,
    setup: Callable[[RTCPeerConnection], None] | None = None,
) -> str:
    """Answer a foreign video caller whose DTLS cannot succeed; the error's message."""
    async with foreign_caller(hub.url, room, video=True, setup=setup) as caller:
        await caller.offer(edit)
        async with side(hub.url, "answerer", room) as me:
            await me.call.start()
            take = asyncio.create_task(caller.take_answer())
            with pytest.raises(DtlsFailed) as info:
                await me.call.run(connect_timeout=WAIT)
            await take
    return str(info.value)


@pytest.mark.slow
@pytest.mark.parametrize("first", ["caller", "answerer"])
async def test_rsa_certificate_caller_is_answered(hub: RunningHub, first: str) -> None:
    """We are the DTLS client; the caller's RSA certificate takes ECDHE-RSA suites."""
    room = f"rsa-{first}"
    async with foreign_caller(hub.url, room, video=True, data=True, setup=rsa_dtls) as caller:
        if first == "caller":
            await caller.offer()
        async with answering(hub, room) as (me, task):
            if first == "answerer":
                await caller.offer()
            answer = await caller.take_answer()
            assert "a=setup:active" in answer  # the answerer is the DTLS client
            await frames_both_ways(caller, me.call, task)
            await asyncio.wait_for(caller.chat_open.wait(), WAIT)
            await hang_up(caller, task)


@pytest.mark.slow
async def test_dtls_failure_is_named(hub: RunningHub, monkeypatch: pytest.MonkeyPatch) -> None:
    """On aiortc's public API alone (hooks off) the RSA caller fails, and we say DTLS."""
    monkeypatch.setattr(aiortc_seam, "_checked", False)
    message = await dtls_failure(hub, "rsa-public-api", setup=rsa_dtls)
    assert "DTLS handshake with the caller failed" in message
    assert "after ICE connected" in message
    assert "m-section 0 (video, mid '0')" in message


# -- 5. the answerer's --codec -------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(("offered_first", "wanted"), [("vp8", "h264"), ("h264", "vp8")])
async def test_answerer_codec_orders_the_answer(
    hub: RunningHub, offered_first: str, wanted: str
) -> None:
    """The caller offers both codecs; the answerer's --codec is the one both use."""
    room = f"pref-{wanted}"
    async with (
        side(hub.url, "caller", room, codec=offered_first) as caller,
        side(hub.url, "answerer", room, codec=wanted) as answerer,
    ):
        await caller.call.start()
        await answerer.call.start()
        runs = [
            asyncio.create_task(caller.call.run(connect_timeout=WAIT)),
            asyncio.create_task(answerer.call.run(connect_timeout=WAIT)),
        ]
        await wait_until(
            lambda: (
                min(caller.call.stats.frames_received, answerer.call.stats.frames_received) >= 10
            ),
            WAIT,
        )
        caller.call.request_hangup("done")
        assert await asyncio.wait_for(asyncio.gather(*runs), 15) == ["done", "hangup"]
        for s in (caller, answerer):
            summary = s.call.stats.summary()
            assert summary["video"]["codec"] == wanted.upper(), summary
        remote = caller.call.pc.remoteDescription
        assert remote is not None and remote.type == "answer"
        offer = caller.call.pc.localDescription
        assert offer is not None
        assert f"video/{offered_first}" == video_mime(offer.sdp)
        assert f"video/{wanted}" == video_mime(remote.sdp)


def video_mime(text: str) -> str:
    from peer.call import video_codec

    codec = video_codec(text)
    assert codec is not None
    return f"video/{codec.lower()}"


# -- 6. failures in words -----------------------------------------------------------------


async def test_unreachable_mdns_caller_times_out_with_the_reason(hub: RunningHub) -> None:
    """A caller that never checks us: the timeout says ICE, and what it was given."""
    room = "mdns-silent"
    async with foreign_caller(hub.url, room, data=True) as caller:
        await caller.prepare()
        await caller.offer(trickle=[*mdns_candidates(caller.mid), None])
        async with side(hub.url, "answerer", room, video="none", resolve_mdns=False) as me:
            await me.call.start()
            with pytest.raises(CallTimeout) as info:
                await me.call.run(connect_timeout=3)
    message = str(info.value)
    assert "did not connect within 3 s" in message
    assert "3 remote candidate(s) signalled, 3 of them mDNS names" in message
    assert "ICE " in message


# -- through the command line ----------------------------------------------------------------


@pytest.mark.slow
async def test_cli_answerer_codec_and_stats_json(hub: RunningHub) -> None:
    """``--codec vp8`` on the answerer against an H.264-first caller: VP8 in --stats-json."""
    room = "cli-pref"
    async with side(hub.url, "caller", room, codec="h264") as caller:
        await caller.call.start()
        run = asyncio.create_task(caller.call.run(connect_timeout=WAIT))
        answerer = await start_cli(
            "--server", hub.url, "--room", room, "--role", "answerer", "--size", "320x240",
            "--codec", "vp8", "--stats-json", "-",
        )  # fmt: skip
        try:
            assert answerer.stdin is not None
            answerer.stdin.close()
            await wait_until(lambda: caller.call.stats.frames_received >= 20, WAIT)
            caller.call.request_hangup("done")
            assert await asyncio.wait_for(run, 15) == "done"
            done = await finish(answerer)
        finally:
            if answerer.returncode is None:
                answerer.kill()
                await answerer.wait()
    assert done.code == 0, done.stderr
    stats = json.loads(done.stdout[done.stdout.index("{") :])
    assert stats["video"]["codec"] == "VP8"
    assert stats["frames_received"] > 0
    assert caller.call.stats.summary()["video"]["codec"] == "VP8"


async def test_cli_no_mdns_drops_local_names_and_connects(hub: RunningHub) -> None:
    """``--no-mdns``: the caller's ``.local`` names are dropped unqueried, the call connects."""
    room = "cli-no-mdns"
    async with foreign_caller(hub.url, room, video=True) as caller:
        await caller.prepare()
        await caller.offer(trickle=[*mdns_candidates(caller.mid), None])
        answerer = await start_cli(
            "--server", hub.url, "--room", room, "--role", "answerer", "--size", "320x240",
            "--no-mdns", "-v",
        )  # fmt: skip
        try:
            assert answerer.stdin is not None
            answerer.stdin.close()
            await caller.take_answer()
            await wait_until(lambda: caller.received["video"] >= 10, WAIT)
            await caller.hangup()
            done = await finish(answerer)
        finally:
            if answerer.returncode is None:
                answerer.kill()
                await answerer.wait()
    assert done.code == 0, done.stderr
    for name in MDNS_NAMES:
        assert f"mDNS candidate {name} not resolved (resolution off)" in done.stderr


async def test_cli_offer_with_nothing_usable_is_named(hub: RunningHub) -> None:
    """Only an H.264 Main video m-section: exit 4 with a line naming it and the codecs."""
    room = "cli-nothing"

    def only_main(text: str) -> str:
        offer = sdp.split(inject_first(H264_MAIN, "cam")(text))
        return sdp.join(offer, offer.sections[:1], candidates=True)

    async with foreign_caller(hub.url, room, video=True) as caller:
        await caller.offer(only_main)
        done = await run_cli("--server", hub.url, "--room", room, "--role", "answerer")
    assert done.code == 4, done.stderr
    line = done.last_error_line
    assert "unexpected error" not in done.stderr
    assert line.startswith(f"p2pcall-peer: nothing in the offer in room {room!r} can be answered")
    assert "m-section 0 (video, mid 'cam'): no video codec in common" in line
    assert "offered H264 (profile-level-id=4d001f)" in line


# -- the Python peer as caller, answered by a stack that hides its addresses ---------------


@pytest.mark.slow
async def test_caller_reaches_an_mdns_only_answerer(hub: RunningHub) -> None:
    """Firefox answering: no candidates in the answer, then only ``.local`` names and null."""
    room = "mdns-answerer"
    client = SignalingClient(hub.url, name="foreign", timeout=10)
    await client.connect()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    try:
        async with side(hub.url, "caller", room, resolve_mdns=False) as caller:
            await caller.call.start()
            join = await client.join(room)
            await pc.setRemoteDescription(RTCSessionDescription(join["offer"]["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            answer = sdp.split(pc.localDescription.sdp)
            for s in answer.sections:
                s.candidates.clear()
                s.end_of_candidates = False
            await client.answer(room, {"type": "answer", "sdp": sdp.join(answer, answer.sections)})
            mid = answer.sections[0].mid
            assert mid is not None
            for candidate in [*mdns_candidates(mid), None]:
                await client.candidate(room, candidate)
            run = asyncio.create_task(caller.call.run(connect_timeout=WAIT))
            await connected(caller.call, run)
            await wait_until(lambda: caller.call.remote_ice.ends_applied == 1)
            await client.hangup(room)
            assert await asyncio.wait_for(run, 15) == "hangup"
    finally:
        await pc.close()
        await client.close()


async def test_caller_applies_an_answer_with_a_rejected_m_section(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    """A browser rejects our audio: port 0, no ICE or DTLS lines. Video still flows."""
    caplog.set_level(logging.INFO, logger="peer")
    room = "answer-rejects"
    client = SignalingClient(hub.url, name="foreign", timeout=10)
    await client.connect()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    frames: list[int] = []

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def count() -> None:
            with contextlib.suppress(MediaStreamError):
                while True:
                    await track.recv()
                    frames.append(1)

        tasks.append(asyncio.create_task(count()))

    tasks: list[asyncio.Task[None]] = []
    try:
        async with side(hub.url, "caller", room, audio="tone") as caller:
            await caller.call.start()
            join = await client.join(room)
            await pc.setRemoteDescription(RTCSessionDescription(join["offer"]["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            answer = sdp.split(pc.localDescription.sdp)
            audio = next(s for s in answer.sections if s.kind == "audio")
            audio.lines, audio.candidates = sdp.rejected(audio), []
            answer.session = [
                ln.replace(f" {audio.mid}", "") if ln.startswith(sdp.BUNDLE_PREFIX) else ln
                for ln in answer.session
            ]
            text = sdp.join(answer, answer.sections, candidates=True)
            assert "m=audio 0 " in text and f" {audio.mid}" not in text.split("a=group:")[1][:40]
            await client.answer(room, {"type": "answer", "sdp": text})
            run = asyncio.create_task(caller.call.run(connect_timeout=WAIT))
            await connected(caller.call, run)
            await wait_until(lambda: len(frames) >= 10, WAIT)
            assert caller.call.rejected == [audio.describe()]
            kinds = {t.kind: t.currentDirection for t in caller.call.pc.getTransceivers()}
            assert kinds == {"video": "sendonly", "audio": "inactive"}
            said = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
            assert len(said) == 1 and audio.describe() in said[0], said
            await client.hangup(room)
            assert await asyncio.wait_for(run, 15) == "hangup"
    finally:
        await pc.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()


def without_lines(prefix: str) -> Callable[[str], str]:
    return lambda text: "".join(
        ln for ln in text.splitlines(keepends=True) if not ln.startswith(prefix)
    )


async def test_cli_offer_without_fingerprint_is_refused_in_words(hub: RunningHub) -> None:
    """No ``a=fingerprint``: refused at once, exit 4, one line, no traceback."""
    room = "no-fingerprint"
    async with foreign_caller(hub.url, room, video=True) as caller:
        await caller.offer(without_lines("a=fingerprint"))
        done = await run_cli(
            "--server", hub.url, "--room", room, "--role", "answerer", "--timeout", "20"
        )  # fmt: skip
    assert done.code == 4, done.stderr
    assert "Traceback" not in done.stderr and "Task exception" not in done.stderr
    assert done.last_error_line == (
        f"p2pcall-peer: the offer in room {room!r} cannot be answered: m-section 0 "
        "(video, mid '0') has no a=fingerprint (the DTLS certificate fingerprint media "
        "is secured with)"
    )


async def test_offer_without_payload_types_says_so(hub: RunningHub) -> None:
    """An m-line with no payload types: aiortc's parser says nothing; we name it."""
    room = "no-payload-types"

    def bare_mline(text: str) -> str:
        offer = sdp.split(text)
        head = offer.sections[0].lines[0].split()
        offer.sections[0].lines[0] = " ".join(head[:3])
        return sdp.join(offer, offer.sections, candidates=True)

    async with foreign_caller(hub.url, room, video=True) as caller:
        await caller.offer(bare_mline)
        async with side(hub.url, "answerer", room) as me:
            with pytest.raises(NegotiationFailed) as info:  # the held offer, at start
                await me.call.start()
                await me.call.run(connect_timeout=WAIT)
    assert str(info.value) == (
        f"the offer in room {room!r} could not be read: m-section 0 (video, mid '0') "
        "lists no payload types in its m-line"
    )


@pytest.mark.slow
async def test_dtls_fingerprint_mismatch_is_named(hub: RunningHub) -> None:
    """The caller's certificate is not the one its offer names: we say so, not ciphers."""
    room = "bad-fingerprint"

    def wrong(text: str) -> str:
        return re.sub(r"(a=fingerprint:sha-256 )[0-9A-F]{2}", r"\g<1>00", text)

    message = await dtls_failure(hub, room, edit=wrong)
    assert "DTLS handshake with the caller failed" in message
    assert "the caller's certificate (sha-256 " in message
    assert "does not match the a=fingerprint of its description (sha-256 00" in message
    assert "cipher" not in message


async def test_silent_dtls_peer_times_out_naming_dtls(hub: RunningHub) -> None:
    """ICE connects but the caller never answers DTLS: the timeout says DTLS, not ICE."""
    room = "dtls-silent"
    async with foreign_caller(hub.url, room, video=True) as caller:
        await caller.prepare()

        async def never(*args: object) -> None:
            return None

        for transceiver in caller.pc.getTransceivers():
            transceiver.receiver.transport.start = never  # type: ignore[method-assign,assignment]
        await caller.offer()
        async with side(hub.url, "answerer", room, video="none") as me:
            await me.call.start()
            take = asyncio.create_task(caller.take_answer())
            with pytest.raises(CallTimeout) as info:
                await me.call.run(connect_timeout=8)
            await take
            assert me.call.pc.iceConnectionState in ("connected", "completed")
    message = str(info.value)
    assert "did not connect within 8 s" in message
    assert "ICE connected but the DTLS handshake did not finish" in message


@pytest.mark.slow
async def test_reoffer_adding_a_kind_gets_our_source(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    """Video-only call, then the caller re-offers with audio: our tone goes out on it."""
    caplog.set_level(logging.INFO, logger="peer")
    room = "reoffer-audio"
    async with foreign_caller(hub.url, room, video=True) as caller:
        await caller.offer()
        async with answering(hub, room, audio="tone") as (me, task):
            await caller.take_answer()
            await frames_both_ways(caller, me.call, task)
            assert me.call.not_sent == ["audio"]
            tone = ToneSource()
            try:
                caller.pc.addTrack(tone)
                await caller.pc.setLocalDescription(await caller.pc.createOffer())
                offer = caller.pc.localDescription.sdp
                await caller.client.offer(room, {"type": "offer", "sdp": offer})
                answer = sdp.split(await caller.take_answer())
                audio = [s for s in answer.sections if s.kind == "audio"]
                assert len(audio) == 1 and "a=sendrecv" in audio[0].lines, audio
                await wait_until(lambda: caller.received["audio"] >= 10, WAIT)
                assert me.call.not_sent == []
                said = [r.getMessage() for r in caplog.records]
                assert any(
                    "the re-offer has an m-section for our audio: sending it" in m for m in said
                )
                assert sum("not sending audio" in m for m in said) == 1, said
            finally:
                tone.stop()
            await hang_up(caller, task)


# -- messages ----------------------------------------------------------------------------


async def test_inactive_video_is_named_and_no_codec_reported(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    """An ``a=inactive`` video m-section: "is inactive" (not "only sends"), no codec used."""
    caplog.set_level(logging.INFO, logger="peer")
    room = "inactive-video"

    def inactive(text: str) -> str:
        offer = sdp.split(text)
        video = offer.sections[0]
        video.lines = [("a=inactive" if ln == "a=sendrecv" else ln) for ln in video.lines]
        return sdp.join(offer, offer.sections, candidates=True)

    async with foreign_caller(hub.url, room, video=True, data=True) as caller:
        await caller.offer(inactive)
        async with answering(hub, room) as (me, task):
            await caller.take_answer()
            await connected(me.call, task)
            await chat_both_ways(caller, me.call)
            assert me.call.not_sent == ["video"]
            said = [r.getMessage() for r in caplog.records if "not sending" in r.getMessage()]
            assert len(said) == 1 and "video (the offer's video m-section is inactive)" in said[0]
            assert me.call.stats.codec is None
            await hang_up(caller, task)


def vp8_only(pc: RTCPeerConnection) -> None:
    """A caller whose camera offers VP8 alone."""
    capabilities = RTCRtpSender.getCapabilities("video")
    assert capabilities is not None
    transceiver = pc.addTransceiver("video")
    transceiver.setCodecPreferences(
        [c for c in capabilities.codecs if c.mimeType.lower() in ("video/vp8", "video/rtx")]
    )


async def test_answerer_codec_not_offered_says_so_once(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    """``codec="h264"`` against a VP8-only offer: one line, and the call goes on in VP8."""
    caplog.set_level(logging.INFO, logger="peer")
    room = "codec-missing"
    async with foreign_caller(hub.url, room, video=True, setup=vp8_only) as caller:
        await caller.offer()
        async with answering(hub, room, codec="h264") as (me, task):
            await caller.take_answer()
            await frames_both_ways(caller, me.call, task)
            said = [r.getMessage() for r in caplog.records if "--codec" in r.getMessage()]
            assert said == [
                f"room={room} --codec h264: m-section 0 (video, mid '0') offers no H264 this "
                "peer can use; answering with the offer's order"
            ]
            assert me.call.stats.codec == "VP8"
            await hang_up(caller, task)


async def test_record_with_nothing_to_record_says_so(
    hub: RunningHub, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """``record=`` on a data-only offer: one line saying no file will be written."""
    caplog.set_level(logging.INFO, logger="peer")
    room = "record-nothing"
    target = tmp_path / "call.webm"
    async with foreign_caller(hub.url, room, data=True) as caller:
        await caller.offer()
        async with answering(hub, room, record=target) as (me, task):
            await caller.take_answer()
            await connected(me.call, task)
            said = [r.getMessage() for r in caplog.records if "--record" in r.getMessage()]
            assert said == [
                f"room={room} --record: the caller sends no audio or video; nothing is "
                f"written to {target}"
            ]
            await hang_up(caller, task)
    assert not target.exists()


H264_HIGH_TWO_MODES = (
    "m=video 9 UDP/TLS/RTP/SAVPF 100 101",
    "a=rtpmap:100 H264/90000",
    "a=fmtp:100 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640c1f",
    "a=rtpmap:101 H264/90000",
    "a=fmtp:101 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=640c1f",
)


async def test_rejection_names_each_codec_once(
    hub: RunningHub, caplog: pytest.LogCaptureFixture
) -> None:
    """H.264 High in two packetization modes (as Chrome offers it) is named once."""
    caplog.set_level(logging.INFO, logger="peer")
    async with foreign_caller(hub.url, "codec-names", video=True) as caller:
        await caller.prepare()
        offer = sdp.split(only_codecs_first(H264_HIGH_TWO_MODES)(caller.pc.localDescription.sdp))
    with pytest.raises(NegotiationFailed) as info:
        plan_answer(offer, "codec-names")
    assert "offered H264 (profile-level-id=640c1f); this peer supports" in str(info.value)


async def test_cli_chat_and_stats_json_share_stdout(hub: RunningHub) -> None:
    """``--chat --stats-json -``: the chat lines, then the stats object at exit."""
    room = "cli-chat-stats"
    async with foreign_caller(hub.url, room, data=True) as caller:
        await caller.offer()
        answerer = await start_cli(
            "--server", hub.url, "--room", room, "--role", "answerer", "--video", "none",
            "--chat", "--stats-json", "-",
        )  # fmt: skip
        try:
            assert answerer.stdin is not None
            await caller.take_answer()
            await asyncio.wait_for(caller.chat_open.wait(), WAIT)
            caller.send_chat("hi there")
            assert answerer.stdout is not None
            first = await asyncio.wait_for(answerer.stdout.readline(), WAIT)
            assert first.decode().strip() == "foreign: hi there"
            await caller.hangup()
            done = await finish(answerer)
        finally:
            if answerer.returncode is None:
                answerer.kill()
                await answerer.wait()
    assert done.code == 0, done.stderr
    stats = json.loads(done.stdout)  # all that is left on stdout: the stats object
    assert stats["frames_received"] == 0


async def test_offer_with_no_m_section_says_so(hub: RunningHub) -> None:
    """A description with no m-section: the refusal says that, not an empty reason."""
    room = "no-m-section"
    async with foreign_caller(hub.url, room) as caller:
        await caller.offer(lambda text: text.split("m=", 1)[0])
        async with side(hub.url, "answerer", room) as me:
            with pytest.raises(NegotiationFailed) as info:  # the held offer, at start
                await me.call.start()
                await me.call.run(connect_timeout=WAIT)
    assert str(info.value) == (
        f"nothing in the offer in room {room!r} can be answered: it has no m-section"
    )
