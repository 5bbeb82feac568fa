"""The ``redis_server`` fixture the several-hubs tests start their hubs on (``--redis``)."""

from __future__ import annotations

import asyncio

from tests.cluster.conftest import Redis
from tests.hub.client import TIMEOUT


async def test_redis_server_answers_on_loopback(redis_server: Redis) -> None:
    host, port = redis_server.url.removeprefix("redis://").removesuffix("/0").split(":")
    assert host == "127.0.0.1"
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), TIMEOUT)
    try:
        writer.write(b"PING\r\n")
        assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"+PONG\r\n"
    finally:
        writer.close()
        await writer.wait_closed()
