"""Media sources: ``testsrc``, ``webcam[:N]``, video files, ``tone``, audio files.

Every video source is paced by :class:`Pacer` (90 kHz pts from a monotonic
clock, never faster than the chosen fps, never bursting to catch up after a
stall). OpenCV capture runs in a thread that keeps only the newest picture, so
a blocking ``VideoCapture.read()`` never stalls the event loop and a slow
consumer never builds a backlog.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
from aiortc import MediaStreamTrack
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError

from .errors import MediaError
from .testsrc import Pattern

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK)
AUDIO_RATE = 48_000
AUDIO_PTIME = 0.020
OPEN_TIMEOUT = 10.0

Tap = Callable[[av.VideoFrame], None]


def wall_ms() -> int:
    """Wall-clock milliseconds mod 2**32: the clock both peers on one host share."""
    return int(time.time() * 1000) & 0xFFFFFFFF


class Pacer:
    """Hands out send times ``1/fps`` apart and their pts on a 90 kHz clock."""

    def __init__(self, fps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / fps
        self.clock = clock
        self._origin: float | None = None
        self._next = 0.0

    async def wait(self) -> int:
        now = self.clock()
        if self._origin is None:
            self._origin = self._next = now
        delay = self._next - now
        if delay > 0:
            await asyncio.sleep(delay)
        elif delay < -2 * self.interval:
            self._next = now  # fell behind (stalled loop): resume from now, no burst
        due = self._next
        self._next += self.interval
        return round((due - self._origin) * VIDEO_CLOCK)


class TestSource(MediaStreamTrack):
    """The stamped moving pattern of :mod:`peer.testsrc`."""

    kind = "video"

    def __init__(self, width: int, height: int, fps: float, tap: Tap | None = None) -> None:
        super().__init__()
        self.pattern = Pattern(width, height)
        self.pacer = Pacer(fps)
        self.tap = tap
        self.count = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self.pacer.wait()
        frame = av.VideoFrame.from_ndarray(
            self.pattern.frame(self.count, wall_ms()), format="yuv420p"
        )
        frame.pts, frame.time_base = pts, VIDEO_TIME_BASE
        self.count += 1
        if self.tap is not None:
            self.tap(frame)
        return frame


class _Grabber(threading.Thread):
    """Reads a ``cv2.VideoCapture`` in a thread, keeping only the newest picture."""

    def __init__(self, source: int | str, size: tuple[int, int], loop_file: bool) -> None:
        super().__init__(name=f"capture-{source}", daemon=True)
        self.source = source
        self.size = size
        self.loop_file = loop_file
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.latest: np.ndarray | None = None
        self.seq = 0
        self.error: str | None = None
        import cv2  # only webcams and video files need OpenCV; it costs ~0.2 s to load

        self.capture = cv2.VideoCapture(source)
        if not self.capture.isOpened():
            raise MediaError(f"cannot open video source {source!r} with OpenCV")
        file_fps = self.capture.get(cv2.CAP_PROP_FPS) if isinstance(source, str) else 0.0
        # a file is read at its own rate, as a camera would deliver it
        self.file_interval = 1.0 / file_fps if 0 < file_fps < 1000 else 0.0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.fresh = asyncio.Event()

    def run(self) -> None:
        import cv2  # already loaded by __init__

        next_due = time.monotonic()
        try:
            while not self.stopped.is_set():
                ok, image = self.capture.read()
                if not ok:
                    if self.loop_file and self.seq:
                        self.capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
                        continue
                    self.error = f"video source {self.source!r} stopped delivering frames"
                    break
                if (image.shape[1], image.shape[0]) != self.size:
                    image = cv2.resize(image, self.size, interpolation=cv2.INTER_AREA)
                with self.lock:
                    self.latest = image
                    self.seq += 1
                self._notify()
                if self.file_interval:
                    next_due += self.file_interval
                    pause = next_due - time.monotonic()
                    if pause > 0:
                        self.stopped.wait(pause)
                    else:
                        next_due = time.monotonic()
        finally:
            self.capture.release()
            self._notify()

    def _notify(self) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.fresh.set)

    def take(self) -> tuple[int, np.ndarray | None]:
        with self.lock:
            return self.seq, self.latest


class CaptureSource(MediaStreamTrack):
    """A camera (``int`` index or device path) or a video file through OpenCV."""

    kind = "video"

    def __init__(self, grabber: _Grabber, fps: float, tap: Tap | None = None) -> None:
        super().__init__()
        self.grabber = grabber
        self.pacer = Pacer(fps)
        self.tap = tap
        self.sent_seq = 0

    @classmethod
    async def open(
        cls,
        source: int | str,
        size: tuple[int, int],
        fps: float,
        *,
        loop_file: bool = False,
        tap: Tap | None = None,
    ) -> CaptureSource:
        """Open ``source`` off the event loop (a camera may take a second)."""
        grabber = await asyncio.to_thread(_Grabber, source, size, loop_file)
        grabber.loop = asyncio.get_running_loop()
        grabber.start()
        return cls(grabber, fps, tap)

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        pts = await self.pacer.wait()
        while True:
            seq, image = self.grabber.take()
            if image is not None and seq != self.sent_seq:
                break
            if self.grabber.error or not self.grabber.is_alive():
                log.warning("%s", self.grabber.error or "capture thread ended")
                self.stop()
                raise MediaStreamError
            self.grabber.fresh.clear()
            try:
                await asyncio.wait_for(self.grabber.fresh.wait(), OPEN_TIMEOUT)
            except TimeoutError:
                self.grabber.error = f"video source {self.grabber.source!r} gave no frame"
        self.sent_seq = seq
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = pts, VIDEO_TIME_BASE
        if self.tap is not None:
            self.tap(frame)
        return frame

    def stop(self) -> None:
        super().stop()
        self.grabber.stopped.set()


class ToneSource(MediaStreamTrack):
    """A sine tone, 48 kHz mono s16, in 20 ms frames paced by the clock."""

    kind = "audio"

    def __init__(self, frequency: float = 440.0, level: float = 0.2) -> None:
        super().__init__()
        self.frequency = frequency
        self.level = level
        self.samples = int(AUDIO_RATE * AUDIO_PTIME)
        self.pacer = Pacer(1 / AUDIO_PTIME)
        self.sent = 0

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        await self.pacer.wait()
        t = (self.sent + np.arange(self.samples)) / AUDIO_RATE
        wave = (self.level * 32767 * np.sin(2 * math.pi * self.frequency * t)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts, frame.time_base = self.sent, fractions.Fraction(1, AUDIO_RATE)
        self.sent += self.samples
        return frame


class Sources:
    """The tracks a peer sends, and whatever must be closed with them."""

    def __init__(self) -> None:
        self.video: MediaStreamTrack | None = None
        self.audio: MediaStreamTrack | None = None
        self.player: MediaPlayer | None = None

    def stop(self) -> None:
        for track in (self.video, self.audio):
            if track is not None:
                track.stop()


def parse_webcam(spec: str) -> int | str:
    """``webcam`` -> 0, ``webcam:2`` -> 2, ``webcam:/dev/video1`` -> the path."""
    _, _, rest = spec.partition(":")
    if not rest:
        return 0
    return int(rest) if rest.isdigit() else rest


async def open_sources(
    video: str,
    audio: str,
    size: tuple[int, int],
    fps: float,
    tap: Tap | None = None,
) -> Sources:
    """Build the tracks named by ``--video`` and ``--audio`` (already validated)."""
    out = Sources()
    try:
        if video == "testsrc":
            out.video = TestSource(*size, fps, tap=tap)
        elif video == "webcam" or video.startswith("webcam:"):
            out.video = await CaptureSource.open(parse_webcam(video), size, fps, tap=tap)
        elif video != "none":
            out.video = await CaptureSource.open(video, size, fps, loop_file=True, tap=tap)
        if audio == "tone":
            out.audio = ToneSource()
        elif audio != "none":
            try:
                out.player = MediaPlayer(str(Path(audio)), loop=True)
            except (av.FFmpegError, OSError) as exc:
                raise MediaError(f"cannot open audio file {audio!r}: {exc}") from None
            if out.player.audio is None:
                raise MediaError(f"audio file {audio!r} has no audio stream")
            out.audio = out.player.audio
    except BaseException:
        out.stop()
        raise
    return out
