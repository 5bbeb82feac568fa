"""Two real in-process RTCPeerConnections with install(): frames arrive complete and in order.

The source sends a fixed number of frames and then stalls. Stock aiortc never releases
the last of them (it waits for the next frame to start); with the marker-bit buffer every
frame arrives, so the test also proves the release does not wait for a successor.
"""

from __future__ import annotations

import asyncio
from fractions import Fraction

import av
import numpy as np
import pytest
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpSender,
)

from peer.jitter import MarkerJitterBuffer, install

FRAMES = 45
WIDTH, HEIGHT = 320, 240
CLOCK = 90000
STEP = CLOCK // 30


def luma(n: int) -> int:
    """The flat luma level of frame ``n``: neighbours differ by at least 23 levels."""
    return 30 + (n * 23) % 190


class CountedFlatTrack(MediaStreamTrack):
    """Sends ``FRAMES`` flat frames at 30 fps whose level encodes their number, then stalls."""

    kind = "video"

    def __init__(self) -> None:
        super().__init__()
        self.sent = 0
        self.release = asyncio.Event()

    async def recv(self) -> av.VideoFrame:
        if self.sent >= FRAMES:
            await self.release.wait()
            raise asyncio.CancelledError
        if self.sent:
            await asyncio.sleep(1 / 30)
        plane = np.full((HEIGHT * 3 // 2, WIDTH), 128, dtype=np.uint8)
        plane[:HEIGHT] = luma(self.sent)
        frame = av.VideoFrame.from_ndarray(plane, format="yuv420p")
        frame.pts = self.sent * STEP
        frame.time_base = Fraction(1, CLOCK)
        self.sent += 1
        return frame


async def connect(caller: RTCPeerConnection, answerer: RTCPeerConnection) -> None:
    await caller.setLocalDescription(await caller.createOffer())
    await answerer.setRemoteDescription(caller.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    await caller.setRemoteDescription(answerer.localDescription)


@pytest.mark.slow
@pytest.mark.timeout(90)
@pytest.mark.parametrize("codec", ["video/VP8", "video/H264"])
async def test_frames_complete_and_in_order_with_install_on_both_peers(codec: str) -> None:
    config = RTCConfiguration(iceServers=[])
    caller, answerer = RTCPeerConnection(config), RTCPeerConnection(config)
    install(caller)
    install(answerer)
    source = CountedFlatTrack()
    received: asyncio.Queue[av.VideoFrame] = asyncio.Queue()  # video tracks give VideoFrames
    reader: list[asyncio.Task[None]] = []

    @answerer.on("track")
    def on_track(track: MediaStreamTrack) -> None:
        async def read() -> None:
            while True:
                frame = await track.recv()
                assert isinstance(frame, av.VideoFrame)
                received.put_nowait(frame)

        reader.append(asyncio.ensure_future(read()))

    try:
        transceiver = caller.addTransceiver(source, direction="sendonly")
        capabilities = RTCRtpSender.getCapabilities("video")
        assert capabilities is not None
        transceiver.setCodecPreferences([c for c in capabilities.codecs if c.mimeType == codec])
        await connect(caller, answerer)

        buffers = [
            t.receiver._RTCRtpReceiver__jitter_buffer  # type: ignore[attr-defined]
            for pc in (caller, answerer)
            for t in pc.getTransceivers()
        ]
        assert buffers and all(isinstance(b, MarkerJitterBuffer) for b in buffers)

        frames = [await asyncio.wait_for(received.get(), 30) for _ in range(FRAMES)]
    finally:
        source.release.set()
        for task in reader:
            task.cancel()
        await caller.close()
        await answerer.close()

    # pts come back through the 90 kHz RTP clock, rounded by the encoder's time base.
    assert all(f.pts is not None for f in frames)
    assert [round((f.pts or 0) / STEP) for f in frames] == list(range(FRAMES))
    assert {(f.width, f.height) for f in frames} == {(WIDTH, HEIGHT)}
    levels = [float(f.to_ndarray(format="yuv420p")[:HEIGHT].mean()) for f in frames]
    assert [round(level) for level in levels] == pytest.approx(
        [luma(n) for n in range(FRAMES)], abs=4
    )
    assert received.empty()
    assert all(b.frames_skipped == 0 for b in buffers)
