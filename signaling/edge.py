"""The hub's TCP edge: connections per client address, and the file-descriptor limit.

aiohttp's ``web.Server`` is told of every connection (``connection_made`` /
``connection_lost``) by its protocol; :class:`HubRunner` wraps those two
callbacks of the server it builds (the one seam into aiohttp here) to count
open connections per peer address and shed one over the cap: its request, if one
comes within a second, is answered HTTP 503 naming the limit, and then it is dropped. Slow
request headers are bounded by aiohttp itself: the hub sets its
``keepalive_timeout``, which also runs from the moment a connection opens
(see ``create_app``). aiohttp does not say when that closes a connection, so the
guard infers it: a connection that lived at least that long and never got a whole
request (the :meth:`ConnectionGuard.middleware` marks those that did) was closed
by the timeout, since aiohttp closes one idle that long. A slow second request
on a kept-alive connection is closed too, but not counted.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from .guards import AddressCounter, RateLimitedWarning

log = logging.getLogger(__name__)
SHED_LINGER = 1.0  # seconds a shed connection may take to send the request its refusal answers


class _Connection:
    """One open TCP connection: its peer address, when it opened (loop time), and
    whether a whole request has come on it (slotted: one is made per connection)."""

    __slots__ = ("address", "opened", "requested")

    def __init__(self, address: str, opened: float) -> None:
        self.address = address
        self.opened = opened
        self.requested = False


class ConnectionGuard:
    """Counts open TCP connections per address; sheds those over ``limit`` (0: no cap).

    With ``request_timeout`` (aiohttp's ``keepalive_timeout``) it also tells
    ``on_request_timeout`` of, and logs, each connection closed before its first
    request arrived whole.
    """

    def __init__(
        self,
        limit: int,
        on_shed: Callable[[], None] | None = None,
        *,
        request_timeout: float = 0.0,
        on_request_timeout: Callable[[], None] | None = None,
    ) -> None:
        self.counter = AddressCounter(limit)
        self.on_shed = on_shed
        self.request_timeout = request_timeout
        self.on_request_timeout = on_request_timeout
        self._open: dict[Any, _Connection] = {}
        self._shed: set[Any] = set()  # request handlers of shed connections not yet closed
        self._warnings = RateLimitedWarning(log)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Put first in the app's middlewares: marks the connection as having had a request.

        A request on a shed connection is refused here, before any handler sees it.
        """
        if request.protocol in self._shed:
            refusal = web.Response(
                status=503,
                text=f"limit: this address is over {self.counter.limit} open connections "
                "(--max-connections-per-address); close some or try again later\n",
                headers={"Retry-After": "1"},
            )
            refusal.force_close()
            return refusal
        connection = self._open.get(request.protocol)
        if connection is not None:
            connection.requested = True
        try:
            response: web.StreamResponse = await handler(request)
        except ConnectionError:
            # The client left mid-request, most often while its WebSocket upgrade was
            # being answered: aiohttp would log a traceback per such client. Nobody is
            # there to read an answer; aiohttp drops this one as a premature disconnect.
            return web.Response(status=400)
        return response

    def _closed(self, connection: _Connection) -> None:
        if self.request_timeout <= 0 or connection.requested:
            return
        now = asyncio.get_running_loop().time()
        if now - connection.opened < self.request_timeout:
            return  # the client went away first
        if self.on_request_timeout is not None:
            self.on_request_timeout()
        self._warnings.warn(
            "request_timeout",
            time.monotonic(),
            "address %s sent no whole request within %g s (--request-timeout): closed",
            connection.address,
            self.request_timeout,
        )

    def open_connections(self) -> int:
        """How many TCP connections are open now, shed ones not counted."""
        return len(self._open)

    def abort_all(self) -> None:
        """Abort every connection still open (at shutdown)."""
        for handler in list(self._open):
            if handler.transport is not None:
                handler.transport.abort()

    def install(self, server: web.Server) -> None:
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: Any, transport: asyncio.Transport) -> None:
            made(handler, transport)
            peer = transport.get_extra_info("peername")
            address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
            if not self.counter.acquire(address):
                if self.on_shed is not None:
                    self.on_shed()
                self._warnings.warn(
                    "connections",
                    time.monotonic(),
                    "address %s is over %d open connections (--max-connections-per-address): "
                    "shedding new ones",
                    address,
                    self.counter.limit,
                )
                # Closing here, inside aiohttp's connection_made and before it starts the
                # connection's task, would fail that task (a traceback per shed connection).
                self._shed.add(handler)
                asyncio.get_running_loop().call_later(SHED_LINGER, transport.abort)
                return
            self._open[handler] = _Connection(address, asyncio.get_running_loop().time())

        def connection_lost(handler: Any, exc: BaseException | None = None) -> None:
            self._shed.discard(handler)
            connection = self._open.pop(handler, None)
            if connection is not None:
                self.counter.release(connection.address)
                self._closed(connection)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]


CONNECTION_GUARD_KEY = web.AppKey("connection_guard", ConnectionGuard)


class HubRunner(web.AppRunner):
    """``web.AppRunner`` whose server goes through the app's :class:`ConnectionGuard`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        guard = self.app.get(CONNECTION_GUARD_KEY)
        if guard is not None:
            guard.install(server)
        return server


def raise_fd_limit() -> tuple[int, int]:
    """Lift the soft open-files limit to the hard one; returns (soft, hard) now in force.

    Each client holds a descriptor; the common soft default (1,024) would refuse
    new clients long before the machine runs short.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = fd_limit_target(hard)
    if soft != target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
    return soft, hard


def fd_limit_target(hard: int) -> int:
    """The hard limit, or the kernel's per-process ceiling when the hard limit is unlimited."""
    if hard != resource.RLIM_INFINITY:
        return hard
    try:
        return int(Path("/proc/sys/fs/nr_open").read_text())
    except (OSError, ValueError):
        return 1 << 20
