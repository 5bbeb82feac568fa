"""The ``testsrc`` picture and its stamp: a frame counter and send time in pixels.

The stamp is a band of big black/white luma cells across the top of the frame
(``COLS`` x ``ROWS`` cells, each ``width // COLS`` pixels square): 32 bits of
frame counter, 32 bits of wall-clock milliseconds (``time.time()`` mod 2**32,
so two processes on one machine can measure glass-to-glass latency) and a
16-bit CRC. Cells that size survive VP8/H.264 at call bitrates; a frame whose
cells do not read back with a matching CRC decodes to ``None``. Pure numpy, no
I/O: the media tracks in :mod:`peer.media` pace and wrap these arrays.
"""

from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass

import numpy as np

COLS = 20
ROWS = 4
BITS = COLS * ROWS  # 80 = 32 counter + 32 ms + 16 crc
BLACK = 16
WHITE = 235
MIN_CELL = 8


@dataclass(frozen=True, slots=True)
class Stamp:
    counter: int
    ms: int


def cell_size(width: int) -> int:
    return width // COLS


def band_height(width: int) -> int:
    """Rows of the frame the stamp occupies (the pattern starts below)."""
    return cell_size(width) * ROWS


def check_size(width: int, height: int) -> None:
    """Reject sizes too small to carry a readable stamp or odd for yuv420p."""
    if width % 2 or height % 2:
        raise ValueError(f"size {width}x{height}: width and height must be even")
    if cell_size(width) < MIN_CELL or band_height(width) >= height:
        raise ValueError(
            f"size {width}x{height} is too small for the testsrc stamp; "
            f"use at least {COLS * MIN_CELL}x{ROWS * MIN_CELL + 2}"
        )


def _bits(stamp: Stamp) -> np.ndarray:
    body = struct.pack(">II", stamp.counter & 0xFFFFFFFF, stamp.ms & 0xFFFFFFFF)
    data = body + struct.pack(">H", binascii.crc_hqx(body, 0xFFFF))
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8))


def draw_stamp(luma: np.ndarray, stamp: Stamp) -> None:
    """Write ``stamp`` into the top band of a 2-D uint8 luma plane, in place."""
    cell = cell_size(luma.shape[1])
    grid = np.where(_bits(stamp).reshape(ROWS, COLS), WHITE, BLACK).astype(np.uint8)
    band = np.repeat(np.repeat(grid, cell, axis=0), cell, axis=1)
    luma[: band.shape[0], : band.shape[1]] = band
    luma[: band.shape[0], band.shape[1] :] = BLACK


def read_stamp(luma: np.ndarray) -> Stamp | None:
    """Read the stamp from a 2-D uint8 luma (or gray) image; ``None`` if unreadable."""
    if luma.ndim != 2:
        return None
    cell = cell_size(luma.shape[1])
    if cell < MIN_CELL or luma.shape[0] < cell * ROWS:
        return None
    band = luma[: cell * ROWS, : cell * COLS].astype(np.uint16)
    cells = band.reshape(ROWS, cell, COLS, cell)
    inner = cells[:, cell // 4 : cell - cell // 4, :, cell // 4 : cell - cell // 4]
    bits = inner.mean(axis=(1, 3)) > (BLACK + WHITE) / 2
    data = np.packbits(bits.reshape(-1).astype(np.uint8)).tobytes()
    if binascii.crc_hqx(data[:8], 0xFFFF) != struct.unpack(">H", data[8:])[0]:
        return None
    counter, ms = struct.unpack(">II", data[:8])
    return Stamp(counter, ms)


class Pattern:
    """Moving bars plus a stamp, as yuv420p arrays ready for ``av.VideoFrame``."""

    def __init__(self, width: int, height: int) -> None:
        check_size(width, height)
        self.width, self.height = width, height
        x = np.arange(2 * width)
        bars = (60 + 140 * ((x // max(width // 8, 1)) % 2) + (x % 64)).astype(np.uint8)
        self._luma = np.tile(bars, (height, 1))
        hx = np.arange(width // 2)
        u = (128 + 90 * np.sin(hx / max(width // 2, 1) * 2 * np.pi)).astype(np.uint8)
        v = (128 + 90 * np.cos(hx / max(width // 2, 1) * 2 * np.pi)).astype(np.uint8)
        self._u = np.tile(u, (height // 2, 1))
        self._v = np.tile(v, (height // 2, 1))
        band = band_height(width)
        self._u[: band // 2] = 128
        self._v[: band // 2] = 128

    def frame(self, counter: int, ms: int) -> np.ndarray:
        """The yuv420p picture for frame ``counter``, stamped with ``ms``."""
        w, h = self.width, self.height
        out = np.empty((h * 3 // 2, w), dtype=np.uint8)
        shift = (counter * 4) % w
        out[:h] = self._luma[:, shift : shift + w]
        draw_stamp(out[:h], Stamp(counter, ms))
        out[h : h + h // 4] = self._u.reshape(h // 4, w)
        out[h + h // 4 :] = self._v.reshape(h // 4, w)
        return out
