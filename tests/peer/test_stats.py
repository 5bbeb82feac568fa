"""The pure stats accumulator: loss from counter gaps, latency percentiles, rates."""

from __future__ import annotations

import pytest

from peer.stats import CallStats, percentile
from peer.testsrc import Stamp


def test_percentile() -> None:
    assert percentile([], 50) is None
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(101))), 95) == 95.0


def test_loss_latency_and_fps() -> None:
    s = CallStats(start=100.0)
    s.on_connected(100.5)
    for i, counter in enumerate([10, 11, 12, 15, 16]):  # 13 and 14 lost
        now = 101.0 + i * 0.1
        latency = s.on_frame(now, 320, 240, Stamp(counter, 1000), 1000 + 20 + i)
        assert latency == 20 + i
    s.on_frame(101.5, 320, 240, None, 0)  # unstamped frames count but carry no latency
    out = s.summary()
    assert out["connected_ms"] == 500.0
    assert out["first_frame_ms"] == 1000.0
    assert out["frames_received"] == 6
    assert out["frames_stamped"] == 5
    assert out["frames_lost"] == 2
    assert out["fps"] == 10.0
    assert out["latency_ms"] == {"p50": 22.0, "p95": 23.8}
    assert out["video"] == {"width": 320, "height": 240, "codec": None}


def test_counter_and_clock_wrap() -> None:
    s = CallStats(start=0.0)
    s.on_frame(1.0, 8, 8, Stamp(2**32 - 2, 2**32 - 5), 3)  # receive clock wrapped
    s.on_frame(1.1, 8, 8, Stamp(2**32 - 1, 2**32 - 4), 4)
    s.on_frame(1.2, 8, 8, Stamp(1, 0), 10)  # counter wrapped, 0 lost
    assert s.frames_lost == 1
    assert s.latencies_ms == [8.0, 8.0, 10.0]


def test_reordered_or_duplicate_frames_are_not_loss() -> None:
    s = CallStats(start=0.0)
    for counter in (1, 2, 4, 3, 4, 5):
        s.on_frame(1.0, 8, 8, Stamp(counter, 0), 0)
    assert s.frames_lost == 1
    assert s.last_counter == 5


def test_stamp_from_the_future_gives_no_latency() -> None:
    s = CallStats(start=0.0)
    assert s.on_frame(1.0, 8, 8, Stamp(1, 5000), 4000) is None
    assert s.summary()["latency_ms"] == {"p50": None, "p95": None}


def test_bitrate_and_rtt() -> None:
    s = CallStats(start=0.0)
    s.on_bytes(1.0, 0)
    s.on_bytes(2.0, 62_500)
    s.on_bytes(3.0, 125_000)
    s.on_rtt(1.234)
    out = s.summary()
    assert out["bitrate_kbps"] == 500.0
    assert out["rtt_ms"] == 1.2
    assert s.live()["kbps"] == 500.0


def test_repeated_byte_counts_are_not_new_readings() -> None:
    s = CallStats(start=0.0)
    s.on_bytes(1.0, 40_000)
    s.on_bytes(2.0, 40_000)  # no new sender report since the last poll
    assert s.summary()["bitrate_kbps"] is None and s.live()["kbps"] is None
    s.on_bytes(3.0, 90_000)
    assert s.summary()["bitrate_kbps"] == 200.0


def test_empty_summary_is_all_null() -> None:
    out = CallStats(start=0.0).summary()
    assert out["connected_ms"] is None and out["first_frame_ms"] is None
    assert out["frames_received"] == 0 and out["fps"] is None and out["frames_lost"] is None
    assert out["bitrate_kbps"] is None and out["rtt_ms"] is None


def test_status_line_says_what_signaling_is_doing() -> None:
    from peer.call import Phase
    from peer.status import format_status

    live: dict[str, float | None] = {"fps": 30.0, "kbps": 500.0, "latency_ms": None}
    assert format_status(Phase.CONNECTED, "caller", live) == "connected | 30.0 fps | 500 kbps"
    assert (
        format_status(Phase.CONNECTED, "caller", live, ["signaling reconnecting"])
        == "connected | 30.0 fps | 500 kbps | signaling reconnecting"
    )
    assert format_status(Phase.WAITING, "caller", {}, ["signaling resumed"]) == (
        "waiting for answerer | signaling resumed"
    )


def test_live_figures_go_stale_when_the_media_stops() -> None:
    s = CallStats(start=0.0)
    for i in range(31):  # one second of 30 fps, each frame stamped 8 ms before it arrives
        s.on_frame(10.0 + i / 30, 320, 240, Stamp(i, 1000 + i * 33), 1008 + i * 33)
    s.on_bytes(10.0, 0)
    s.on_bytes(11.0, 62_500)
    live = s.live(11.0)
    assert live["fps"] == pytest.approx(30.0) and live["kbps"] == 500.0
    assert live["latency_ms"] == 8.0
    later = s.live(11.0 + 2.5)  # no frame for longer than the window
    assert later["fps"] == 0.0 and later["kbps"] == 500.0 and later["latency_ms"] is None
    assert s.live(11.0 + 4.5)["kbps"] is None  # no sender report for two windows
