"""Guards for every peer test."""

from __future__ import annotations

from collections.abc import Iterator

import aioice.mdns
import pytest


@pytest.fixture(autouse=True)
def no_multicast_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No test may query multicast DNS (224.0.0.251): that leaves loopback.

    In-process peers must be made with ``resolve_mdns=False`` (``pair.side`` does), CLI
    peers with ``--no-mdns`` (``cli_run`` does).
    """
    tried: list[str] = []

    async def refuse() -> aioice.mdns.MDnsProtocol:
        tried.append("create_mdns_protocol")
        raise OSError("tests send no multicast DNS query (use resolve_mdns=False / --no-mdns)")

    monkeypatch.setattr(aioice.mdns, "create_mdns_protocol", refuse)
    yield
    assert not tried, "a test tried to resolve an mDNS name over multicast"
