"""Real network faults for tests: a loopback TCP proxy that can cut, stall or delay links.

Put it between a client and the hub (``proxy.url`` instead of the hub's URL):

- :meth:`FaultProxy.cut` aborts every open link (both ends see the TCP connection die);
- :meth:`FaultProxy.refuse` makes new connections fail until it is called with False, so a
  reconnecting client stays cut off ("the network is gone for 5 s");
- :meth:`FaultProxy.stall` freezes the open links: nothing more is forwarded and nothing
  is closed, the way a dead Wi-Fi leaves a half-open TCP connection;
- ``delay`` (seconds) holds every chunk that long before forwarding it, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass(eq=False)
class Link:
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    stalled: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()


class FaultProxy:
    """``await FaultProxy(host, port).start()``; ``await proxy.close()`` when done."""

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.delay = 0.0
        self.links: list[Link] = []
        self.accepted = 0
        self._refusing = False
        self._server: asyncio.Server | None = None
        self.port = 0

    @classmethod
    async def to_url(cls, url: str) -> FaultProxy:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        return await cls(host, int(port)).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> int:
        """Abort every open link; returns how many there were."""
        links, self.links = self.links, []
        for link in links:
            link.abort()
        return len(links)

    def refuse(self, on: bool = True) -> None:
        self._refusing = on

    def stall(self) -> int:
        """Freeze every open link (half-open); new links still work."""
        for link in self.links:
            link.stalled.set()
        return len(self.links)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for link in self.links for t in link.tasks]
        self.cut()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._refusing:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.accepted += 1
        link = Link(writer, up_writer)
        self.links.append(link)
        link.tasks = [
            asyncio.ensure_future(self._pump(reader, up_writer, link)),
            asyncio.ensure_future(self._pump(up_reader, writer, link)),
        ]

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link
    ) -> None:
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    break
                if link.stalled.is_set():
                    await asyncio.Event().wait()  # held forever: a half-open link
                if self.delay:
                    await asyncio.sleep(self.delay)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            if not link.stalled.is_set():
                link.abort()
                if link in self.links:
                    self.links.remove(link)
