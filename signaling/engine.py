"""python-engineio's server, tuned for our WebSocket transport (``fastws``).

Pings run on timers instead of tasks, and a socket that Engine.IO closes on its
own (a client that stopped answering pings) wakes its WebSocket writer, so the
connection is closed too.

Stock python-engineio schedules each socket's next ping as a background task
that sleeps ``ping_interval`` (25 s) and then checks whether the socket still
exists. A socket that closes meanwhile leaves its task asleep until then: under
call load (two short-lived sockets per call) a hub at 500 setups/s carried
~25,000 such tasks, each a coroutine, a task and a sleep future kept in memory
and in the event loop's timer heap. Here the same ping is a plain
``loop.call_later`` handle, cancelled when our WebSocket transport ends the
socket; one that fires after a close does nothing, as the stock task does.

When the service task finds a client that stopped answering pings, the
connection is aborted at once (:func:`abort`): a stop mark on the send queue
would wait behind whatever backlog the dead client left unread, and hold its
memory until then. The same abort ends sockets that break a limit (a send
queue over ``max_queued_bytes``, a malformed packet).

Long-polling POSTs are read here whole before python-engineio sees them: its
aiohttp driver reads a body with one ``content.read(n)``, which returns only
what has arrived so far, so a body that arrives in pieces lost its tail.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import engineio
from aiohttp import web
from engineio import packet
from engineio.async_socket import AsyncSocket

from .guards import RateLimitedWarning
from .transport import MalformedPacket, is_coroutine_handler, payload_fault

log = logging.getLogger(__name__)
PING_TIMER = "_ping_timer"  # attribute on the socket holding its TimerHandle
LEAN_OUTBOX = "_lean_outbox"  # a fastws socket's Outbox (what is sent this loop turn)
LEAN_TRANSPORT = "_lean_transport"  # the TCP transport under a fastws socket
# when the WebSocket write under way started (time.monotonic()), None between writes
SEND_STARTED = "_send_started"
BODY_KEY = web.RequestKey("polling_body", bytes)  # a polling POST body, read whole

# Called with (engine.io sid, reason) whenever the hub closes a socket for a limit.
OnShed = Callable[[str, str], None]
MessageNow = Callable[[str, str], Awaitable[Any] | None]


class _Body:
    """``wsgi.input`` for a body already read whole."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self, n: int = -1) -> bytes:
        body, self._body = self._body, b""
        return body


class WakingQueue(asyncio.Queue[Any]):
    """An ``asyncio.Queue`` that can call ``on_put()`` once, at its next put.

    A WebSocket socket's writer task starts only when something is queued for it
    (``fastws``): most sends skip the queue, and a short-lived socket would otherwise
    pay for a task that only ever closes the connection. Unarmed, a plain queue.
    """

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(maxsize)
        self.on_put: Callable[[], None] | None = None

    def put_nowait(self, item: Any) -> None:
        super().put_nowait(item)  # ``put`` ends here too
        if (wake := self.on_put) is not None:
            self.on_put = None
            wake()


class LeanEngineServer(engineio.AsyncServer):
    """``engineio.AsyncServer`` with timer pings, abort on ping timeout, whole POST bodies.

    ``request_timeout`` bounds how long a polling POST body may take to arrive;
    ``on_shed(sid, reason)`` hears of every socket closed for breaking a limit.
    """

    def __init__(self, *args: Any, request_timeout: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.request_timeout = request_timeout
        self.on_shed: OnShed | None = None
        # (sid, data) -> what to await, or None: set by the Socket.IO server above, so
        # the WebSocket read loop hands it each MESSAGE without a coroutine per message
        self.message_now: MessageNow | None = None
        self.warnings = RateLimitedWarning(log)
        self._closing: set[asyncio.Task[Any]] = set()
        self._polling: set[str] = set()  # sids with a long-poll GET under way
        stock = self._async["translate_request"]  # type: ignore[has-type]

        def translate_request(request: web.Request) -> dict[str, Any]:
            environ: dict[str, Any] = stock(request)
            if BODY_KEY in request:
                environ["wsgi.input"] = _Body(request[BODY_KEY])
            return environ

        # a copy: the driver table is shared by every Engine.IO server
        self._async = {**self._async, "translate_request": translate_request}  # type: ignore[has-type]
        self._environ = stock  # a GET's environ: it has no body to swap in

    async def _trigger_event(self, event: str, *args: Any, **kwargs: Any) -> Any:
        """Stock, but a coroutine handler run inline is awaited without a wrapper.

        python-socketio's handlers are coroutines and run inline (``run_async`` is
        false for connect and disconnect): stock checks that with ``inspect`` and
        wraps each call in one more coroutine, twice per connection. Errors are
        handled as stock: logged, and a failed connect refuses the connection.
        """
        if event == "disconnect" and args[1:2] == (self.reason.PING_TIMEOUT,):
            socket = self.sockets.get(args[0])
            if socket is not None:
                self.shed(socket, "ping timeout")
        handler = self.handlers.get(event)
        if kwargs.get("run_async") or handler is None or not is_coroutine_handler(handler):
            return await super()._trigger_event(event, *args, **kwargs)
        try:
            return await handler(*args)
        except asyncio.CancelledError:
            return None
        except Exception:
            self.logger.exception(event + " async handler error")
            return False if event == "connect" else None

    def shed(self, socket: Any, reason: str) -> None:
        """Close ``socket`` at once, dropping its unsent backlog; tell ``on_shed`` why."""
        if getattr(socket, "_shed", False):
            return
        socket._shed = True
        if self.on_shed is not None:
            self.on_shed(socket.sid, reason)
        transport = getattr(socket, LEAN_TRANSPORT, None)
        if transport is not None:
            transport.abort()  # the read loop ends; a send waiting on the peer fails
            return
        # long-polling, or a WebSocket upgraded on the stock handler
        if not socket.closed and not socket.closing:
            task = asyncio.ensure_future(
                socket.close(wait=False, abort=True, reason=self.reason.TRANSPORT_ERROR)
            )
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        # An abort queues nothing: a long-poll GET waiting on this socket would hold its
        # connection (and a shutdown) until ping interval + timeout. The stop mark ends it
        # now, as it ends the stock WebSocket writer.
        socket.queue.put_nowait(None)

    def shed_stuck_senders(self, now: float, timeout: float) -> int:
        """Close sockets whose WebSocket write has waited over ``timeout`` seconds.

        A client that stops reading stalls the write once the TCP buffers are full;
        its send queue is capped, but the connection and what is queued would stay
        until the ping timeout, or forever for a client that sends pongs blindly.
        Returns how many were closed.
        """
        stuck = [
            s
            for s in self.sockets.values()
            if (started := getattr(s, SEND_STARTED, None)) is not None and now - started > timeout
        ]
        for socket in stuck:
            self.shed(socket, "send timeout")
        return len(stuck)

    def malformed(self, sid: str, exc: BaseException) -> None:
        """A packet we cannot decode: one rate-limited warning, and that socket closes."""
        self.warnings.warn(
            "malformed",
            time.monotonic(),
            "sid=%s malformed packet (%s: %.80s); closing that socket",
            sid,
            type(exc).__name__,
            str(exc),
        )
        socket = self.sockets.get(sid)
        if socket is not None:
            self.shed(socket, "malformed packet")

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        """Read a polling POST body whole (bounded in size and time), then as stock."""
        if request.method != "POST":
            query = request.query
            sid = query.get("sid")
            if sid is None and _opens_websocket(request):
                return await self._connect_websocket(request)
            if sid is None or query.get("transport") != "polling":
                return await self._stock_request(request)
            # Stock python-engineio parks every extra GET on one sid until the socket
            # dies (~ping interval + timeout), each holding a connection: refuse it now.
            if sid in self._polling:
                return _refuse(
                    400, "a long-poll is already open for this session; poll again when it returns"
                )
            self._polling.add(sid)
            try:
                return await self._stock_request(request)
            finally:
                self._polling.discard(sid)
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            return _refuse(411, "a polling POST must carry Content-Length, not a chunked body")
        length = request.content_length
        if length is None:
            return _refuse(411, "a polling POST must carry Content-Length")
        if length > self.max_http_buffer_size:
            return _refuse(
                413, f"a polling POST may carry at most {self.max_http_buffer_size} bytes"
            )
        try:
            async with asyncio.timeout(self.request_timeout):
                request[BODY_KEY] = await request.content.readexactly(length)
        except TimeoutError:
            return _refuse(408, f"the body did not arrive within {self.request_timeout:g} s")
        except asyncio.IncompleteReadError:
            return _refuse(400, "the body ended before its Content-Length")
        try:
            # python-engineio decodes the body itself and, when that fails, logs its own
            # traceback, answers 200 and keeps the socket: a malformed packet here instead
            body = request[BODY_KEY].decode("utf-8")
        except UnicodeDecodeError as exc:
            self.malformed(request.query.get("sid", ""), exc)
            return _refuse(400, "malformed Engine.IO payload: the body is not UTF-8")
        if (fault := payload_fault(body)) is not None:
            self.malformed(request.query.get("sid", ""), MalformedPacket(fault))
            return _refuse(400, f"malformed Engine.IO payload: {fault}")
        try:
            return await self._stock_request(request)
        except Exception as exc:  # an undecodable payload: python-engineio lets it escape
            sid = request.query.get("sid", "")
            self.malformed(sid, exc)
            return _refuse(400, "malformed Engine.IO payload")

    async def _connect_websocket(self, request: web.Request) -> web.StreamResponse:
        """A new Engine.IO session straight on WebSocket, as stock ``_handle_connect``.

        Stock ``handle_request`` parses the query again, and its connect goes through
        the polling machinery (``send``'s ping-timeout check, ``handle_get_request``,
        ``_upgrade_websocket``) before the same WebSocket handler runs; every client
        connects this way, twice per call. A refused origin, and anything this path
        does not cover, takes the stock path and its own error.
        """
        environ: dict[str, Any] = self._environ(request)
        origin = environ.get("HTTP_ORIGIN")
        if origin and self.cors_allowed_origins != []:
            allowed = self._cors_allowed_origins(environ)
            if allowed is not None and origin not in allowed:
                return await self._stock_request(request)
        if self.start_service_task:  # type: ignore[has-type]
            self.start_service_task = False
            self.service_task_handle = self.start_background_task(self._service_task)
        sid = self.generate_id()
        socket = AsyncSocket(self, sid)
        self.sockets[sid] = socket
        opening = {
            "sid": sid,
            "upgrades": [],
            "pingTimeout": int(self.ping_timeout * 1000),
            "pingInterval": int(self.ping_interval + self.ping_interval_grace_period) * 1000,
            "maxPayload": self.max_http_buffer_size,
        }
        socket.queue.put_nowait(packet.Packet(packet.OPEN, opening))
        accepted = await self._trigger_event("connect", sid, environ, run_async=False)
        if accepted is not None and accepted is not True:
            del self.sockets[sid]
            refusal: web.StreamResponse = await self._make_response(
                self._unauthorized(accepted or None), environ
            )
            return refusal
        socket.schedule_ping()
        websocket = self._async["websocket"](socket._websocket_handler, self)
        try:
            response: web.StreamResponse = await websocket(environ)
        except web.HTTPException:
            # a handshake aiohttp refuses (no Sec-WebSocket-Key, say): the session it
            # was for goes now, not at the ping timeout
            await socket.close(wait=False, abort=True, reason=self.reason.TRANSPORT_ERROR)
            cancel_ping(socket)
            raise
        finally:
            if socket.closed:
                self.sockets.pop(sid, None)
        return response

    async def _stock_request(self, request: web.Request) -> web.StreamResponse:
        response: web.StreamResponse = await super().handle_request(request)
        return response

    def create_queue(self, *args: Any, **kwargs: Any) -> WakingQueue:
        """Each socket's send queue (python-engineio's public hook): a :class:`WakingQueue`."""
        return WakingQueue(*args, **kwargs)

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        socket = getattr(target, "__self__", None)
        if getattr(target, "__func__", None) is AsyncSocket._send_ping and not args:
            handle = asyncio.get_running_loop().call_later(self.ping_interval, _ping_due, socket)
            setattr(socket, PING_TIMER, handle)
            return handle
        return super().start_background_task(target, *args, **kwargs)


def _opens_websocket(request: web.Request) -> bool:
    """A GET that opens an Engine.IO 4 session on WebSocket (no JSONP, a real upgrade)."""
    query = request.query
    headers = request.headers
    return (
        query.get("transport") == "websocket"
        and query.get("EIO") == "4"
        and "j" not in query
        and headers.get("Upgrade", "").lower() == "websocket"
        and "upgrade" in headers.get("Connection", "").lower()  # "keep-alive, Upgrade" too
    )


def _refuse(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, headers={"Connection": "close"})


def _ping_due(socket: Any) -> None:
    """What stock ``AsyncSocket._send_ping`` does after its sleep, without awaiting."""
    setattr(socket, PING_TIMER, None)
    if not socket.closing and not socket.closed:
        socket.last_ping = time.time()
        socket.queue.put_nowait(packet.Packet(packet.PING))


def cancel_ping(socket: Any) -> None:
    """Drop a closed socket's pending ping timer, if it has one."""
    handle = getattr(socket, PING_TIMER, None)
    if handle is not None:
        handle.cancel()
        setattr(socket, PING_TIMER, None)
