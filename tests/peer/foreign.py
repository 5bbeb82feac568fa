"""A caller built from a bare aiortc ``RTCPeerConnection``, standing in for other stacks.

It offers only the media kinds it is given, can edit its offer and the answer on the
wire (as a camera, Firefox or a voice-only client would send them), can trickle chosen
candidates instead of the ones in its description, can use an RSA DTLS certificate,
and counts the frames it receives per kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCCertificate, generate_certificate
from cryptography.hazmat.primitives.asymmetric import rsa

from peer import sdp
from peer.media import TestSource, ToneSource
from peer.protocol import Event, candidate_to_json
from peer.signaling import SignalingClient

from .pair import SIZE

Edit = Callable[[str], str]

# mDNS names as Firefox sends them: random, and resolvable by nobody here
MDNS_NAMES = (
    "0f1e2d3c-aaaa-4bbb-8ccc-0123456789ab.local",
    "1a2b3c4d-bbbb-4ccc-8ddd-0123456789ab.local",
    "2b3c4d5e-cccc-4ddd-8eee-0123456789ab.local",
)


def mdns_candidates(mid: str) -> list[dict[str, Any]]:
    """The candidates of the issue's case: only mDNS host names."""
    return [
        {
            "candidate": f"candidate:{i} 1 UDP 2122187007 {name} {34053 + i} typ host",
            "sdpMid": mid,
            "sdpMLineIndex": 0,
        }
        for i, name in enumerate(MDNS_NAMES)
    ]


def keep(text: str) -> str:
    return text


# what GStreamer's webrtcbin (Debian 1.22) negotiates: an RSA certificate, no ECDSA suite
RSA_SUITES = b"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"


def rsa_dtls(pc: RTCPeerConnection) -> None:
    """Give ``pc`` an RSA DTLS certificate and only ECDHE-RSA suites, like webrtcbin."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = RTCCertificate(key=key, cert=generate_certificate(key))  # type: ignore[arg-type]
    original = certificate._create_ssl_context

    def context(*args: Any, **kwargs: Any) -> Any:
        ctx = original(*args, **kwargs)
        ctx.set_cipher_list(RSA_SUITES)
        return ctx

    certificate._create_ssl_context = context  # type: ignore[method-assign]
    pc._RTCPeerConnection__certificates = [certificate]  # type: ignore[attr-defined]


@dataclass
class Foreign:
    pc: RTCPeerConnection
    client: SignalingClient
    room: str
    received: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    chat_got: list[dict[str, Any]] = field(default_factory=list)
    chat: RTCDataChannel | None = None
    chat_open: asyncio.Event = field(default_factory=asyncio.Event)
    answer_sdp: str | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def mid(self) -> str:
        """The mid of the first m-section of the offer (the BUNDLE transport)."""
        offer = self.pc.localDescription
        assert offer is not None
        first = sdp.split(offer.sdp).sections[0].mid
        assert first is not None
        return first

    async def prepare(self) -> None:
        """Make the offer (and gather) without sending it, to read mids and candidates."""
        await self.pc.setLocalDescription(await self.pc.createOffer())

    async def offer(self, edit: Edit = keep, *, trickle: list[Any] | None = None) -> None:
        """Offer; with ``trickle``, the description carries no candidates and those
        candidates (ending with an end-of-candidates marker of the caller's choice)
        follow it one by one."""
        if self.pc.localDescription is None:
            await self.prepare()
        text = self.pc.localDescription.sdp
        if trickle is not None:
            split = sdp.split(text)
            for s in split.sections:
                s.candidates.clear()
                s.end_of_candidates = False
            text = sdp.join(split, split.sections)
        await self.client.offer(self.room, {"type": "offer", "sdp": edit(text)})
        for candidate in trickle or []:
            await self.client.candidate(self.room, candidate)

    def real_candidates(self) -> list[dict[str, Any]]:
        """This caller's own gathered candidates, as a browser would trickle them."""
        transports = [t.receiver.transport for t in self.pc.getTransceivers()]
        if self.pc.sctp is not None:
            transports.append(self.pc.sctp.transport)
        out: list[dict[str, Any]] = []
        for c in transports[0].transport.iceGatherer.getLocalCandidates():
            c.sdpMid, c.sdpMLineIndex = self.mid, 0
            as_json = candidate_to_json(c)
            assert as_json is not None
            out.append(as_json)
        return out

    async def take_answer(self, edit: Edit = keep, limit: float = 30) -> str:
        """Wait for the answer and apply it (edited) to the connection."""
        while True:
            item = await asyncio.wait_for(self.client.events.get(), limit)
            if item.event == Event.ANSWER:
                break
        self.answer_sdp = item.payload["description"]["sdp"]
        await self.pc.setRemoteDescription(RTCSessionDescription(edit(self.answer_sdp), "answer"))
        return self.answer_sdp

    def send_chat(self, text: str) -> None:
        assert self.chat is not None
        self.chat.send(json.dumps({"type": "chat", "text": text, "from": "foreign", "ts": 1}))

    async def hangup(self) -> None:
        await self.client.hangup(self.room)


async def _count(track: MediaStreamTrack, received: dict[str, int]) -> None:
    with contextlib.suppress(MediaStreamError):
        while True:
            await track.recv()
            received[track.kind] += 1


@asynccontextmanager
async def foreign_caller(
    url: str,
    room: str,
    *,
    video: bool = False,
    audio: bool = False,
    data: bool = False,
    setup: Callable[[RTCPeerConnection], None] | None = None,
) -> AsyncIterator[Foreign]:
    """A caller that offers exactly ``video`` / ``audio`` (sendrecv) / a ``chat`` channel."""
    client = SignalingClient(url, name="foreign", timeout=10)
    await client.connect()
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    if setup is not None:
        setup(pc)
    me = Foreign(pc, client, room)
    sources: list[MediaStreamTrack] = []
    if video:
        sources.append(TestSource(*SIZE, 30))
    if audio:
        sources.append(ToneSource())
    for track in sources:
        pc.addTrack(track)

    @pc.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        me.tasks.append(asyncio.create_task(_count(track, me.received)))

    if data:
        channel = me.chat = pc.createDataChannel("chat")

        @channel.on("open")
        def on_open() -> None:
            me.chat_open.set()

        @channel.on("message")
        def on_message(raw: Any) -> None:
            me.chat_got.append(json.loads(raw))

    try:
        yield me
    finally:
        for track in sources:
            track.stop()
        await pc.close()
        for task in me.tasks:
            task.cancel()
        for task in me.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await client.close()
