"""Sinks for received media: a counting sink, the window's frame slot, a recorder.

Nothing here queues frames: the window (:mod:`peer.display`) is fed through
:class:`LatestFrame`, a one-slot holder that a slow display simply overwrites,
and the recorder reads a non-buffered :class:`~aiortc.contrib.media.MediaRelay`
subscription, which keeps only the newest frame.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from .media import wall_ms
from .stats import CallStats
from .testsrc import Stamp, band_height, read_stamp

log = logging.getLogger(__name__)


class LatestFrame:
    """A thread-safe one-slot holder: ``put`` replaces, ``take`` empties."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._frame: av.VideoFrame | None = None
        self.dropped = 0

    def put(self, frame: av.VideoFrame) -> None:
        with self._lock:
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame

    def take(self) -> av.VideoFrame | None:
        with self._lock:
            frame, self._frame = self._frame, None
            return frame


def frame_stamp(frame: av.VideoFrame) -> Stamp | None:
    """Read a testsrc stamp straight from the luma plane (no colour conversion)."""
    width, height = frame.width, frame.height
    rows = min(band_height(width), height)
    luma: np.ndarray
    if frame.format.name in ("yuv420p", "yuvj420p", "nv12"):
        plane = frame.planes[0]
        data = np.frombuffer(memoryview(plane), np.uint8)
        luma = data.reshape(-1, plane.line_size)[:rows, :width]
    else:
        luma = frame.to_ndarray(format="gray")[:rows]
    return read_stamp(luma)


class VideoSink:
    """Consumes a remote video track: counts frames, reads stamps, feeds the window."""

    def __init__(
        self,
        track: MediaStreamTrack,
        stats: CallStats,
        display: LatestFrame | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.track = track
        self.stats = stats
        self.display = display
        self.clock = clock
        self.first_frame = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                frame = await self.track.recv()
            except MediaStreamError:
                return
            assert isinstance(frame, av.VideoFrame)
            self.stats.on_frame(
                self.clock(), frame.width, frame.height, frame_stamp(frame), wall_ms()
            )
            self.first_frame.set()
            if self.display is not None:
                self.display.put(frame)


async def drain(track: MediaStreamTrack) -> None:
    """Consume a track nobody else reads (remote audio without a recorder)."""
    while True:
        try:
            await track.recv()
        except MediaStreamError:
            return
