"""Per-address guards at the hub's edge, and a warning that cannot flood the log.

Pure bookkeeping: no sockets, no clock read inside (``now`` is passed in). The
hub asks before it accepts (a connection, a token try) and tells when it ends.
Every table is bounded: entries go when their count drops to zero or their
window ends, and a table that is full refuses rather than grows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

MAX_TRACKED_ADDRESSES = 100_000  # far above any real client count; bounds a spoofing flood


def subtract(counts: dict[str, int], key: str, amount: int) -> None:
    """``counts[key] -= amount``, dropping the entry at zero so tables never keep dead keys."""
    left = counts.get(key, 0) - amount
    if left > 0:
        counts[key] = left
    else:
        counts.pop(key, None)


class AddressCounter:
    """How many of something each client address holds, against a cap (0: no cap)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._count: dict[str, int] = {}

    def acquire(self, address: str) -> bool:
        """Count one more for ``address``; False (nothing counted) when at the cap."""
        held = self._count.get(address, 0)
        if self.limit and held >= self.limit:
            return False
        if not held and len(self._count) >= MAX_TRACKED_ADDRESSES:
            return False
        self._count[address] = held + 1
        return True

    def release(self, address: str) -> None:
        subtract(self._count, address, 1)

    def __getitem__(self, address: str) -> int:
        return self._count.get(address, 0)

    def __len__(self) -> int:
        return len(self._count)


@dataclass(slots=True)
class _Window:
    start: float
    failures: int


class TokenThrottle:
    """Wrong access tokens per address: after ``max_failures`` within ``window`` seconds,
    that address is refused until its window ends (online guessing then runs at
    ``max_failures / window`` tries per second per address)."""

    def __init__(self, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self._windows: dict[str, _Window] = {}

    def wait(self, address: str, now: float) -> float:
        """Seconds ``address`` must wait before its next try; 0 when it may try now."""
        w = self._windows.get(address)
        if w is None:
            return 0.0
        if now - w.start >= self.window:
            del self._windows[address]
            return 0.0
        return self.window - (now - w.start) if w.failures >= self.max_failures else 0.0

    def failed(self, address: str, now: float) -> None:
        w = self._windows.get(address)
        if w is None or now - w.start >= self.window:
            if len(self._windows) >= MAX_TRACKED_ADDRESSES:
                self.sweep(now)
            self._windows[address] = _Window(now, 1)
        else:
            w.failures += 1

    def sweep(self, now: float) -> None:
        """Forget windows that have ended."""
        for address in [a for a, w in self._windows.items() if now - w.start >= self.window]:
            del self._windows[address]

    def __len__(self) -> int:
        return len(self._windows)


class RateLimitedWarning:
    """At most one log line per ``kind`` every ``interval`` seconds; the next line
    says how many were suppressed in between. For faults a client can repeat at
    will (malformed packets, shed connections), so the log stays readable.

    Kinds come partly from what clients sent (the first words of a library's
    message), so kinds whose interval has passed with nothing suppressed are
    forgotten once more than ``PRUNE_AT`` are remembered: the table stays bounded
    by the kinds seen in one interval, and what is logged does not change.
    """

    PRUNE_AT = 256

    def __init__(self, logger: logging.Logger, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warn(self, kind: str, now: float, message: str, *args: object) -> None:
        last = self._last.get(kind)
        if last is not None and now - last < self.interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        if len(self._last) >= self.PRUNE_AT:
            self._prune(now)
        self._last[kind] = now
        skipped = self._suppressed.pop(kind, 0)
        if skipped:
            message += " (and %d more like it since the last such line)"
            args = (*args, skipped)
        self.logger.warning(message, *args)

    def _prune(self, now: float) -> None:
        """Forget kinds that would log anew anyway and owe no suppressed count."""
        for kind in [
            k
            for k, last in self._last.items()
            if now - last >= self.interval and k not in self._suppressed
        ]:
            del self._last[kind]

    def __len__(self) -> int:
        return len(self._last)
