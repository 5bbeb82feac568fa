"""A private Xvfb display whose framebuffer is readable as a file (``-fbdir``).

Xvfb keeps its screen in an XWD-format file we can read at any moment, so a
screenshot needs no extra X client.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

INSTALL = "Xvfb is missing: install it with `sudo apt-get install xvfb` (or `make sysdeps`)"


@dataclass
class Screen:
    display: str
    fbdir: Path

    def grab(self) -> np.ndarray:
        """The whole screen as a BGR image."""
        return read_xwd((self.fbdir / "Xvfb_screen0").read_bytes())


def read_xwd(data: bytes) -> np.ndarray:
    """Decode a 24/32-bit ZPixmap XWD dump (Xvfb's framebuffer) into BGR."""
    fields = struct.unpack(">25I", data[:100])
    header_size, width, height = fields[0], fields[4], fields[5]
    bits_per_pixel, bytes_per_line, ncolors = fields[11], fields[12], fields[19]
    if bits_per_pixel != 32:
        raise ValueError(f"expected a 32 bpp framebuffer, got {bits_per_pixel}")
    offset = header_size + ncolors * 12
    pixels = np.frombuffer(data, np.uint8, count=bytes_per_line * height, offset=offset)
    rows = pixels.reshape(height, bytes_per_line)[:, : width * 4].reshape(height, width, 4)
    if fields[7] == 0:  # LSBFirst: bytes are B, G, R, X
        return rows[:, :, :3].copy()
    return rows[:, :, 1:][:, :, ::-1].copy()


@contextmanager
def xvfb(workdir: Path, size: str = "800x600") -> Iterator[Screen]:
    binary = shutil.which("Xvfb")
    if binary is None:
        raise AssertionError(INSTALL)
    fbdir = workdir / "fb"
    fbdir.mkdir(exist_ok=True)
    for number in range(90, 190):
        if Path(f"/tmp/.X{number}-lock").exists() or Path(f"/tmp/.X11-unix/X{number}").exists():
            continue
        proc = subprocess.Popen(
            [binary, f":{number}", "-screen", "0", f"{size}x24", "-fbdir", str(fbdir),
             "-nolisten", "tcp"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        socket = Path(f"/tmp/.X11-unix/X{number}")
        deadline = time.monotonic() + 10
        while proc.poll() is None and not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        if proc.poll() is None and socket.exists():
            try:
                yield Screen(f":{number}", fbdir)
            finally:
                proc.terminate()
                proc.wait(10)
            return
        proc.kill()
        proc.wait(10)
    raise AssertionError("no free X display number in :90-:189 for Xvfb")
