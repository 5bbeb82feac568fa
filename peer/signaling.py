"""Signaling client: the peer's side of the hub's Socket.IO contract.

Requests are acks (``call`` with a timeout) turned into return values or
:mod:`peer.errors` exceptions. Events the hub pushes (``offer``, ``answer``,
``candidate``, ``hangup``) land, in arrival order, in one :class:`asyncio.Queue`
or, once :meth:`SignalingClient.subscribe` is called, in the subscriber:
python-socketio starts one task per incoming message, in arrival order, and our
handlers are plain functions that enqueue without awaiting, so each message is
queued by the first step of its task, before the next task runs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import socketio

from .errors import HubUnreachable, SignalingError, Unauthorized, signaling_error
from .protocol import PUSHED_EVENTS, ErrorCode, Event

log = logging.getLogger(__name__)

DISCONNECT = "disconnect"  # not a wire event: the client's own note that the hub went away


@dataclass(frozen=True)
class Welcome:
    """What the hub sends right after connect."""

    sid: str
    ice_servers: list[dict[str, Any]]
    limits: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Pushed:
    """One hub -> client event: ``event`` is one of ``PUSHED_EVENTS`` or ``DISCONNECT``."""

    event: str
    payload: dict[str, Any]


class SignalingClient:
    """One Socket.IO connection to the hub (no reconnection, websocket only)."""

    def __init__(
        self, url: str, *, name: str | None = None, token: str | None = None, timeout: float = 10.0
    ) -> None:
        self.url = url
        self.name = name
        self.token = token
        self.timeout = timeout
        self.events: asyncio.Queue[Pushed] = asyncio.Queue()
        self._subscriber: Callable[[Pushed], None] | None = None
        self.welcome: Welcome | None = None
        self._welcome = asyncio.get_running_loop().create_future()
        self._refused: str | None = None
        self.sio = socketio.AsyncClient(reconnection=False, logger=False, engineio_logger=False)
        self.sio.on(Event.WELCOME, self._on_welcome)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", self._on_disconnect)
        for event in PUSHED_EVENTS:
            self.sio.on(event, self._pusher(event))

    def subscribe(self, subscriber: Callable[[Pushed], None]) -> None:
        """Deliver pushed events to ``subscriber`` (queued ones first) instead of ``events``.

        ``subscriber`` is called synchronously, in arrival order, and must not block.
        """
        self._subscriber = subscriber
        while not self.events.empty():
            subscriber(self.events.get_nowait())

    def _deliver(self, item: Pushed) -> None:
        if self._subscriber is not None:
            self._subscriber(item)
        else:
            self.events.put_nowait(item)

    # -- handlers (sync: they must not yield, see module docstring) --------

    def _pusher(self, event: str) -> Any:
        def push(payload: Any = None) -> None:
            if isinstance(payload, dict):
                self._deliver(Pushed(event, payload))
            else:
                log.warning("hub sent %s with a non-object payload; ignored", event)

        return push

    def _on_welcome(self, payload: Any) -> None:
        if self._welcome.done() or not isinstance(payload, dict):
            return
        ice = payload.get("iceServers")
        self._welcome.set_result(
            Welcome(
                sid=str(payload.get("sid", "")),
                ice_servers=list(ice) if isinstance(ice, list) else [],
                limits=payload.get("limits") or {},
            )
        )

    def _on_connect_error(self, data: Any = None) -> None:
        self._refused = data.get("message") if isinstance(data, dict) else str(data)

    def _on_disconnect(self, reason: Any = None) -> None:
        log.info("hub connection closed (%s)", reason)
        self._deliver(Pushed(DISCONNECT, {"reason": str(reason)}))

    # -- connection --------------------------------------------------------

    async def connect(self) -> Welcome:
        """Connect and wait for ``welcome``; raise ``Unauthorized``/``HubUnreachable``."""
        auth: dict[str, str] = {}
        if self.name:
            auth["name"] = self.name
        if self.token:
            auth["token"] = self.token
        try:
            await self.sio.connect(
                self.url, auth=auth, transports=["websocket"], wait_timeout=self.timeout
            )
        except socketio.exceptions.ConnectionError as exc:
            await self._drop()
            if self._refused == ErrorCode.UNAUTHORIZED:
                raise Unauthorized(f"hub {self.url} refused the access token (--token)") from None
            if self._refused == ErrorCode.INVALID:
                raise SignalingError(
                    ErrorCode.INVALID, f"hub {self.url} refused the name (--name)"
                ) from None
            raise HubUnreachable(
                f"cannot reach the hub at {self.url} ({exc}); is it running? check --server"
            ) from None
        try:
            welcome: Welcome = await asyncio.wait_for(asyncio.shield(self._welcome), self.timeout)
        except TimeoutError:
            await self._drop()
            raise HubUnreachable(
                f"hub {self.url} sent no welcome within {self.timeout} s"
            ) from None
        self.welcome = welcome
        log.info("connected to %s as sid=%s", self.url, welcome.sid)
        return welcome

    async def _drop(self) -> None:
        try:
            await self.sio.disconnect()
        except Exception:  # already gone; nothing to release
            log.debug("disconnect after failure raised", exc_info=True)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()

    # -- requests ----------------------------------------------------------

    async def request(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send one event with an ack; return the success ack or raise."""
        if not self.sio.connected:
            raise HubUnreachable(f"not connected to the hub at {self.url}")
        try:
            ack = await self.sio.call(event, payload, timeout=self.timeout)
        except socketio.exceptions.TimeoutError:
            raise HubUnreachable(f"hub gave no reply to {event} within {self.timeout} s") from None
        except socketio.exceptions.BadNamespaceError:
            raise HubUnreachable(f"lost the hub at {self.url} during {event}") from None
        if not isinstance(ack, dict):
            raise SignalingError(ErrorCode.INVALID, f"hub replied to {event} with {ack!r:.80}")
        if ack.get("ok") is True:
            return ack
        error = ack.get("error") or {}
        raise signaling_error(str(error.get("code")), str(error.get("message", "")))

    async def offer(
        self, room: str, description: dict[str, str], *, private: bool = False
    ) -> dict[str, Any]:
        """``private``: keep the room out of the hub's lobby (a ``--room new`` room)."""
        payload: dict[str, Any] = {"room": room, "description": description}
        if private:
            payload["private"] = True
        return await self.request(Event.OFFER, payload)

    async def join(self, room: str) -> dict[str, Any]:
        return await self.request(Event.JOIN, {"room": room})

    async def answer(self, room: str, description: dict[str, str]) -> dict[str, Any]:
        return await self.request(Event.ANSWER, {"room": room, "description": description})

    async def candidate(self, room: str, candidate: dict[str, Any] | None) -> dict[str, Any]:
        return await self.request(Event.CANDIDATE, {"room": room, "candidate": candidate})

    async def hangup(self, room: str) -> dict[str, Any]:
        return await self.request(Event.HANGUP, {"room": room})

    async def rooms(self) -> list[dict[str, Any]]:
        ack = await self.request(Event.ROOMS, {})
        return list(ack.get("rooms", []))
