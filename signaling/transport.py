"""Which python-socketio/python-engineio versions the lean transport was written for.

The lean transport (ordered.py, engine.py, fastws.py, manager.py) overrides
private methods of python-socketio and python-engineio, and uses one flag of
aiohttp's, so an upgrade can silently break it; this module lets start-up notice
that before the first client does.
"""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import inspect
import logging
from collections.abc import Callable
from typing import Any

from engineio import payload as eio_payload

# major.minor of each distribution the private overrides were checked against.
# aiohttp: fastws holds an upgrade's headers for its first write (``_send_headers_immediately``).
LEAN_WRITTEN_FOR: dict[str, str] = {
    "python-socketio": "5.18",
    "python-engineio": "4.15",
    "aiohttp": "3.14",
}


# python-engineio refuses a long-polling POST of more than 16 packets, yet its own
# client and browsers batch everything queued into one POST: a burst of trickled
# candidates before the upgrade to WebSocket would drop the connection. The body
# size stays bounded by ``max_http_buffer_size``.
MAX_PACKETS_PER_POLL = 1000


def allow_packets_per_poll() -> None:
    """Raise python-engineio's packets-per-POST limit to MAX_PACKETS_PER_POLL.

    ``Payload.max_decode_packets`` is the knob python-engineio's maintainer points
    to for this (python-engineio issue #142); it is process-wide, so both
    transports set it the same way and never lower it.
    """
    eio_payload.Payload.max_decode_packets = max(
        eio_payload.Payload.max_decode_packets, MAX_PACKETS_PER_POLL
    )


def _major_minor(version: str) -> str:
    """ "5.18.1" -> "5.18"; a version without a dot is returned unchanged."""
    return ".".join(version.split(".")[:2])


def lean_mismatch() -> str | None:
    """None when every installed major.minor matches LEAN_WRITTEN_FOR.

    Otherwise one sentence naming installed vs expected versions, e.g.
    "lean transport written for python-engineio 4.15, installed 4.16.0".
    A distribution that is not installed counts as a mismatch ("not installed").
    """
    problems: list[str] = []
    for dist, expected in LEAN_WRITTEN_FOR.items():
        try:
            installed = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            installed = "not installed"
        if _major_minor(installed) != expected:
            problems.append(f"{dist} {expected}, installed {installed}")
    if not problems:
        return None
    return "lean transport written for " + "; ".join(problems)


def choose(requested: str, log: logging.Logger) -> str:
    """Resolve ``Config.transport`` ("auto" | "lean" | "stock") to "lean" or "stock".

    auto: lean unless ``lean_mismatch()`` reports something, then stock with one
    warning naming the mismatch. lean with a mismatch stays lean (the operator
    asked for it) but warns once. Any other value raises ValueError.
    """
    if requested == "stock":
        return "stock"
    if requested not in ("auto", "lean"):
        raise ValueError(f"transport: expected auto, lean or stock, got {requested!r}")
    mismatch = lean_mismatch()
    if mismatch is None:
        return "lean"
    if requested == "lean":
        log.warning("%s; --transport lean kept anyway", mismatch)
        return "lean"
    log.warning("%s; using the stock transport", mismatch)
    return "stock"


# Engine.IO packet types a client sends over a WebSocket as text: close, ping, pong,
# message, upgrade. Stock python-engineio fails on any other with a traceback (an
# IndexError naming the type, or a ValueError for a non-digit) and keeps the socket.
CLIENT_PACKET_TYPES = "12345"


class MalformedPacket(ValueError):
    """An Engine.IO or Socket.IO packet the hub will not decode; the message says why."""


def client_packet_fault(frame: str, types: str = CLIENT_PACKET_TYPES) -> str | None:
    """None when ``frame`` (a WebSocket text frame) starts with one of ``types``.

    Otherwise the one reason a warning gives (under 80 characters), e.g. "Engine.IO
    packet type '9' is not 1-5 (close,ping,pong,message,upgrade)". A long-polling
    payload's packets may also be ``b`` (base64 binary): pass ``types`` + "b".
    """
    kind = frame[:1]
    if kind and kind in types:
        return None
    shown = f"Engine.IO packet type {kind!r} is" if kind else "an empty Engine.IO packet is"
    return f"{shown} not 1-5 (close,ping,pong,message,upgrade)"


def payload_fault(body: str) -> str | None:
    """:func:`client_packet_fault` for each packet of a long-polling POST body."""
    for frame in body.split("\x1e"):
        if (fault := client_packet_fault(frame, CLIENT_PACKET_TYPES + "b")) is not None:
            return fault
    return None


# -- the public python-socketio calls both servers narrow ---------------------------

NAMESPACE = "/"


def check_handler(server: str, event: str, namespace: str | None) -> None:
    """Raise TypeError unless ``event`` is ``connect`` or ``disconnect`` on ``/``.

    Both servers hand every other event to the hub's dispatch callable, so a handler
    registered for it would never run: an error, not a silent no-op.
    """
    if event not in ("connect", "disconnect") or (namespace or NAMESPACE) != NAMESPACE:
        raise TypeError(
            f"{server} runs every event through its dispatch callable; a handler "
            f"for {event!r} on {namespace or NAMESPACE!r} would never be called"
        )


def emit_target(
    server: str, to: Any, room: Any, skip_sid: Any, namespace: str | None, callback: Any
) -> str:
    """The one sid an ``emit(...)`` call addresses, or TypeError.

    A str ``to`` (or ``room``) is taken as a sid, since the hub uses no Socket.IO
    rooms. Stock ``emit`` would send past the server's per-socket byte cap and out
    of order with its other sends; broadcasts, Socket.IO rooms, acks and other
    namespaces are not part of the hub and raise ``TypeError``.
    """
    target = to if to is not None else room
    if (
        not isinstance(target, str)
        or skip_sid is not None
        or callback is not None
        or (namespace or NAMESPACE) != NAMESPACE
    ):
        raise TypeError(
            f"{server}.emit sends to one connected sid on '/' without a callback "
            f"(to=sid); got to={to!r:.40} room={room!r:.40} namespace={namespace!r} "
            f"callback={'set' if callback else None}"
        )
    return target


class OneSidEmit:
    """``emit`` narrowed to one sid through the server's own ordered ``send_now``.

    Mixed in before ``socketio.AsyncServer`` by both servers, so the public call
    keeps their byte cap and ordering instead of sending around them.
    """

    def send_now(self, sid: str, event: str, payload: Any) -> bool:
        raise NotImplementedError

    async def emit(
        self,
        event: str,
        data: Any = None,
        to: Any = None,
        room: Any = None,
        skip_sid: Any = None,
        namespace: str | None = None,
        callback: Any = None,
        ignore_queue: bool = False,
    ) -> None:
        """Send one event to one sid in order; a sid not connected here is skipped.

        The sid comes from :func:`emit_target` (else TypeError), as stock ``emit``
        skips a sid it does not know.
        """
        server = type(self).__name__
        self.send_now(emit_target(server, to, room, skip_sid, namespace, callback), event, data)


@functools.lru_cache(maxsize=64)
def is_coroutine_handler(handler: Any) -> bool:
    """``inspect.iscoroutinefunction(handler)``, remembered per handler.

    Both servers' connect and disconnect handlers are checked on every connection
    (twice per call); the answer never changes for a registered handler.
    """
    return inspect.iscoroutinefunction(handler)


class Deferred:
    """An ack (or connect result) the hub has not produced yet.

    With ``--redis`` a request runs once its op comes back from the shared op
    stream. ``then(fn)`` has ``fn(value)`` run synchronously the moment the value
    is known, in the same loop turn as the relays that op produced, so the ack
    leaves in order with them; ``wait()`` lets the socket's read loop hold its
    next message until then, which keeps one socket's requests in order.
    """

    __slots__ = ("_done", "_then")

    def __init__(self) -> None:
        self._done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._then: Callable[[Any], None] | None = None

    def then(self, fn: Callable[[Any], None]) -> None:
        if self._done.done():
            fn(self._done.result())
        else:
            self._then = fn

    def resolve(self, value: Any) -> None:
        if self._done.done():
            return
        if self._then is not None:
            self._then(value)
        self._done.set_result(value)

    @property
    def done(self) -> bool:
        return self._done.done()

    async def wait(self) -> Any:
        return await self._done


# (sid, event, args) -> the ack, or a Deferred one: what both servers call per event
Dispatch = Callable[[str, str, list[Any]], "dict[str, Any] | Deferred"]
