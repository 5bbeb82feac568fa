"""The one-line status on stderr: phase plus live fps, bitrate and latency.

On a terminal the line is rewritten in place (``\\r``); when stderr is a file or
a pipe a full line is written on every phase change and every few seconds, so
logs stay readable.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TextIO

from .call import Call, Phase

PIPE_INTERVAL = 5.0


def phase_text(phase: Phase, role: str) -> str:
    if phase == Phase.WAITING:
        return "waiting for " + ("answerer" if role == "caller" else "caller")
    return str(phase)


def format_status(
    phase: Phase, role: str, live: dict[str, float | None], notes: Sequence[str] = ()
) -> str:
    """``connected | 29.8 fps | 512 kbps | 41 ms | signaling resumed`` (figures when measured)."""
    parts = [phase_text(phase, role)]
    if phase == Phase.CONNECTED:
        fps, kbps, latency = live.get("fps"), live.get("kbps"), live.get("latency_ms")
        parts.append("-- fps" if fps is None else f"{fps:.1f} fps")
        parts.append("-- kbps" if kbps is None else f"{kbps:.0f} kbps")
        if latency is not None:
            parts.append(f"{latency:.0f} ms")
    parts.extend(notes)
    return " | ".join(parts)


class StatusLine:
    """Writes the status of one call to ``stream``; call :meth:`update` periodically."""

    def __init__(self, call: Call, stream: TextIO) -> None:
        self.call = call
        self.stream = stream
        self.tty = stream.isatty()
        self._last_text = ""
        self._last_phase: Phase | None = None
        self._last_notes: list[str] = []
        self._last_at = 0.0

    def update(self) -> None:
        call = self.call
        notes = call.notes
        text = format_status(call.phase, call.options.role, call.stats.live(call.clock()), notes)
        if self.tty:
            pad = max(len(self._last_text) - len(text), 0)
            self.stream.write("\r" + text + " " * pad)
        else:
            now = time.monotonic()
            same = call.phase == self._last_phase and notes == self._last_notes
            if same and now - self._last_at < PIPE_INTERVAL:
                return
            self._last_at = now
            self.stream.write(text + "\n")
        self._last_phase = call.phase
        self._last_notes = notes
        self._last_text = text
        self.stream.flush()

    def finish(self) -> None:
        if self.tty and self._last_text:
            self.stream.write("\n")
            self.stream.flush()
