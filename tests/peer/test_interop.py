"""The Python answerer against callers built like other stacks (issue: every real caller).

Each caller is a real aiortc connection whose offer is what Firefox, a hardware camera,
a voice-only client or an RSA-certificate stack sends; the answerer is our ``Call``,
over a real hub on loopback, and real frames flow.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from peer import aiortc_seam, sdp
from peer.call import Call
from peer.errors import CallTimeout, DtlsFailed
from peer.signaling import SignalingClient
from tests.conftest import RunningHub

from .cli_run import finish, run_cli, start_cli
from .foreign import MDNS_NAMES, Foreign, foreign_caller, mdns_candidates, rsa_dtls
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


def drop_first(text: str) -> str:
    """What the caller's own stack keeps of the answer: its own m-sections."""
    answer = sdp.split(text)
    return sdp.join(answer, answer.sections[1:], candidates=True)


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
    edit = inject_first(section, "cam")
    async with foreign_caller(hub.url, room, data=True, **{other: True}) as caller:  # type: ignore[arg-type]
        if first == "caller":
            await caller.offer(edit)
        async with answering(hub, room, audio="tone") as (me, task):
            if first == "answerer":
                await caller.offer(edit)
            answer = sdp.split(await caller.take_answer(drop_first))
            rejected = answer.sections[0]
            assert (rejected.kind, rejected.port, rejected.mid) == (kind, 0, "cam")
            assert all(s.port != 0 for s in answer.sections[1:])
            assert "cam" not in answer.bundle
            await frames_both_ways(caller, me.call, task, kind=other)
            await chat_both_ways(caller, me.call)
            assert me.call.rejected == ["m-section 0 (" + kind + ", mid 'cam')"]
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
    async with foreign_caller(hub.url, room, video=True) as caller:
        await caller.prepare()
        tagged = [{**c, "sdpMid": "cam", "sdpMLineIndex": 0} for c in caller.real_candidates()]
        end = {"candidate": "", "sdpMid": "cam"}
        await caller.offer(inject_first(H264_MAIN, "cam"), trickle=[*tagged, end])
        async with answering(hub, room) as (me, task):
            await caller.take_answer(drop_first)
            await frames_both_ways(caller, me.call, task)
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
    room = "rsa-public-api"
    async with foreign_caller(hub.url, room, video=True, setup=rsa_dtls) as caller:
        await caller.offer()
        async with side(hub.url, "answerer", room) as me:
            await me.call.start()
            take = asyncio.create_task(caller.take_answer())
            with pytest.raises(DtlsFailed) as info:
                await me.call.run(connect_timeout=WAIT)
            await take
    message = str(info.value)
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
