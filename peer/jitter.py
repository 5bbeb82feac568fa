"""Low-latency receive path for aiortc (placeholder until the marker-bit release lands)."""

from __future__ import annotations

from aiortc import RTCPeerConnection


def install(pc: RTCPeerConnection) -> None:
    """Make ``pc``'s video receivers release a frame as soon as it is complete."""
