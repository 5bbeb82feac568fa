"""Two plain RTCPeerConnections in one process sending stamped ``testsrc`` both ways.

This is the reference of the media benchmark: stock aiortc in the same configuration
as the CLI peers (loopback, no ICE servers, one video codec, video only), with the same
stamped source and the same measuring sink. ``--jitter marker`` applies
:func:`peer.jitter.install` to both connections, which isolates what the receive
buffer alone changes. Run as a child process of :mod:`bench.media`:

    python -m bench.media_pair --size 640x480 --codec vp8 --duration 20 \
        --spawned-at UNIX_MS --out -
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender

SourceFactory = Callable[[int, int, float], MediaStreamTrack]

CODECS = {"vp8": "video/VP8", "h264": "video/H264"}
CONNECT_TIMEOUT = 30.0


def stamped_source(width: int, height: int, fps: float) -> MediaStreamTrack:
    """The peer's stamped ``testsrc`` track (imported late: it pulls in OpenCV)."""
    from peer.media import TestSource

    return TestSource(width, height, fps)


def prefer(pc: RTCPeerConnection, mime: str) -> None:
    """Offer only ``mime`` on every video transceiver of ``pc``."""
    capabilities = RTCRtpSender.getCapabilities("video")
    assert capabilities is not None
    codecs = [c for c in capabilities.codecs if c.mimeType.lower() == mime.lower()]
    for transceiver in pc.getTransceivers():
        transceiver.setCodecPreferences(codecs)


async def wait_connected(pc: RTCPeerConnection) -> None:
    done = asyncio.get_running_loop().create_future()

    @pc.on("connectionstatechange")
    def changed() -> None:
        if pc.connectionState == "connected" and not done.done():
            done.set_result(None)
        elif pc.connectionState == "failed" and not done.done():
            done.set_exception(RuntimeError("ICE/DTLS failed on loopback"))

    if pc.connectionState != "connected":
        await asyncio.wait_for(done, CONNECT_TIMEOUT)


async def run_pair(
    width: int,
    height: int,
    fps: float,
    codec: str,
    duration: float,
    *,
    marker: bool = False,
    make_source: SourceFactory = stamped_source,
    wall0: float | None = None,
) -> dict[str, Any]:
    """Call for ``duration`` s after connecting; return each receiver's stats summary.

    ``wall0`` (unix seconds) is when the process was spawned; each summary then carries
    ``first_frame_from_spawn_ms``.
    """
    from peer.jitter import install
    from peer.sinks import VideoSink
    from peer.stats import CallStats

    mono0 = time.monotonic()
    wall_at_mono0 = time.time()
    config = RTCConfiguration(iceServers=[])
    caller, answerer = RTCPeerConnection(config), RTCPeerConnection(config)
    pcs = {"caller": caller, "answerer": answerer}
    if marker:
        for pc in pcs.values():
            install(pc)
    sinks: dict[str, VideoSink] = {}
    tasks: list[asyncio.Task[None]] = []

    def on_track_of(name: str) -> Callable[[MediaStreamTrack], None]:
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "video":
                sink = VideoSink(track, CallStats(start=mono0))
                sink.stats.codec = codec
                sinks[name] = sink
                tasks.append(asyncio.ensure_future(sink.run()))

        return on_track

    try:
        for name, pc in pcs.items():
            pc.on("track", on_track_of(name))
        caller.addTransceiver(make_source(width, height, fps), direction="sendrecv")
        prefer(caller, CODECS[codec])
        await caller.setLocalDescription(await caller.createOffer())
        await answerer.setRemoteDescription(caller.localDescription)
        answerer.addTrack(make_source(width, height, fps))
        await answerer.setLocalDescription(await answerer.createAnswer())
        await caller.setRemoteDescription(answerer.localDescription)
        await asyncio.gather(wait_connected(caller), wait_connected(answerer))
        for sink in sinks.values():
            sink.stats.on_connected(time.monotonic())
        await asyncio.sleep(duration)
    finally:
        for pc in pcs.values():
            await pc.close()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    result: dict[str, Any] = {}
    for name, sink in sinks.items():
        summary = sink.stats.summary()
        first = sink.stats.first_frame_at
        if wall0 is not None and first is not None:
            summary["first_frame_from_spawn_ms"] = round(
                (wall_at_mono0 + (first - mono0) - wall0) * 1000, 1
            )
        result[name] = summary
    return result


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r}: expected WxH, e.g. 640x480") from None
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.media_pair", description=__doc__)
    parser.add_argument("--size", type=parse_size, default=(640, 480), help="WxH")
    parser.add_argument("--fps", type=float, default=30.0, help="frames per second")
    parser.add_argument("--codec", choices=sorted(CODECS), default="vp8", help="video codec")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds after connect")
    parser.add_argument(
        "--jitter", choices=("stock", "marker"), default="stock", help="receive buffer"
    )
    parser.add_argument(
        "--spawned-at", type=float, default=None, help="unix ms when the parent spawned us"
    )
    parser.add_argument("--out", default="-", help="JSON result file, '-' for stdout")
    args = parser.parse_args(argv)
    width, height = args.size
    result = asyncio.run(
        run_pair(
            width,
            height,
            args.fps,
            args.codec,
            args.duration,
            marker=args.jitter == "marker",
            wall0=None if args.spawned_at is None else args.spawned_at / 1000,
        )
    )
    text = json.dumps(result)
    if args.out == "-":
        print(text, flush=True)
    else:
        with open(args.out, "w") as out:
            out.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
