"""One call: an ``RTCPeerConnection`` driven through the hub as caller or answerer.

The call is a state machine. Its phase is one of :class:`Phase`; everything that can
change it (hub events, connection-state changes, a local hang-up, the loss of the hub)
is a typed event of :mod:`peer.events` in one ordered inbox, handled by :meth:`Call.run`
one at a time with a ``match``, so the order of offer, answer and candidates is the
order they arrived. Phase changes are logged ``old -> new``; a change the machine does
not allow raises :class:`~peer.errors.CallStateError` naming both phases.

aiortc gathers its candidates inside ``setLocalDescription``: this side sends one
complete description, then ``null`` (end-of-candidates). The other side's candidates,
trickled or inside its description, go through :class:`peer.remote_ice.RemoteIce`.
As answerer, the offer is first split by :mod:`peer.negotiation`: m-sections this
peer cannot use are rejected in the answer, the rest is answered.
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
    RTCSessionDescription,
)
from aiortc.contrib.media import MediaRecorder, MediaRelay
from aiortc.mediastreams import MediaStreamTrack
from aiortc.sdp import SessionDescription

from . import aiortc_seam, jitter, sdp
from .config import CODECS, Role
from .errors import (
    CallStateError,
    CallTimeout,
    DtlsFailed,
    HubUnreachable,
    IceFailed,
    MediaError,
    NegotiationFailed,
    PeerError,
    SessionLost,
    SignalingError,
)
from .events import (
    AnswerArrived,
    CallEvent,
    CandidateArrived,
    ConnectionChanged,
    HangupRequested,
    HubLost,
    HubReconnecting,
    HubResumed,
    OfferArrived,
    PeerAway,
    PeerBack,
    RemoteHangup,
    SessionGone,
    describe,
    from_hub,
)
from .media import Sources, wall_ms
from .negotiation import AnswerPlan, plan_answer
from .protocol import HangupReason, description_from_json, description_to_json, parse_candidate
from .remote_ice import RemoteIce
from .signaling import Pushed, SignalingClient
from .sinks import LatestFrame, VideoSink, drain
from .stats import CallStats, selected_pair
from .turn import TurnChoice, choose_turn, for_aiortc, turn_urls, usable_by_aiortc

log = logging.getLogger(__name__)

CHAT_LABEL = "chat"
STATS_INTERVAL = 1.0
# Silence on the media path, in seconds, after which its close reads as the other side
# vanishing rather than hanging up: a live call carries RTCP every 0.5-1.5 s (RFC 3550
# section 6.2) and a hang-up's DTLS close_notify is itself a packet in, while aiortc
# reports ICE consent expiry (RFC 7675: ~30 s without an answer) as ``closed`` too.
MEDIA_SILENCE = 5.0


class SignalingState(StrEnum):
    """The hub link as the call sees it; the media does not depend on it once connected."""

    UP = "up"
    RECONNECTING = "reconnecting"
    RESUMED = "resumed"
    LOST = "lost"  # the hub could not resume the session: no renegotiation any more


SIGNALING_WORDS = {
    SignalingState.UP: "",
    SignalingState.RECONNECTING: "signaling reconnecting",
    SignalingState.RESUMED: "signaling resumed",
    SignalingState.LOST: "signaling lost, call goes on without the hub",
}


class Phase(StrEnum):
    """Where a call is: waiting for the other party, connecting media, connected, ended."""

    WAITING = "waiting"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    ENDED = "ended"


# the phase changes the machine allows; renegotiation keeps a call CONNECTED
NEXT_PHASES: dict[Phase, frozenset[Phase]] = {
    Phase.WAITING: frozenset({Phase.CONNECTING, Phase.CONNECTED, Phase.ENDED}),
    Phase.CONNECTING: frozenset({Phase.CONNECTED, Phase.ENDED}),
    Phase.CONNECTED: frozenset({Phase.ENDED}),
    Phase.ENDED: frozenset(),
}


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
    # resolve the other side's ``<uuid>.local`` candidates by multicast DNS (aioice);
    # off, they are dropped without a query on the network
    resolve_mdns: bool = True


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
    """Put ``codec`` first on every video transceiver; the other codecs (and RTX) follow."""
    wanted = f"video/{codec}".lower()
    capabilities = RTCRtpSender.getCapabilities("video")
    caps = capabilities.codecs if capabilities is not None else []
    chosen = [c for c in caps if c.mimeType.lower() == wanted]
    others = [c for c in caps if c.mimeType.lower() != wanted]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(chosen + others)


def video_codec(text: str) -> str | None:
    """The first video codec of a description, e.g. ``"VP8"``: in an answer, the one used.

    Both aiortc peers send with the first codec of the answer's m-section, which lists
    the common codecs in the order of the offer as the answerer ordered it.
    """
    for media in SessionDescription.parse(text).media:
        if media.kind == "video" and media.port != 0 and media.direction != "inactive":
            for codec in media.rtp.codecs:
                if codec.name.lower() != "rtx":
                    return codec.name
    return None


class Call:
    """Runs one call; create, ``await start()``, ``await run(...)``, ``await close()``.

    The signaling client must be connected: the peer connection is created here, once,
    with the hub's ICE servers, and lives as long as the call.
    """

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
        self.not_sent: list[str] = []
        self._said_not_sent: set[str] = set()
        self.rejected: list[str] = []
        self.signaling_state = SignalingState.UP
        self.signaling_states: list[SignalingState] = [SignalingState.UP]
        self.peer_away = False
        # the hub ended the other side's session (``peer_left``) while the media was up
        self.peer_gone = False
        self.inbox: asyncio.Queue[CallEvent] = asyncio.Queue()
        self.turn = TurnChoice(None)
        self._tasks: set[asyncio.Task[None]] = set()
        self._relay = MediaRelay()
        self._recorder: MediaRecorder | None = None
        self._recorder_started = False
        self._recorded_tracks = 0
        self._tracks_added = False
        self._in_room = False  # the hub took our offer or join: a lost session loses the room
        self._closed = False
        self._offer: sdp.Description | None = None
        welcome = signaling.welcome
        servers = options.ice_servers
        if servers is None:
            servers = welcome.ice_servers if welcome is not None else []
        self._servers = servers = usable_by_aiortc(servers)
        turns = turn_urls(servers)
        # the preferred TURN URL until start() has tried them all (see _choose_turn)
        self._preselected = turns[0] if turns else None
        self.pc = self._make_pc(for_aiortc(servers, self._preselected))
        if options.record is not None:
            self._recorder = MediaRecorder(str(options.record))
        self.remote_ice = RemoteIce(
            self.pc, self.room, self._spawn, resolve_mdns=options.resolve_mdns
        )
        signaling.subscribe(self._from_hub)

    # -- small helpers -------------------------------------------------------

    def _set_phase(self, phase: Phase) -> None:
        if phase == self.phase:
            return
        if phase not in NEXT_PHASES[self.phase]:
            raise CallStateError(
                f"the call in room {self.room!r} cannot go {self.phase} -> {phase}"
            )
        log.info("room=%s phase %s -> %s", self.room, self.phase, phase)
        self.phase = phase
        self.phases.append(phase)

    def _set_signaling(self, state: SignalingState) -> None:
        if state != self.signaling_state:
            log.info("room=%s signaling %s -> %s", self.room, self.signaling_state, state)
            self.signaling_state = state
            self.signaling_states.append(state)

    @property
    def notes(self) -> list[str]:
        """Words for the status line about the hub link and the other side's link."""
        notes = [SIGNALING_WORDS[self.signaling_state]]
        if self.peer_gone:
            notes.append("other side's signaling gone")
        elif self.peer_away:
            notes.append("other side reconnecting")
        return [n for n in notes if n]

    def _spawn(self, coro: Any, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _from_hub(self, item: Pushed) -> None:
        event = from_hub(item, self.room)
        if event is not None:
            self.inbox.put_nowait(event)

    def request_hangup(self, reason: str = "local") -> None:
        """Ask :meth:`run` to hang up (safe from signal handlers and callbacks)."""
        self.inbox.put_nowait(HangupRequested(reason))

    @property
    def other(self) -> str:
        return "answerer" if self.options.role == "caller" else "caller"

    # -- set-up --------------------------------------------------------------

    async def _choose_turn(self) -> None:
        """Try every TURN URL (aiortc uses only one), and use the first that allocates.

        The connection made in ``__init__`` has the preferred URL; when another one is
        chosen it is replaced by one with that URL (it has gathered nothing yet).
        Raises :class:`MediaError` for ``--relay-only`` when no TURN URL allocates.
        """
        if self._preselected is not None:
            self.turn = await choose_turn(self._servers)
        self.stats.turn_url = self.turn.chosen.url if self.turn.chosen else None
        if self.options.relay_only and self.turn.chosen is None:
            if self.turn.failures:
                raise MediaError(
                    "--relay-only: no TURN server is usable: " + "; ".join(self.turn.failures)
                )
            raise MediaError(
                "--relay-only: the hub handed out no TURN server (start it with --turn-secret "
                "and --turn-url, or give --ice-server turn:...)"
            )
        if self.turn.chosen != self._preselected:
            old, old_ice = self.pc, self.remote_ice
            old.remove_all_listeners()  # its "closed" state is no event of this call
            old_ice.close()
            await old.close()
            self.pc = self._make_pc(for_aiortc(self._servers, self.turn.chosen))
            self.remote_ice = RemoteIce(
                self.pc, self.room, self._spawn, resolve_mdns=self.options.resolve_mdns
            )

    def _make_pc(self, servers: list[dict[str, Any]]) -> RTCPeerConnection:
        pc = RTCPeerConnection(configuration=ice_configuration(servers, self.options.relay_only))
        jitter.install(pc)
        aiortc_seam.widen_dtls_ciphers(pc)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            self.inbox.put_nowait(ConnectionChanged(pc.connectionState))

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._on_track(track)

        @pc.on("datachannel")
        def on_datachannel(channel: RTCDataChannel) -> None:
            if channel.label == CHAT_LABEL:
                self._attach_chat(channel)

        return pc

    def _on_track(self, track: MediaStreamTrack) -> None:
        log.info("room=%s remote %s track", self.room, track.kind)
        recorder = self._recorder
        if recorder is not None:
            self._recorded_tracks += 1
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
        """Make the first signaling move for the role: offer (caller) or join (answerer)."""
        if self.phase != Phase.WAITING or self.pc.signalingState != "stable":
            raise CallStateError(
                f"start() is for a new call; the call in room {self.room!r} is {self.phase}"
            )
        await self._choose_turn()
        pc = self.pc
        if self.options.role == "caller":
            video, audio = self.sources.video, self.sources.audio
            pc.addTransceiver(video or "video", direction="sendrecv" if video else "recvonly")
            pc.addTransceiver(audio or "audio", direction="sendrecv" if audio else "recvonly")
            self._tracks_added = True
            if self.options.codec:
                prefer_codec(pc, self.options.codec)
            self._attach_chat(pc.createDataChannel(CHAT_LABEL))
            await self._send_offer()
        else:
            ack = await self.signaling.join(self.room)
            self._in_room = True
            if ack.get("offer") is not None:
                await self._on_offer(ack["offer"], list(ack.get("candidates") or []))

    async def _send_offer(self) -> None:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        local = self.pc.localDescription
        self._offer = sdp.split(local.sdp)
        ack = await self.signaling.offer(
            self.room, description_to_json(local), private=self.options.private
        )
        self._in_room = True
        await self.signaling.candidate(self.room, None)
        log.info("room=%s offered, held=%s", self.room, ack.get("held"))

    # -- negotiation -----------------------------------------------------------

    async def _on_offer(self, raw: Any, candidates: list[Any]) -> None:
        if self.options.role != "answerer":
            log.warning("room=%s caller got an offer; ignored", self.room)
            return
        if self.phase == Phase.WAITING:
            self._set_phase(Phase.CONNECTING)
        offer = sdp.split(description_from_json(raw, "offer").sdp)
        plan = plan_answer(offer, self.room, self.options.codec)
        self.rejected = [r.section.describe() for r in plan.rejected]
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(plan.aiortc_offer, "offer"))
        except Exception as exc:  # aiortc raises OperationError/ValueError with its own words
            raise NegotiationFailed(
                f"could not apply the caller's offer in room {self.room!r} "
                f"({', '.join(s.describe() for s in plan.kept)}): {exc}"
            ) from None
        self._add_sources(plan)
        try:
            await self.pc.setLocalDescription(await self.pc.createAnswer())
        except Exception as exc:
            raise NegotiationFailed(
                f"could not answer the offer in room {self.room!r}: {exc}"
            ) from None
        answer = sdp.with_rejected(
            self.pc.localDescription.sdp, offer, [r.section for r in plan.rejected]
        )
        self.negotiations += 1
        self.stats.codec = video_codec(answer)
        await self._remote_described(offer)
        for raw_candidate in candidates:
            await self._on_candidate(raw_candidate)
        await self.signaling.answer(self.room, {"type": "answer", "sdp": answer})
        await self.signaling.candidate(self.room, None)

    def _add_sources(self, plan: AnswerPlan) -> None:
        """Send each source on the offered m-section of its kind; name those not sent.

        Every offer is looked at, so a re-offer that adds a kind gets our source of that
        kind; a source not sent is named once per reason.
        """
        if self._tracks_added:  # the caller added its sources at start
            return
        sending = {sender.track for sender in self.pc.getSenders() if sender.track is not None}
        reasons: list[str] = []
        not_sent: list[str] = []
        for track in (self.sources.video, self.sources.audio):
            if track is None or track in sending:
                continue
            kind = track.kind
            if kind not in plan.kinds():
                reason = f"{kind} (the offer has no usable {kind} m-section)"
            elif not plan.receives(kind):
                state = "is inactive" if plan.inactive(kind) else "only sends"
                reason = f"{kind} (the offer's {kind} m-section {state})"
            else:
                self.pc.addTrack(track)
                if self.negotiations:
                    log.info(
                        "room=%s the re-offer has an m-section for our %s: sending it",
                        self.room,
                        kind,
                    )
                continue
            not_sent.append(kind)
            if reason not in self._said_not_sent:
                self._said_not_sent.add(reason)
                reasons.append(reason)
        self.not_sent = not_sent
        if reasons:
            log.warning("room=%s not sending %s", self.room, "; ".join(reasons))

    async def _on_answer(self, raw: Any) -> None:
        if self.options.role != "caller":
            log.warning("room=%s answerer got an answer; ignored", self.room)
            return
        if self.pc.signalingState != "have-local-offer":
            log.warning("room=%s answer without an offer pending; ignored", self.room)
            return
        if self.phase == Phase.WAITING:
            self._set_phase(Phase.CONNECTING)
        answer = sdp.split(description_from_json(raw, "answer").sdp)
        local = self.pc.localDescription
        assert local is not None  # have-local-offer
        try:
            aiortc_answer, rejects = sdp.applicable_answer(answer, sdp.split(local.sdp))
            await self.pc.setRemoteDescription(RTCSessionDescription(aiortc_answer, "answer"))
        except Exception as exc:
            raise NegotiationFailed(
                f"could not apply the answerer's answer in room {self.room!r}: "
                f"{exc or type(exc).__name__}"
            ) from None
        if rejects:
            self.rejected = [s.describe() for s in rejects]
            log.warning(
                "room=%s the answerer rejected %s; nothing is sent or received there",
                self.room,
                ", ".join(self.rejected),
            )
        self.negotiations += 1
        self.stats.codec = video_codec(aiortc_answer)
        await self._remote_described(answer)

    async def _remote_described(self, description: sdp.Description) -> None:
        if self._recorder is not None and not self._recorder_started:
            self._recorder_started = True
            await self._recorder.start()
            if not self._recorded_tracks:
                log.warning(
                    "room=%s --record: the %s sends no audio or video; nothing is written to %s",
                    self.room,
                    self.other,
                    self.options.record,
                )
        await self.remote_ice.described(description)

    async def _on_candidate(self, raw: Any) -> None:
        try:
            candidate = parse_candidate(raw)
        except PeerError as exc:
            log.warning("room=%s %s", self.room, exc)
            return
        await self.remote_ice.add(candidate)

    async def renegotiate(self) -> None:
        """Caller only: send a fresh offer (the answerer answers it in :meth:`run`)."""
        if self.options.role != "caller" or self.phase == Phase.ENDED:
            raise CallStateError(
                f"renegotiate() is for a caller whose call is on; in room {self.room!r} "
                f"this is the {self.options.role}, in phase {self.phase}"
            )
        await self._send_offer()

    # -- the loop --------------------------------------------------------------

    async def _on_connection(self, state: str) -> str | None:
        """Follow the connection state; return an end reason when it ends the call.

        Once the call is connected the media path no longer needs the hub, so its end is
        read here too, whether or not signaling is up (e.g. after a hub restart):
        ``failed`` is a media failure; ``closed`` is a hang-up (the other side closed
        DTLS) unless nothing came in for ``MEDIA_SILENCE`` seconds before it: then the
        transport died under the call (the other side vanished) and the call failed.
        """
        log.info("room=%s connection state %s", self.room, state)
        match state:
            case "closed" if self.phase == Phase.CONNECTED and not self._closed:
                with contextlib.suppress(Exception):  # a closing pc may refuse getStats
                    await self.collect_stats()
                if self.stats.silence(self.clock()) > MEDIA_SILENCE:
                    raise self._lost_after_connected("closed")
                log.warning(
                    "room=%s the %s closed the media connection: it hung up (%s)",
                    self.room,
                    self.other,
                    SIGNALING_WORDS[self.signaling_state] or "signaling up",
                )
                self._set_phase(Phase.ENDED)
                self.end_reason = str(HangupReason.HANGUP)
                return self.end_reason
            case "failed" if self.phase == Phase.CONNECTED:
                raise self._lost_after_connected("failed")
            case "connecting" if self.phase == Phase.WAITING:
                self._set_phase(Phase.CONNECTING)
            case "connected" if self.phase in (Phase.WAITING, Phase.CONNECTING):
                self._set_phase(Phase.CONNECTED)
                self.stats.on_connected(self.clock())
                self._log_pair()
                self.connected.set()
                self._spawn(self._poll_stats(), "stats")
            case "failed":
                raise self._failure()
        return None

    def _lost_after_connected(self, state: str) -> MediaError:
        """End the call as a media failure: the media path died under a connected call."""
        self._set_phase(Phase.ENDED)
        self.end_reason = "failed"
        if self.peer_gone:
            why = f"the {self.other} is gone: the hub had already ended its session"
        elif self.peer_away:
            why = f"the {self.other} is gone: its signaling had dropped first"
        else:
            why = f"the {self.other} vanished or the network between us went away"
        silence = self.stats.silence(self.clock())
        return MediaError(
            f"the media connection with the {self.other} in room {self.room!r} "
            f"{state} after the call was connected, nothing received for {silence:.0f} s: "
            f"ICE {self.pc.iceConnectionState}, {self.remote_ice.summary()} ({why})"
        )

    def _log_pair(self) -> None:
        self.stats.pair = pair = selected_pair(self.pc)
        if pair is not None:
            log.info(
                "room=%s selected pair %s -> %s (%s -> %s)",
                self.room,
                pair["local"],
                pair["remote"],
                pair["local_address"],
                pair["remote_address"],
            )

    def _route_note(self) -> str:
        """What our side had to reach the peer with, and why TURN was not among it."""
        local = sorted({c.type for c in self._local_candidates()})
        text = f"no route to the peer (local candidates: {', '.join(local) or 'none'})"
        if self.turn.failures and self.turn.chosen is None:
            text += "; " + "; ".join(self.turn.failures)
        elif self.turn.chosen is None and "relay" not in local:
            text += "; no TURN relay was given (hub --turn-secret/--turn-url)"
        return text

    def _local_candidates(self) -> list[RTCIceCandidate]:
        out: list[RTCIceCandidate] = []
        for transceiver in self.pc.getTransceivers():
            dtls = transceiver.receiver.transport
            if dtls is not None:  # bundled: every transceiver shares one ICE gatherer
                out.extend(dtls.transport.iceGatherer.getLocalCandidates())
        return out

    def _failure(self) -> MediaError:
        """Say in words which part of the media connection failed."""
        transports = ", ".join(self._media_sections()) or "no m-section"
        if self.pc.iceConnectionState == "failed":
            return IceFailed(
                f"ICE failed in room {self.room!r}: no candidate pair between us and the "
                f"{self.other} worked ({self.remote_ice.summary()}; media: {transports}); "
                + self._route_note()
            )
        return DtlsFailed(
            f"DTLS handshake with the {self.other} failed in room {self.room!r} after ICE "
            f"connected: {self._dtls_reason()} (media: {transports})"
        )

    def _dtls_reason(self) -> str:
        """Why DTLS failed: the certificate's fingerprint, or no suite in common."""
        transports = [t.receiver.transport for t in self.pc.getTransceivers()]
        if self.pc.sctp is not None:
            transports.append(self.pc.sctp.transport)
        failed = [t for t in transports if t.state == "failed"] or transports
        digest = next((d for t in failed if (d := aiortc_seam.dtls_peer_digest(t))), None)
        if digest is None:
            return "no cipher suite or certificate both accept"
        remote = self.pc.remoteDescription
        said = sorted(
            {
                line.split()[1].upper()
                for line in (remote.sdp.splitlines() if remote is not None else [])
                if line.lower().startswith("a=fingerprint:sha-256 ") and len(line.split()) > 1
            }
        )
        if digest not in said:
            return (
                f"the {self.other}'s certificate (sha-256 {digest}) does not match the "
                f"a=fingerprint of its description (sha-256 {', '.join(said) or 'none'})"
            )
        return "no SRTP protection profile in common"

    def _media_sections(self) -> list[str]:
        described = self._offer if self.options.role == "caller" else self.remote_ice.description
        if described is None:
            return []
        return [s.describe() for s in described.sections if s.describe() not in self.rejected]

    async def run(self, connect_timeout: float = 30.0, duration: float | None = None) -> str:
        """Handle events until the call ends; return why it ended.

        Raises :class:`CallTimeout` when it is not connected ``timeout`` seconds
        after start, :class:`IceFailed` / :class:`DtlsFailed` /
        :class:`NegotiationFailed` (all :class:`MediaError`) when the media
        connection cannot be made, and :class:`HubUnreachable` when the hub goes away
        before it connects.
        """
        deadline = self.stats.start + connect_timeout
        hangup_at: float | None = None
        while True:
            now = self.clock()
            if self.connected.is_set():
                if duration is not None and hangup_at is None:
                    connected_at = self.stats.connected_at
                    hangup_at = (now if connected_at is None else connected_at) + duration
                wait = None if hangup_at is None else hangup_at - now
            else:
                wait = deadline - now
            if wait is not None and wait <= 0:
                if self.connected.is_set():
                    await self.hangup("duration")
                    return "duration"
                raise CallTimeout(self._timeout_message(connect_timeout))
            try:
                event = await asyncio.wait_for(self.inbox.get(), wait)
            except TimeoutError:
                continue
            reason = await self._handle(event)
            if reason is not None:
                return reason

    def _timeout_message(self, timeout: float) -> str:
        if self.phase == Phase.WAITING:
            return f"no {self.other} came to room {self.room!r} within {timeout:g} s (--timeout)"
        ice = self.pc.iceConnectionState
        dtls = ""
        if ice in ("connected", "completed"):
            dtls = "; ICE connected but the DTLS handshake did not finish (no DTLS reply)"
        return (
            f"the call in room {self.room!r} did not connect within {timeout:g} s (--timeout): "
            f"ICE {ice}, {self.remote_ice.summary()}{dtls}"
            + ("" if dtls else "; " + self._route_note())
        )

    async def _handle(self, event: CallEvent) -> str | None:
        """Apply one event; return an end reason when the call is over."""
        if self.phase == Phase.ENDED:
            return self.end_reason or "ended"
        try:
            return await self._apply(event)
        except (PeerError, asyncio.CancelledError):
            raise
        except Exception as exc:  # an aiortc failure on the media path: name the step
            raise MediaError(
                f"media set-up failed in room {self.room!r} while handling "
                f"{describe(event)} in phase {self.phase}: {exc}"
            ) from exc

    async def _apply(self, event: CallEvent) -> str | None:
        match event:
            case OfferArrived(description, candidates):
                await self._on_offer(description, list(candidates))
            case AnswerArrived(description):
                await self._on_answer(description)
            case CandidateArrived(candidate):
                await self._on_candidate(candidate)
            case RemoteHangup(reason):
                log.info("room=%s remote ended the call: %s", self.room, reason)
                if reason == HangupReason.EXPIRED and not self.connected.is_set():
                    raise CallTimeout(f"room {self.room!r} expired on the hub before anyone came")
                if reason == HangupReason.PEER_LEFT and self.phase == Phase.CONNECTED:
                    self._on_peer_gone()
                    return None
                if self.phase == Phase.CONNECTING:
                    # the other side gave up while ICE was still checking: a failed call
                    raise MediaError(
                        f"the {self.other} left room {self.room!r} ({reason}) before the call "
                        f"connected: ICE {self.pc.iceConnectionState}; " + self._route_note()
                    )
                self._set_phase(Phase.ENDED)
                self.end_reason = reason
                return reason
            case ConnectionChanged(state):
                return await self._on_connection(state)
            case HangupRequested(reason):
                await self.hangup(reason)
                return reason
            case HubLost():
                if not self.connected.is_set():
                    raise HubUnreachable(
                        f"lost the hub at {self.signaling.url} before the call connected"
                    )
                self._set_signaling(SignalingState.LOST)
                log.warning("room=%s lost the hub; the call goes on without signaling", self.room)
            case HubReconnecting():
                self._set_signaling(SignalingState.RECONNECTING)
            case HubResumed():
                self._set_signaling(SignalingState.RESUMED)
            case SessionGone(reason):
                self._on_session_gone(reason)
            case PeerAway():
                log.info("room=%s the other side's signaling dropped; waiting for it", self.room)
                self.peer_away = True
            case PeerBack():
                log.info("room=%s the other side's signaling is back", self.room)
                self.peer_away = False
        return None

    def _on_peer_gone(self) -> None:
        # ``peer_left`` says the other side's *signaling* ended (it vanished, or its grace
        # ran out while its hub link was down), not that it hung up: a hang-up arrives as
        # ``hangup`` and closes DTLS. Once connected the media path does not need the hub,
        # so the call goes on while media flows; a peer that is really gone fails ICE
        # consent freshness (RFC 7675, ~30 s) and the call ends as a media failure.
        self.peer_gone = True
        self.peer_away = False
        log.warning(
            "room=%s the hub ended the %s's session (peer_left); the media is connected, so "
            "the call goes on until it ends",
            self.room,
            self.other,
        )

    def _on_session_gone(self, reason: str) -> None:
        if not self._in_room:
            log.info("room=%s new hub session before this call used one; nothing lost", self.room)
        elif not self.connected.is_set():
            raise SessionLost(
                f"the hub at {self.signaling.url} lost this call's session ({reason}) "
                "before the call connected",
                reason,
            )
        else:
            self._set_signaling(SignalingState.LOST)
            log.warning(
                "room=%s the hub could not resume the session (%s); the media is connected, "
                "so the call goes on without the hub (no renegotiation)",
                self.room,
                reason,
            )

    async def hangup(self, reason: str = "local") -> None:
        """Tell the other side (best effort) and mark the call ended."""
        if self.phase == Phase.ENDED:
            return
        self._set_phase(Phase.ENDED)
        self.end_reason = reason
        with contextlib.suppress(SignalingError):
            await self.signaling.hangup(self.room)

    # -- stats ------------------------------------------------------------------

    async def _poll_stats(self) -> None:
        while not self._closed:
            await self.collect_stats()
            await asyncio.sleep(STATS_INTERVAL)

    async def collect_stats(self) -> None:
        """Fold one ``getStats()`` report into :attr:`stats` (bytes in, rtt)."""
        if self._closed:
            return
        report = await self.pc.getStats()
        inbound: int | None = None
        reported: int | None = None
        packets = 0
        for item in report.values():
            if item.type == "transport":
                packets += getattr(item, "packetsReceived", 0) or 0
            if getattr(item, "kind", None) != "video":
                continue
            if item.type == "inbound-rtp" and hasattr(item, "bytesReceived"):
                inbound = (inbound or 0) + item.bytesReceived
            elif item.type == "remote-outbound-rtp":
                reported = (reported or 0) + item.bytesSent
            elif item.type == "remote-inbound-rtp" and item.roundTripTime is not None:
                self.stats.on_rtt(item.roundTripTime * 1000)
        # aiortc's inbound-rtp has no byte count; the sender's reports (RTCP SR) do
        self.stats.on_transport_packets(self.clock(), packets)
        self.stats.pair = selected_pair(self.pc) or self.stats.pair
        received = inbound if inbound is not None else reported
        if received is not None:
            self.stats.on_bytes(self.clock(), received)

    # -- shutdown -----------------------------------------------------------------

    async def close(self) -> None:
        """Release everything: sinks, recorder, connection, sources. Idempotent."""
        if self._closed:
            return
        if self.connected.is_set():
            with contextlib.suppress(Exception):
                await self.collect_stats()
        self._closed = True
        self.remote_ice.close()
        if self.phase != Phase.ENDED:
            self._set_phase(Phase.ENDED)
        if self._recorder is not None and self._recorder_started:
            try:
                await self._recorder.stop()
            except Exception as exc:  # a broken file must not hide the call's outcome
                log.warning("room=%s recorder: %s", self.room, exc)
        await self.pc.close()
        self.sources.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
