"""Call statistics: a pure accumulator fed with times and numbers, no clock inside.

The call layer feeds it (frame arrivals, decoded stamps, ``getStats`` byte
counters, round-trip times); :meth:`CallStats.summary` gives the
``--stats-json`` document and :meth:`CallStats.live` the status-line figures.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .testsrc import Stamp

COUNTER_MOD = 1 << 32
LIVE_WINDOW = 2.0  # seconds of history behind the live fps/bitrate figures


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank-interpolated percentile (``q`` in 0..100); ``None`` if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class CallStats:
    """Everything measured about one call; times are seconds on one monotonic clock."""

    start: float
    connected_at: float | None = None
    first_frame_at: float | None = None
    last_frame_at: float | None = None
    frames_received: int = 0
    frames_stamped: int = 0
    frames_lost: int = 0
    last_counter: int | None = None
    width: int | None = None
    height: int | None = None
    codec: str | None = None
    latencies_ms: list[float] = field(default_factory=list)
    rtt_ms: float | None = None
    pair: dict[str, Any] | None = None
    turn_url: str | None = None
    _bytes: deque[tuple[float, int]] = field(default_factory=deque)
    _first_bytes: tuple[float, int] | None = None
    _frame_times: deque[float] = field(default_factory=deque)
    # when the transport's received-packet count (DTLS, SRTP, SRTCP) last grew
    heard_at: float | None = None
    _transport_packets: int | None = None

    def on_connected(self, now: float) -> None:
        if self.connected_at is None:
            self.connected_at = now

    def on_frame(
        self, now: float, width: int, height: int, stamp: Stamp | None, now_ms: int
    ) -> float | None:
        """Count one received frame; return its latency in ms when it is stamped."""
        if self.first_frame_at is None:
            self.first_frame_at = now
        self.last_frame_at = now
        self.frames_received += 1
        self.width, self.height = width, height
        self._frame_times.append(now)
        while self._frame_times and now - self._frame_times[0] > LIVE_WINDOW:
            self._frame_times.popleft()
        if stamp is None:
            return None
        self.frames_stamped += 1
        if self.last_counter is not None:
            gap = (stamp.counter - self.last_counter) % COUNTER_MOD
            if 1 < gap < COUNTER_MOD // 2:
                self.frames_lost += gap - 1
        if self.last_counter is None or 0 < (stamp.counter - self.last_counter) % COUNTER_MOD < (
            COUNTER_MOD // 2
        ):
            self.last_counter = stamp.counter
        latency = float((now_ms - stamp.ms) % COUNTER_MOD)
        if latency < COUNTER_MOD // 2:  # a stamp from the future is a clock we cannot use
            self.latencies_ms.append(latency)
            return latency
        return None

    def on_bytes(self, now: float, bytes_received: int) -> None:
        """Feed the inbound video byte counter (``inbound-rtp`` ``bytesReceived``).

        The count comes from the sender's RTCP reports, which arrive every 0.5-1.5 s
        (RFC 3550 section 6.2), so polls between two reports repeat the last one: a
        repeat is not a new reading, and one report alone gives no rate (``None``),
        never a false 0 kbps.
        """
        if self._bytes and bytes_received == self._bytes[-1][1]:
            return
        if self._first_bytes is None:
            self._first_bytes = (now, bytes_received)
        self._bytes.append((now, bytes_received))
        while len(self._bytes) > 2 and now - self._bytes[0][0] > LIVE_WINDOW:
            self._bytes.popleft()

    def on_transport_packets(self, now: float, packets: int) -> None:
        """Feed the transports' ``packetsReceived`` (all of DTLS, SRTP and SRTCP)."""
        if packets != self._transport_packets:
            self._transport_packets = packets
            self.heard_at = now

    def silence(self, now: float) -> float:
        """Seconds since the media path last carried a packet in (from connection on)."""
        since = self.heard_at if self.heard_at is not None else self.connected_at
        return 0.0 if since is None else max(now - since, 0.0)

    def on_rtt(self, rtt_ms: float) -> None:
        self.rtt_ms = rtt_ms

    @staticmethod
    def _rate(first: tuple[float, int], last: tuple[float, int]) -> float | None:
        span = last[0] - first[0]
        return (last[1] - first[1]) * 8 / 1000 / span if span > 0 else None

    @property
    def fps(self) -> float | None:
        """Frames per second received after the first frame."""
        if self.first_frame_at is None or self.last_frame_at is None:
            return None
        span = self.last_frame_at - self.first_frame_at
        return (self.frames_received - 1) / span if span > 0 else None

    @property
    def bitrate_kbps(self) -> float | None:
        if self._first_bytes is None or not self._bytes:
            return None
        return self._rate(self._first_bytes, self._bytes[-1])

    def live(self, now: float | None = None) -> dict[str, float | None]:
        """Figures over the last ``LIVE_WINDOW`` seconds before ``now``, for the status line.

        ``now`` is the stats clock (default: the newest reading's time). Frames that stop
        read as 0 fps once the window has no frame in it, and a bitrate whose newest
        sender report is more than two windows old reads as unknown (``None``), as does
        the latency once no frame is in the window: a
        status line must not repeat the last good figures under a call whose media died.
        """
        times = self._frame_times
        if now is None:
            now = max([*list(times)[-1:], *[at for at, _ in list(self._bytes)[-1:]]], default=0.0)
        recent_frames = [t for t in times if now - t <= LIVE_WINDOW]
        fps = None
        if times and not recent_frames:
            fps = 0.0
        # under half a second of history, a burst of queued frames reads as a silly rate
        elif len(recent_frames) > 1 and recent_frames[-1] - recent_frames[0] >= 0.5:
            fps = (len(recent_frames) - 1) / (recent_frames[-1] - recent_frames[0])
        kbps = None
        if len(self._bytes) > 1 and now - self._bytes[-1][0] <= 2 * LIVE_WINDOW:
            kbps = self._rate(self._bytes[0], self._bytes[-1])
        # the latency of the last frames, not of frames that stopped arriving
        recent = self.latencies_ms[-30:] if recent_frames else []
        return {
            "fps": fps,
            "kbps": kbps,
            "latency_ms": percentile(recent, 50),
        }

    def summary(self) -> dict[str, Any]:
        """The ``--stats-json`` document; absent measurements are ``null``."""

        def since_start(at: float | None) -> float | None:
            return None if at is None else round((at - self.start) * 1000, 1)

        return {
            "connected_ms": since_start(self.connected_at),
            "first_frame_ms": since_start(self.first_frame_at),
            "frames_received": self.frames_received,
            "frames_stamped": self.frames_stamped,
            "fps": _round(self.fps, 2),
            "frames_lost": self.frames_lost if self.frames_stamped else None,
            "latency_ms": {
                "p50": _round(percentile(self.latencies_ms, 50)),
                "p95": _round(percentile(self.latencies_ms, 95)),
            },
            "video": {"width": self.width, "height": self.height, "codec": self.codec},
            "bitrate_kbps": _round(self.bitrate_kbps),
            "rtt_ms": _round(self.rtt_ms),
            "selected_pair": self.pair,
            "turn_url": self.turn_url,
        }


def selected_pair(pc: Any) -> dict[str, Any] | None:
    """The candidate pair ICE selected: types (host/srflx/prflx/relay) and addresses.

    aiortc's ``getStats()`` has no ``candidate-pair`` entry, so this reads aioice's
    nominated pair (``Connection._nominated``, component 1) through aiortc's ICE
    transport: the one hook on ICE internals, and ``None`` (not a crash) if a
    library update moves it. Same shape as the page's stats panel.
    """
    try:
        transports = {t.receiver.transport.transport for t in pc.getTransceivers()}
        if pc.sctp is not None:
            transports.add(pc.sctp.transport.transport)
        for ice in transports:
            pair = ice._connection._nominated.get(1)
            if pair is not None:
                local, remote = pair.local_candidate, pair.remote_candidate
                return {
                    "local": local.type,
                    "remote": remote.type,
                    "local_address": f"{local.host}:{local.port}",
                    "remote_address": f"{remote.host}:{remote.port}",
                    "protocol": local.transport.lower(),
                }
    except AttributeError:
        return None
    return None
