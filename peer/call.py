"""One call: an ``RTCPeerConnection`` driven through the hub as caller or answerer.

Everything that can change the call (hub events, connection-state changes, a
local hangup) goes through one ordered inbox and is handled by :meth:`Call.run`
one item at a time, so the order of offer, answer and candidates is the order
they arrived. aiortc gathers its candidates inside ``setLocalDescription``:
this side sends one complete description, then ``null`` (end-of-candidates),
and accepts candidates trickled by a browser before or after the remote
description (they wait in a list until it is set).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from aiortc import (
    RTCConfiguration,
    RTCDataChannel,
    RTCIceCandidate,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCRtpSender,
)
from aiortc.contrib.media import MediaRecorder, MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription

from . import jitter
from .config import CODECS, Role
from .errors import CallTimeout, HubUnreachable, MediaError, PeerError
from .media import Sources, wall_ms
from .protocol import (
    candidate_from_json,
    description_from_json,
    description_to_json,
)
from .signaling import Pushed, SignalingClient
from .sinks import LatestFrame, VideoSink, drain
from .stats import CallStats

log = logging.getLogger(__name__)

CHAT_LABEL = "chat"
STATS_INTERVAL = 1.0


class Phase(StrEnum):
    WAITING = "waiting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ENDED = "ended"


@dataclass(frozen=True)
class CallOptions:
    """What one call needs besides its media; ``ice_servers=None`` takes the hub's."""

    room: str
    role: Role
    codec: str | None = None
    ice_servers: list[dict[str, Any]] | None = None
    relay_only: bool = False
    name: str = "peer"
    record: Path | None = None
    show_remote: LatestFrame | None = None
    private: bool = False  # keep the room out of the lobby


def chat_message(text: str, sender: str, ts: int | None = None) -> dict[str, Any]:
    """The JSON object sent on the ``chat`` data channel."""
    return {"type": "chat", "text": text, "from": sender, "ts": wall_ms() if ts is None else ts}


def parse_chat(raw: Any) -> dict[str, Any] | None:
    """A received chat message, or ``None`` for anything not of that shape."""
    try:
        msg = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if isinstance(msg, dict) and msg.get("type") == "chat" and isinstance(msg.get("text"), str):
        return msg
    return None


def ice_configuration(servers: list[dict[str, Any]], relay_only: bool = False) -> RTCConfiguration:
    """Always an explicit list: ``None`` would make aiortc add a public STUN server.

    ``relay_only`` keeps only TURN-relayed candidates, to prove a TURN setup works.
    """
    return RTCConfiguration(
        iceServers=[
            RTCIceServer(
                urls=s.get("urls", []), username=s.get("username"), credential=s.get("credential")
            )
            for s in servers
        ],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY if relay_only else RTCIceTransportPolicy.ALL,
    )


def prefer_codec(pc: RTCPeerConnection, codec: str) -> None:
    """Put ``codec`` (and its RTX) first on every video transceiver."""
    wanted = f"video/{codec}".lower()
    caps = RTCRtpSender.getCapabilities("video").codecs
    chosen = [c for c in caps if c.mimeType.lower() == wanted]
    rtx = [c for c in caps if c.mimeType.lower() == "video/rtx"]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(chosen + rtx)


def video_codec(sdp: str) -> str | None:
    """The first negotiated video codec of a description, e.g. ``"VP8"``."""
    for media in SessionDescription.parse(sdp).media:
        if media.kind == "video" and media.port != 0:
            for codec in media.rtp.codecs:
                if codec.name.lower() != "rtx":
                    return codec.name
    return None


class Call:
    """Runs one call; create, ``await start()``, ``await run(...)``, ``await close()``."""

    def __init__(
        self,
        signaling: SignalingClient,
        options: CallOptions,
        sources: Sources | None = None,
        *,
        start: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_chat: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if options.codec is not None and options.codec not in CODECS:
            raise ValueError(f"codec {options.codec!r} is not supported; use one of {CODECS}")
        self.signaling = signaling
        self.options = options
        self.room = options.room
        self.sources = sources or Sources()
        self.clock = clock
        self.stats = CallStats(clock() if start is None else start)
        self.phase = Phase.WAITING
        self.phases: list[Phase] = [Phase.WAITING]
        self.end_reason: str | None = None
        self.connected = asyncio.Event()
        self.first_frame = asyncio.Event()
        self.chat: RTCDataChannel | None = None
        self.chat_open = asyncio.Event()
        self.chat_received: list[dict[str, Any]] = []
        self.on_chat = on_chat
        self.negotiations = 0
        self.inbox = signaling.events
        self.pc: RTCPeerConnection | None = None
        self._pending: list[RTCIceCandidate | None] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._relay = MediaRelay()
        self._recorder: MediaRecorder | None = None
        self._recorder_started = False
        self._tracks_added = False
        self._closed = False

    # -- small helpers -------------------------------------------------------

    def _set_phase(self, phase: Phase) -> None:
        if phase != self.phase:
            log.info("room=%s phase %s -> %s", self.room, self.phase, phase)
            self.phase = phase
            self.phases.append(phase)

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def request_hangup(self, reason: str = "local") -> None:
        """Ask :meth:`run` to hang up (safe from signal handlers and callbacks)."""
        self.inbox.put_nowait(Pushed("local_hangup", {"reason": reason}))

    # -- set-up --------------------------------------------------------------

    def _make_pc(self) -> RTCPeerConnection:
        welcome = self.signaling.welcome
        servers = self.options.ice_servers
        if servers is None:
            servers = welcome.ice_servers if welcome is not None else []
        pc = RTCPeerConnection(configuration=ice_configuration(servers, self.options.relay_only))
        jitter.install(pc)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            self.inbox.put_nowait(Pushed("connection", {"state": pc.connectionState}))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._on_track(track)

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if channel.label == CHAT_LABEL:
                self._attach_chat(channel)

        if self.options.record is not None:
            self._recorder = MediaRecorder(str(self.options.record))
        return pc

    def _on_track(self, track: MediaStreamTrack) -> None:
        log.info("room=%s remote %s track", self.room, track.kind)
        recorder = self._recorder
        if recorder is not None:
            recorder.addTrack(self._relay.subscribe(track, buffered=False))
            track = self._relay.subscribe(track, buffered=False)
        if track.kind == "video":
            sink = VideoSink(track, self.stats, self.options.show_remote, self.clock)
            self._spawn(self._watch_first_frame(sink), "first-frame")
            self._spawn(sink.run(), "video-sink")
        else:
            self._spawn(drain(track), "audio-drain")

    async def _watch_first_frame(self, sink: VideoSink) -> None:
        await sink.first_frame.wait()
        self.first_frame.set()

    def _attach_chat(self, channel: RTCDataChannel) -> None:
        self.chat = channel

        @channel.on("open")
        def on_open() -> None:
            self.chat_open.set()

        @channel.on("message")
        def on_message(raw: Any) -> None:
            msg = parse_chat(raw)
            if msg is None:
                log.warning("room=%s chat: ignored a message that is not chat JSON", self.room)
                return
            self.chat_received.append(msg)
            if self.on_chat is not None:
                self.on_chat(msg)

        if channel.readyState == "open":
            self.chat_open.set()

    def send_chat(self, text: str) -> bool:
        """Send one chat line; False while the channel is not open."""
        if self.chat is None or self.chat.readyState != "open":
            return False
        self.chat.send(json.dumps(chat_message(text, self.options.name)))
        return True

    async def start(self) -> None:
        """Create the connection and make the first signaling move for the role."""
        self.pc = pc = self._make_pc()
        if self.options.role == "caller":
            video, audio = self.sources.video, self.sources.audio
            pc.addTransceiver(video or "video", direction="sendrecv" if video else "recvonly")
            pc.addTransceiver(audio or "audio", direction="sendrecv" if audio else "recvonly")
            self._tracks_added = True
            if self.options.codec:
                prefer_codec(pc, self.options.codec)
            self._attach_chat(pc.createDataChannel(CHAT_LABEL))
            await pc.setLocalDescription(await pc.createOffer())
            ack = await self.signaling.offer(
                self.room, description_to_json(pc.localDescription), private=self.options.private
            )
            await self.signaling.candidate(self.room, None)
            log.info("room=%s offered, held=%s", self.room, ack.get("held"))
        else:
            ack = await self.signaling.join(self.room)
            if ack.get("offer") is not None:
                await self._on_offer(ack["offer"], ack.get("candidates") or [])

    # -- negotiation -----------------------------------------------------------

    async def _on_offer(self, raw: Any, candidates: list[Any]) -> None:
        assert self.pc is not None
        pc = self.pc
        if self.options.role != "answerer":
            log.warning("room=%s caller got an offer; ignored", self.room)
            return
        if self.phase == Phase.WAITING:
            self._set_phase(Phase.CONNECTING)
        await pc.setRemoteDescription(description_from_json(raw, "offer"))
        if not self._tracks_added:
            for track in (self.sources.video, self.sources.audio):
                if track is not None:
                    pc.addTrack(track)
            self._tracks_added = True
        await pc.setLocalDescription(await pc.createAnswer())
        self.negotiations += 1
        await self._remote_described()
        for raw_candidate in candidates:
            await self._on_candidate(raw_candidate)
        await self.signaling.answer(self.room, description_to_json(pc.localDescription))
        await self.signaling.candidate(self.room, None)

    async def _on_answer(self, raw: Any) -> None:
        assert self.pc is not None
        if self.options.role != "caller":
            log.warning("room=%s answerer got an answer; ignored", self.room)
            return
        if self.phase == Phase.WAITING:
            self._set_phase(Phase.CONNECTING)
        await self.pc.setRemoteDescription(description_from_json(raw, "answer"))
        self.negotiations += 1
        await self._remote_described()

    async def _remote_described(self) -> None:
        assert self.pc is not None and self.pc.remoteDescription is not None
        self.stats.codec = video_codec(self.pc.remoteDescription.sdp)
        if self._recorder is not None and not self._recorder_started:
            self._recorder_started = True
            await self._recorder.start()
        pending, self._pending = self._pending, []
        for candidate in pending:
            await self._add_candidate(candidate)

    async def _on_candidate(self, raw: Any) -> None:
        assert self.pc is not None
        try:
            candidate = candidate_from_json(raw)
        except PeerError as exc:
            log.warning("room=%s %s", self.room, exc)
            return
        if self.pc.remoteDescription is None:
            self._pending.append(candidate)
        else:
            await self._add_candidate(candidate)

    async def _add_candidate(self, candidate: RTCIceCandidate | None) -> None:
        assert self.pc is not None
        if candidate is not None and candidate.ip.endswith(".local"):
            # aioice resolves mDNS names for up to 1 s each; do not hold up the inbox
            self._spawn(self.pc.addIceCandidate(candidate), "mdns-candidate")
        else:
            await self.pc.addIceCandidate(candidate)

    async def renegotiate(self) -> None:
        """Caller only: send a fresh offer (the answerer answers it in :meth:`run`)."""
        assert self.pc is not None and self.options.role == "caller"
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.signaling.offer(
            self.room, description_to_json(self.pc.localDescription), private=self.options.private
        )
        await self.signaling.candidate(self.room, None)

    # -- the loop --------------------------------------------------------------

    def _on_connection(self, state: str) -> None:
        log.info("room=%s connection state %s", self.room, state)
        if state == "connecting" and self.phase == Phase.WAITING:
            self._set_phase(Phase.CONNECTING)
        elif state == "connected" and self.phase != Phase.ENDED:
            self._set_phase(Phase.CONNECTED)
            self.stats.on_connected(self.clock())
            self.connected.set()
            self._spawn(self._poll_stats(), "stats")
        elif state == "failed":
            raise MediaError("the media connection failed (ICE/DTLS): no usable route to the peer")

    async def run(self, connect_timeout: float = 30.0, duration: float | None = None) -> str:
        """Handle events until the call ends; return why it ended.

        Raises :class:`CallTimeout` when it is not connected ``timeout`` seconds
        after start, :class:`MediaError` when the connection fails and
        :class:`HubUnreachable` when the hub goes away before it connects.
        """
        deadline = self.stats.start + connect_timeout
        hangup_at: float | None = None
        while True:
            now = self.clock()
            if self.connected.is_set():
                if duration is not None and hangup_at is None:
                    assert self.stats.connected_at is not None
                    hangup_at = self.stats.connected_at + duration
                wait = None if hangup_at is None else hangup_at - now
            else:
                wait = deadline - now
            if wait is not None and wait <= 0:
                if self.connected.is_set():
                    await self.hangup("duration")
                    return "duration"
                raise CallTimeout(self._timeout_message(connect_timeout))
            try:
                item = await asyncio.wait_for(self.inbox.get(), wait)
            except TimeoutError:
                continue
            reason = await self._handle(item)
            if reason is not None:
                return reason

    def _timeout_message(self, timeout: float) -> str:
        if self.phase == Phase.WAITING:
            other = "answerer" if self.options.role == "caller" else "caller"
            return f"no {other} came to room {self.room!r} within {timeout:g} s (--timeout)"
        return f"the call in room {self.room!r} did not connect within {timeout:g} s (--timeout)"

    async def _handle(self, item: Pushed) -> str | None:
        """Apply one inbox item; return an end reason when the call is over."""
        payload = item.payload
        if item.event in ("offer", "answer", "candidate", "hangup") and (
            payload.get("room") != self.room
        ):
            return None
        if item.event == "offer":
            await self._on_offer(payload.get("description"), payload.get("candidates") or [])
        elif item.event == "answer":
            await self._on_answer(payload.get("description"))
        elif item.event == "candidate":
            await self._on_candidate(payload.get("candidate"))
        elif item.event == "hangup":
            reason = str(payload.get("reason", "hangup"))
            log.info("room=%s remote ended the call: %s", self.room, reason)
            if reason == "expired" and not self.connected.is_set():
                raise CallTimeout(f"room {self.room!r} expired on the hub before anyone came")
            self._set_phase(Phase.ENDED)
            self.end_reason = reason
            return reason
        elif item.event == "connection":
            self._on_connection(str(payload.get("state")))
        elif item.event == "local_hangup":
            reason = str(payload.get("reason", "local"))
            await self.hangup(reason)
            return reason
        elif item.event == "disconnect":
            if not self.connected.is_set():
                raise HubUnreachable(
                    f"lost the hub at {self.signaling.url} before the call connected"
                )
            log.warning("room=%s lost the hub; the call goes on without signaling", self.room)
        return None

    async def hangup(self, reason: str = "local") -> None:
        """Tell the other side (best effort) and mark the call ended."""
        if self.phase == Phase.ENDED:
            return
        self._set_phase(Phase.ENDED)
        self.end_reason = reason
        with contextlib.suppress(PeerError):
            await self.signaling.hangup(self.room)

    # -- stats ------------------------------------------------------------------

    async def _poll_stats(self) -> None:
        while self.pc is not None and not self._closed:
            await self.collect_stats()
            await asyncio.sleep(STATS_INTERVAL)

    async def collect_stats(self) -> None:
        """Fold one ``getStats()`` report into :attr:`stats` (bytes in, rtt)."""
        if self.pc is None or self._closed:
            return
        report = await self.pc.getStats()
        inbound: int | None = None
        reported: int | None = None
        for item in report.values():
            if getattr(item, "kind", None) != "video":
                continue
            if item.type == "inbound-rtp" and hasattr(item, "bytesReceived"):
                inbound = (inbound or 0) + item.bytesReceived
            elif item.type == "remote-outbound-rtp":
                reported = (reported or 0) + item.bytesSent
            elif item.type == "remote-inbound-rtp" and item.roundTripTime is not None:
                self.stats.on_rtt(item.roundTripTime * 1000)
        # aiortc's inbound-rtp has no byte count; the sender's reports (RTCP SR) do
        received = inbound if inbound is not None else reported
        if received is not None:
            self.stats.on_bytes(self.clock(), received)

    # -- shutdown -----------------------------------------------------------------

    async def close(self) -> None:
        """Release everything: sinks, recorder, connection, sources. Idempotent."""
        if self._closed:
            return
        if self.pc is not None and self.connected.is_set():
            with contextlib.suppress(Exception):
                await self.collect_stats()
        self._closed = True
        self._set_phase(Phase.ENDED)
        if self._recorder is not None and self._recorder_started:
            try:
                await self._recorder.stop()
            except Exception as exc:  # a broken file must not hide the call's outcome
                log.warning("room=%s recorder: %s", self.room, exc)
        if self.pc is not None:
            await self.pc.close()
        self.sources.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
