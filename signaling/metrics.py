"""The hub's Prometheus metrics (``GET /metrics``), through ``prometheus_client``.

One registry per hub (no module globals, so two hubs in one process, as in the
tests, never share counts). Gauges are read from the hub's state when scraped;
counters are bumped by the hub as things happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

# Handling a relayed message takes microseconds; a loaded hub, milliseconds.
RELAY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1.0)


@dataclass(frozen=True)
class Gauges:
    """Where the scrape-time gauges come from."""

    sockets: Callable[[], int]
    rooms: Callable[[], int]
    held_offers: Callable[[], int]
    held_bytes: Callable[[], int]
    sessions: Callable[[], int]
    away_sessions: Callable[[], int]
    uptime: Callable[[], float]


class _StateCollector(Collector):
    def __init__(self, gauges: Gauges) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        reads: tuple[tuple[str, str, Callable[[], float]], ...] = (
            ("p2pcall_sockets", "Connected Socket.IO clients.", self.gauges.sockets),
            ("p2pcall_rooms", "Open rooms.", self.gauges.rooms),
            ("p2pcall_held_offers", "Offers held for an answerer.", self.gauges.held_offers),
            (
                "p2pcall_held_bytes",
                "Bytes of held offers and candidates (the --max-held-bytes budget).",
                self.gauges.held_bytes,
            ),
            ("p2pcall_sessions", "Sessions, connected or away.", self.gauges.sessions),
            (
                "p2pcall_away_sessions",
                "Sessions whose socket is gone, kept for --resume-grace.",
                self.gauges.away_sessions,
            ),
            ("p2pcall_uptime_seconds", "Seconds since the hub started.", self.gauges.uptime),
        )
        for name, doc, read in reads:
            yield GaugeMetricFamily(name, doc, value=read())


class HubMetrics:
    """Counters and the relay histogram of one hub, in their own registry."""

    def __init__(self, gauges: Gauges) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StateCollector(gauges))
        self.events = Counter(
            "p2pcall_events",
            "Client requests handled, by event.",
            ["event"],
            registry=self.registry,
        )
        # Children bound once per label value: ``labels()`` takes a lock and builds a
        # key on every call, a few per cent of the hub's CPU under call load.
        self._event_counts: dict[str, Callable[[], None]] = {}
        self.refusals = Counter(
            "p2pcall_refusals",
            "Requests and connects refused, by error code.",
            ["code"],
            registry=self.registry,
        )
        self.closed = Counter(
            "p2pcall_sockets_closed",
            "Connections the hub closed for breaking a limit, by limit.",
            ["limit"],
            registry=self.registry,
        )
        self.relay_seconds = Histogram(
            "p2pcall_relay_seconds",
            "Time from a message's arrival to its relay being queued for the other party.",
            buckets=RELAY_BUCKETS,
            registry=self.registry,
        )

    def count_event(self, event: str) -> None:
        """Count one request; ``event`` is one of a bounded set (the hub maps the rest)."""
        inc = self._event_counts.get(event)
        if inc is None:
            inc = self._event_counts[event] = self.events.labels(event).inc
        inc()

    def observe_relays(self, count: int, seconds: float) -> None:
        """``count`` messages relayed, each ``seconds`` after its request arrived."""
        for _ in range(count):
            self.relay_seconds.observe(seconds)
