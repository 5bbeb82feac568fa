"""How this project launches Debian's Chromium headless: one recipe for tests and benchmarks.

The background-networking flags keep Chromium from reaching for Google's hosts on a
machine with no network; the fake-UI flag grants camera and microphone without a prompt.
Callers add their own ``--use-fake-device-for-media-stream`` variant.
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
BASE_FLAGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
)
