"""Media paths end to end: recording, webcam capture fed by a file, the --show window."""

from __future__ import annotations

import asyncio
import wave
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from peer.media import CaptureSource, Sources, open_sources
from peer.sinks import frame_stamp
from peer.testsrc import Pattern, Stamp, read_stamp
from tests.conftest import RunningHub

from .cli_run import finish, start_cli
from .pair import run_both, side
from .xvfb import xvfb

FILE_FRAMES = 100


def write_stamped_video(path: Path, frames: int = FILE_FRAMES, fps: int = 20) -> None:
    """An MJPG .avi of stamped testsrc pictures, counters 0..frames-1."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (320, 240))
    assert writer.isOpened(), "OpenCV cannot write MJPG/avi"
    pattern = Pattern(320, 240)
    for n in range(frames):
        writer.write(cv2.cvtColor(pattern.frame(n, 0), cv2.COLOR_YUV2BGR_I420))
    writer.release()


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".mp4", ".webm", ".mkv"])
async def test_recording_opens_and_holds_frames(
    hub: RunningHub, artifacts_dir: Path, suffix: str
) -> None:
    path = artifacts_dir / f"remote{suffix}"
    async with (
        side(hub.url, "caller", "rec", codec="vp8", audio="tone", record=path) as caller,
        side(hub.url, "answerer", "rec", audio="tone") as answerer,
    ):
        await run_both(caller, answerer, "caller", seconds=2)
        received = caller.call.stats.frames_received
    assert path.stat().st_size > 0
    with av.open(str(path)) as container:
        video = container.streams.video[0]
        assert container.streams.audio, "the remote tone was not recorded"
        frames = [f for f in container.decode(video) if isinstance(f, av.VideoFrame)]
    assert len(frames) >= min(10, received)
    assert {(f.width, f.height) for f in frames} == {(320, 240)}
    stamps = [frame_stamp(f) for f in frames]
    assert sum(s is not None for s in stamps) >= len(frames) // 2  # the pattern survived


@pytest.mark.slow
async def test_webcam_path_and_video_file_through_opencv(hub: RunningHub, tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    write_stamped_video(clip)
    caller_src = await open_sources(f"webcam:{clip}", "none", (320, 240), 30)
    answerer_src = await open_sources(str(clip), "none", (320, 240), 30)
    assert isinstance(caller_src.video, CaptureSource)
    assert isinstance(answerer_src.video, CaptureSource) and answerer_src.video.grabber.loop_file
    async with (
        side(hub.url, "caller", "cam", sources=caller_src) as caller,
        side(hub.url, "answerer", "cam", sources=answerer_src) as answerer,
    ):
        await run_both(caller, answerer, "answerer", seconds=2)
        for s in (caller, answerer):
            stats = s.call.stats
            assert stats.frames_received >= 5
            assert stats.frames_stamped >= 0.9 * stats.frames_received
            assert stats.last_counter is not None and stats.last_counter < FILE_FRAMES
            assert (stats.width, stats.height) == (320, 240)


async def test_capture_source_rejects_what_opencv_cannot_open(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-video.avi"
    bogus.write_text("hello")
    with pytest.raises(Exception, match="cannot open video source"):
        await open_sources(f"webcam:{bogus}", "none", (320, 240), 30)


async def test_capture_resizes_to_the_chosen_size(tmp_path: Path) -> None:
    clip = tmp_path / "clip.avi"
    write_stamped_video(clip, frames=10)
    sources: Sources = await open_sources(str(clip), "none", (640, 480), 30)
    try:
        assert sources.video is not None
        frame = await asyncio.wait_for(sources.video.recv(), 10)
        assert isinstance(frame, av.VideoFrame)
        assert (frame.width, frame.height) == (640, 480)
        assert read_stamp(frame.to_ndarray(format="gray")) is not None
    finally:
        sources.stop()


def find_stamp(screen: np.ndarray) -> Stamp | None:
    gray = cv2.cvtColor(screen, cv2.COLOR_BGR2GRAY)
    for y in range(0, 64, 2):
        for x in range(0, 16, 2):
            stamp = read_stamp(gray[y : y + 240, x : x + 320])
            if stamp is not None:
                return stamp
    return None


@pytest.mark.slow
@pytest.mark.timeout(180)
async def test_show_window_under_xvfb(hub: RunningHub, tmp_path: Path, artifacts_dir: Path) -> None:
    with xvfb(tmp_path) as screen:
        proc = await start_cli(
            "--server", hub.url, "--room", "show", "--role", "caller", "--show",
            "--size", "320x240", "--fps", "20", "--duration", "30",
            env={"DISPLAY": screen.display},
        )  # fmt: skip
        try:
            async with side(hub.url, "answerer", "show") as answerer:
                await answerer.call.start()
                run = asyncio.create_task(answerer.call.run(connect_timeout=60))
                seen: Stamp | None = None
                async with asyncio.timeout(60):
                    while seen is None:
                        assert not run.done(), run.result()
                        await asyncio.sleep(0.2)
                        shot = screen.grab()
                        seen = find_stamp(shot)
                cv2.imwrite(str(artifacts_dir / "show.png"), shot)
                sent = answerer.call.sources.video
                assert sent is not None and 0 <= seen.counter < sent.count  # type: ignore[attr-defined]
                corner = shot[240 - 40 : 240, 320 - 60 : 320]
                assert corner.std() > 5, "no local preview in the window corner"
                proc.send_signal(2)  # Ctrl-C: a clean hangup reaches the other side
                assert await asyncio.wait_for(run, 20) == "hangup"
        finally:
            done = await finish(proc, 30)
    assert done.code == 0, done.stderr
    assert "call ended (interrupted)" in done.stderr


async def test_audio_file_and_tone_sources(tmp_path: Path) -> None:
    wav = tmp_path / "beep.wav"
    with wave.open(str(wav), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        t = np.arange(48000) / 48000
        out.writeframes((8000 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes())
    for spec in (str(wav), "tone"):
        sources = await open_sources("none", spec, (320, 240), 30)
        try:
            assert sources.video is None and sources.audio is not None
            frame = await asyncio.wait_for(sources.audio.recv(), 10)
            assert isinstance(frame, av.AudioFrame) and frame.samples > 0
            assert np.abs(frame.to_ndarray()).max() > 1000  # a tone, not silence
        finally:
            sources.stop()
