"""Run two real library peers through a hub, caller-first or answerer-first."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from peer.call import Call, CallOptions, Role
from peer.media import Sources, open_sources
from peer.signaling import SignalingClient

SIZE = (320, 240)
WAIT = 30.0


@dataclass
class Side:
    call: Call
    client: SignalingClient
    ended: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def side(
    url: str,
    role: Role,
    room: str,
    *,
    video: str = "testsrc",
    audio: str = "none",
    size: tuple[int, int] = SIZE,
    sources: Sources | None = None,
    on_chat: Callable[[dict[str, Any]], None] | None = None,
    **options: Any,
) -> AsyncIterator[Side]:
    client = SignalingClient(url, name=role, timeout=10)
    await client.connect()
    if sources is None:
        sources = await open_sources(video, audio, size, 30)
    # no multicast DNS query leaves the machine from a test, unless one asks for it
    options.setdefault("resolve_mdns", False)
    settings = CallOptions(room=room, role=role, name=role, **options)
    call = Call(client, settings, sources, on_chat=on_chat)
    try:
        yield Side(call, client)
    finally:
        await call.close()
        await client.close()


async def wait_until(predicate: Callable[[], bool], limit: float = 20.0) -> None:
    """Poll ``predicate`` every 50 ms, at most ``limit`` seconds."""
    for _ in range(int(limit / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met within {limit} s")


async def run_both(caller: Side, answerer: Side, first: Role, seconds: float) -> None:
    """Start in the given order, run until the caller hangs up ``seconds`` after connecting."""
    one, two = (caller, answerer) if first == "caller" else (answerer, caller)
    await one.call.start()
    await two.call.start()

    async def run(s: Side, duration: float | None) -> None:
        s.ended = await s.call.run(connect_timeout=WAIT, duration=duration)

    await asyncio.wait_for(
        asyncio.gather(run(caller, seconds), run(answerer, None)), WAIT + seconds + 10
    )
