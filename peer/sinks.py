"""Sinks for received media: a counting sink, an OpenCV window and a recorder.

Nothing here queues frames: the window is fed through :class:`LatestFrame`, a
one-slot holder that a slow display simply overwrites, and the recorder reads a
non-buffered :class:`~aiortc.contrib.media.MediaRelay` subscription, which
keeps only the newest frame.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.mediastreams import MediaStreamError

from .media import wall_ms
from .stats import CallStats
from .testsrc import Stamp, band_height, read_stamp

log = logging.getLogger(__name__)

RECORD_FORMATS = (".mp4", ".webm", ".mkv")
WINDOW = "p2pcall"
PREVIEW_SCALE = 4  # the local preview is 1/4 of the window width


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


class Display(threading.Thread):
    """The ``--show`` window: remote video with a small local preview in a corner.

    All OpenCV GUI calls happen on this one thread; frames are converted to BGR
    here too, so the event loop only ever swaps a reference.
    """

    def __init__(self, remote: LatestFrame, local: LatestFrame | None, title: str = WINDOW):
        super().__init__(name="display", daemon=True)
        self.remote = remote
        self.local = local
        self.title = title
        self.stopped = threading.Event()
        self.closed_by_user = threading.Event()
        self.shown = 0

    def run(self) -> None:
        cv2.namedWindow(self.title, cv2.WINDOW_AUTOSIZE | cv2.WINDOW_GUI_NORMAL)
        cv2.moveWindow(self.title, 0, 0)
        canvas: np.ndarray | None = None
        preview: np.ndarray | None = None
        try:
            while not self.stopped.is_set():
                changed = False
                frame = self.remote.take()
                if frame is not None:
                    canvas = frame.to_ndarray(format="bgr24")
                    changed = True
                if self.local is not None and (mine := self.local.take()) is not None:
                    preview = mine.to_ndarray(format="bgr24")
                    changed = True
                if changed:
                    cv2.imshow(self.title, self._compose(canvas, preview))
                    self.shown += 1
                if cv2.waitKey(10) in (27, ord("q")):
                    self.closed_by_user.set()
        finally:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)

    @staticmethod
    def _compose(canvas: np.ndarray | None, preview: np.ndarray | None) -> np.ndarray:
        if canvas is None:
            canvas = np.zeros((240, 320, 3), np.uint8)
            cv2.putText(canvas, "waiting for video", (20, 120), 0, 0.6, (255, 255, 255))
        else:
            canvas = canvas.copy()
        if preview is not None:
            height, width = canvas.shape[:2]
            pw = max(width // PREVIEW_SCALE, 2)
            ph = max(pw * preview.shape[0] // preview.shape[1], 2)
            if ph < height:
                small = cv2.resize(preview, (pw, ph), interpolation=cv2.INTER_AREA)
                canvas[height - ph :, width - pw :] = small
        return canvas

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)


def check_record_path(path: str) -> Path:
    """``--record`` must name an mp4, webm or mkv file in an existing folder."""
    target = Path(path)
    if target.suffix.lower() not in RECORD_FORMATS:
        raise ValueError(
            f"--record: {path!r} has no supported extension; use one of "
            + ", ".join(RECORD_FORMATS)
        )
    if not target.parent.is_dir():
        raise ValueError(f"--record: folder {str(target.parent)!r} does not exist")
    return target
