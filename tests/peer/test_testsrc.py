"""The testsrc stamp survives lossy coding and refuses to misread noise."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from peer.testsrc import Pattern, Stamp, band_height, check_size, read_stamp


def luma_of(pattern: Pattern, counter: int, ms: int) -> np.ndarray:
    return pattern.frame(counter, ms)[: pattern.height]


@given(counter=st.integers(0, 2**32 - 1), ms=st.integers(0, 2**32 - 1))
def test_round_trip_any_value(counter: int, ms: int) -> None:
    assert read_stamp(luma_of(Pattern(320, 240), counter, ms)) == Stamp(counter, ms)


@pytest.mark.parametrize("size", [(320, 240), (640, 480), (1280, 720)])
def test_survives_jpeg_quality_30_and_blur(size: tuple[int, int]) -> None:
    pattern = Pattern(*size)
    for counter in (0, 1, 77, 2**31 + 5):
        luma = luma_of(pattern, counter, 123_456_789)
        ok, jpeg = cv2.imencode(".jpg", luma, [cv2.IMWRITE_JPEG_QUALITY, 30])
        assert ok
        decoded = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)
        assert decoded is not None
        degraded = cv2.GaussianBlur(decoded, (5, 5), 1.5)
        assert read_stamp(degraded) == Stamp(counter, 123_456_789)


def test_survives_downscale_and_back() -> None:
    luma = luma_of(Pattern(640, 480), 4242, 99)
    small = cv2.resize(luma, (320, 240), interpolation=cv2.INTER_AREA)
    assert read_stamp(cv2.resize(small, (640, 480))) == Stamp(4242, 99)


def test_bgr_screenshot_reads_through_gray() -> None:
    yuv = Pattern(320, 240).frame(5, 6)
    bgr = cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR_I420)
    assert read_stamp(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)) == Stamp(5, 6)


def test_unreadable_pictures_give_none() -> None:
    rng = np.random.default_rng(1)
    assert read_stamp(np.full((240, 320), 128, np.uint8)) is None
    assert read_stamp(np.zeros((240, 320), np.uint8)) is None
    noise = [read_stamp(rng.integers(0, 256, (240, 320), dtype=np.uint8)) for _ in range(50)]
    assert noise.count(None) >= 49
    assert read_stamp(np.zeros((10, 100), np.uint8)) is None  # too small to hold a stamp
    assert read_stamp(np.zeros((240, 320, 3), np.uint8)) is None  # not a luma plane


def test_one_flipped_cell_is_caught() -> None:
    luma = luma_of(Pattern(320, 240), 10, 20).copy()
    cell = 320 // 20
    luma[:cell, :cell] = 255 - luma[:cell, :cell]
    assert read_stamp(luma) is None


def test_pattern_moves_below_the_band() -> None:
    pattern = Pattern(320, 240)
    band = band_height(320)
    a, b = luma_of(pattern, 1, 0)[band:], luma_of(pattern, 2, 0)[band:]
    assert not np.array_equal(a, b)


@pytest.mark.parametrize(
    ("size", "needle"), [((100, 100), "too small"), ((321, 240), "even"), ((320, 60), "too small")]
)
def test_bad_sizes_are_refused(size: tuple[int, int], needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        check_size(*size)
