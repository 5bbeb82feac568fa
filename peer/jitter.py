"""Low-latency video receive path for aiortc: release a frame when it is complete.

Stock aiortc (1.16) reassembles a video frame only once the first packet of the *next*
frame arrives, which holds every frame for one frame interval (~33 ms at 30 fps).
The RTP marker bit already says "this is the last packet of the frame", so
:class:`MarkerJitterBuffer` releases a frame as soon as its packets are contiguous from
the frame's first packet up to the marker packet. Everything else is aiortc's own
buffer: late and duplicate packets are dropped, the capacity overflow and the large
reorder reset still request a PLI, and NACKs are still sent by the receiver.

What is new on loss: a frame with a missing packet is never emitted. The buffer waits
for the retransmission until ``max_wait_frames`` later frames are complete behind
the gap; then it skips the broken frame, releases the next complete one and
requests a PLI so the sender refreshes the picture (stock aiortc would stall until its
512-packet capacity overflowed).

:func:`install` swaps the buffer into a peer connection's video receivers, present and
future, without touching aiortc's classes: other connections in the same process keep
the stock behaviour.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from aiortc import RTCPeerConnection, RTCRtpReceiver, RTCRtpTransceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket
from aiortc.utils import uint16_add

from . import aiortc_seam

log = logging.getLogger(__name__)

__all__ = ["MarkerJitterBuffer", "install", "use_marker_buffer"]

VIDEO_CAPACITY = 512  # aiortc's own video capacity, in packets
MAX_WAIT_FRAMES = 3  # complete frames held behind a gap before the gap is skipped

# aiortc keeps these private (name-mangled); peer.aiortc_seam names and checks them.
_RECEIVER_BUFFER = aiortc_seam.RECEIVER_BUFFER
_RECEIVER_STARTED = aiortc_seam.RECEIVER_STARTED
_PC_CREATE_TRANSCEIVER = aiortc_seam.PC_CREATE_TRANSCEIVER
_INSTALLED = "_p2pcall_marker_jitter"


class _Span(NamedTuple):
    """A complete frame found in the buffer: slot offsets from the origin, end exclusive."""

    start: int
    end: int


class MarkerJitterBuffer(JitterBuffer):
    """aiortc's video :class:`JitterBuffer` that releases a frame on its marker packet.

    A frame is complete when its packets are contiguous from its first packet and the
    last one carries the marker bit (or, as in aiortc, when the next packet in sequence
    has a new timestamp). The frame at the origin starts there; a later frame's start is
    known when the packet before it is present and ends a frame. ``add`` still returns
    at most one frame, so a backlog (after a retransmission fills a gap) drains one frame
    per arriving packet.
    """

    def __init__(self, capacity: int = VIDEO_CAPACITY, max_wait_frames: int = MAX_WAIT_FRAMES):
        if max_wait_frames < 1:
            raise ValueError(f"max_wait_frames must be >= 1, got {max_wait_frames!r}")
        super().__init__(capacity=capacity, is_video=True)
        self._max_wait_frames = max_wait_frames
        self._newest: int | None = None
        self._skipped = False
        self.frames_skipped = 0

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        pli_flag, frame = super().add(packet)
        if self._skipped:
            self._skipped = False
            pli_flag = True
        return pli_flag, frame

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        """Called by ``add`` after storing a packet: release the next frame if ready."""
        origin = self._origin
        assert origin is not None
        newest = self._newest
        if newest is None or uint16_add(newest, -origin) >= self._capacity:
            newest = sequence_number  # buffer was empty or just reset
        elif uint16_add(sequence_number, -origin) > uint16_add(newest, -origin):
            newest = sequence_number
        self._newest = newest
        length = uint16_add(newest, -origin) + 1

        waiting: list[_Span] = []
        for span in self._complete_frames(length):
            if span.start == 0:
                return self._take(span)
            waiting.append(span)
            if len(waiting) >= self._max_wait_frames:
                # The head frame lost a packet that did not come back in time.
                skip = waiting[0]
                log.debug(
                    "skipping %d packets of an incomplete frame at seq %d",
                    skip.start,
                    origin,
                )
                self.remove(skip.start)
                self._skipped = True
                self.frames_skipped += 1
                return self._take(_Span(0, skip.end - skip.start))
        return None

    def _complete_frames(self, length: int) -> Iterator[_Span]:
        """Yield complete frames in order among the first ``length`` slots."""
        assert self._origin is not None
        start: int | None = 0  # offset of the current frame's first packet, None if broken
        prev: RtpPacket | None = None
        for offset in range(length):
            packet = self._packets[(self._origin + offset) % self._capacity]
            if packet is None:
                start, prev = None, None
                continue
            if offset == 0:
                start = 0
            elif prev is not None and prev.timestamp != packet.timestamp:
                if start is not None and not prev.marker:
                    yield _Span(start, offset)  # aiortc's rule: a new timestamp ends it
                start = offset
            elif prev is not None and prev.marker:
                start = offset
            elif prev is None:
                start = None  # follows a gap: cannot tell where its frame began
            if packet.marker and start is not None:
                yield _Span(start, offset + 1)
                start = None
            prev = packet

    def _take(self, span: _Span) -> JitterFrame:
        """Remove the frame at the origin (``span.start == 0``) and return it."""
        assert self._origin is not None
        packets = [
            self._packets[(self._origin + offset) % self._capacity] for offset in range(span.end)
        ]
        frame = JitterFrame(
            data=b"".join(p._data for p in packets),  # type: ignore[union-attr]
            timestamp=packets[0].timestamp,  # type: ignore[union-attr]
        )
        self.remove(span.end)
        return frame


def use_marker_buffer(receiver: RTCRtpReceiver, max_wait_frames: int = MAX_WAIT_FRAMES) -> bool:
    """Give a video receiver that has not started yet a :class:`MarkerJitterBuffer`.

    Returns False (and leaves the stock buffer) when the receiver already receives
    or aiortc's internals are not the ones this module knows.
    """
    current = getattr(receiver, _RECEIVER_BUFFER, None)
    if isinstance(current, MarkerJitterBuffer):
        return True
    started = getattr(receiver, _RECEIVER_STARTED, None)
    if (
        not isinstance(current, JitterBuffer)
        or not getattr(current, "_is_video", False)
        or not isinstance(started, bool)
    ):
        log.warning("receiver %#x: unknown aiortc receiver internals, keeping them", id(receiver))
        return False
    if started:
        log.warning("receiver %#x: already receiving, keeping the stock buffer", id(receiver))
        return False
    setattr(receiver, _RECEIVER_BUFFER, MarkerJitterBuffer(current.capacity, max_wait_frames))
    return True


def install(pc: RTCPeerConnection) -> None:
    """Make ``pc``'s video receivers release a frame as soon as it is complete.

    Call it right after constructing the connection. Transceivers that aiortc creates
    later (``addTrack``, ``addTransceiver``, ``setRemoteDescription``) are patched as
    they are made; only this ``pc`` is affected.
    """
    if getattr(pc, _INSTALLED, False) or not aiortc_seam.hooks_enabled():
        return
    create: Callable[..., RTCRtpTransceiver] | None = getattr(pc, _PC_CREATE_TRANSCEIVER, None)
    if create is None:
        log.warning(
            "pc %#x: aiortc has no %s, keeping stock buffers", id(pc), _PC_CREATE_TRANSCEIVER
        )
        return

    def create_transceiver(*args: Any, **kwargs: Any) -> RTCRtpTransceiver:
        transceiver = create(*args, **kwargs)
        if transceiver.kind == "video":
            use_marker_buffer(transceiver.receiver)
        return transceiver

    setattr(pc, _PC_CREATE_TRANSCEIVER, create_transceiver)
    setattr(pc, _INSTALLED, True)
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "video":
            use_marker_buffer(transceiver.receiver)
