"""The hub's I/O edge: Socket.IO events in, room-core calls, events out.

``create_app(config)`` is the one factory, used by the CLI and every test. The
handlers only parse, call :class:`~signaling.rooms.Rooms` and send what it
returns; all rules live in the core.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import socketio
from aiohttp import web

from . import jsoncodec
from .config import Config
from .ordered import OrderedServer
from .protocol import (
    ErrorCode,
    Event,
    SignalingError,
    ok,
    parse_candidate,
    parse_description,
    parse_name,
    parse_room,
    require_object,
)
from .rooms import Limits, Outcome, Rooms
from .sessions import Connected, Emit, Sessions, parse_request_seq, parse_resume
from .turn import ice_servers

log = logging.getLogger(__name__)

CONFIG_KEY = web.AppKey("config", Config)
VENDOR_FILES = {
    "socket.io.esm.min.js": Path("node_modules/socket.io-client/dist/socket.io.esm.min.js"),
}
# Longest accepted Engine.IO message: a 64 KiB SDP, JSON-escaped, with headroom.
MAX_MESSAGE_BYTES = 200_000

Handler = Callable[[str, dict[str, Any]], Outcome]


class Hub:
    """One hub: the room core, the Socket.IO server and the glue between them."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.started = clock()
        self.rooms = Rooms(
            Limits(
                max_sdp_bytes=config.max_sdp_bytes,
                max_candidates=config.max_candidates,
                max_rooms_per_socket=config.max_rooms_per_socket,
                offer_ttl=config.offer_ttl,
            )
        )
        self.sessions = Sessions(self.rooms, config.resume_grace)
        self._connecting: dict[str, Connected] = {}  # sid -> its session, until welcome
        self._kicks: set[asyncio.Task[None]] = set()
        self.closing = False  # shutting down: sessions go into grace, nobody is told
        self.lobby_watchers: set[str] = set()  # session keys
        self._lobby_sent = -1
        self.sio = OrderedServer(
            self.dispatch,
            self.welcome,
            async_mode="aiohttp",
            json=jsoncodec,
            logger=False,
            engineio_logger=False,
            max_http_buffer_size=MAX_MESSAGE_BYTES,
        )
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self._handlers: dict[str, Handler] = {
            Event.OFFER: self._offer,
            Event.JOIN: self._join,
            Event.ANSWER: self._answer,
            Event.CANDIDATE: self._candidate,
            Event.HANGUP: self._hangup,
            Event.ROOMS: self._rooms,
            Event.BYE: self._bye,
        }

    # -- connection lifecycle ---------------------------------------------

    def on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        if auth is not None and not isinstance(auth, dict):
            raise socketio.exceptions.ConnectionRefusedError(
                "invalid",
                "auth must be an object {name?: string, token?: string, session?: string, "
                "lastSeq?: integer}",
            )
        auth = auth or {}
        if self.config.token is not None:
            token = auth.get("token")
            if not isinstance(token, str) or not hmac.compare_digest(
                token.encode(), self.config.token.encode()
            ):
                log.info("sid=%s connect refused: wrong or missing token", sid)
                raise socketio.exceptions.ConnectionRefusedError(
                    "unauthorized", "this hub needs an access token (auth.token)"
                )
        name = parse_name(auth)
        if "name" in auth and name is None:
            raise socketio.exceptions.ConnectionRefusedError(
                "invalid", "auth.name must be a string of 1-64 characters"
            )
        try:
            token, last_seq = parse_resume(auth)
        except ValueError as exc:
            raise socketio.exceptions.ConnectionRefusedError("invalid", str(exc)) from None
        connected = self.sessions.connect(sid, token, last_seq, name, self.clock())
        self._connecting[sid] = connected
        key = connected.session.key
        if connected.resumed:
            log.info(
                "sid=%s session=%s resumed from seq %d: %d events to replay%s",
                sid,
                key,
                last_seq,
                len(connected.replay),
                f", taking over sid={connected.kicked}" if connected.kicked else "",
            )
        elif connected.resume_error is not None:
            log.info(
                "sid=%s session=%s new: resume refused (%s)",
                sid,
                key,
                connected.resume_error.value,
            )
        else:
            log.debug("sid=%s session=%s connected name=%s", sid, key, name)
        return True

    def welcome(self, sid: str) -> None:
        """``welcome``, then the replay of a resumed session, then what others must hear."""
        connected = self._connecting.pop(sid, None)
        if connected is None:
            return
        welcome: dict[str, Any] = {
            "sid": sid,
            "session": connected.session.token,
            "resumed": connected.resumed,
            "iceServers": self.ice_servers_for(sid),
            "limits": {
                "maxSdpBytes": self.config.max_sdp_bytes,
                "maxCandidates": self.config.max_candidates,
                "offerTtlSeconds": _seconds(self.config.offer_ttl),
                "resumeGraceSeconds": _seconds(self.config.resume_grace),
            },
        }
        if connected.resume_error is not None:
            welcome["resumeError"] = connected.resume_error.value
        self.sio.send_now(sid, Event.WELCOME, welcome)
        self.emit(connected.replay)
        self.emit(connected.others)
        if connected.kicked is not None:
            task = asyncio.ensure_future(self._kick(connected.kicked))
            self._kicks.add(task)
            task.add_done_callback(self._kicks.discard)

    async def cancel_kicks(self) -> None:
        """Cancel and await the disconnects of taken-over sockets still under way."""
        for task in list(self._kicks):
            task.cancel()
        await asyncio.gather(*self._kicks, return_exceptions=True)

    async def _kick(self, sid: str) -> None:
        """Disconnect a socket whose session a newer socket took over (half-open, most likely)."""
        log.info("sid=%s disconnected: its session was taken over", sid)
        await self.sio.disconnect(sid)

    def ice_servers_for(self, sid: str) -> list[dict[str, Any]]:
        """The ``iceServers`` of one ``welcome``: static ones plus fresh TURN credentials.

        The TURN id is random, not the sid or session: usernames travel in the clear.
        """
        turn = self.config.turn
        if turn is None:
            return list(self.config.ice_servers)
        turn_id = secrets.token_urlsafe(9)
        log.debug("sid=%s TURN user id=%s ttl=%ss", sid, turn_id, turn.ttl)
        return ice_servers(self.config.ice_servers, turn, time.time(), turn_id)

    def on_disconnect(self, sid: str, reason: Any = None) -> None:
        """A socket closed: its session leaves (client's own close) or goes into grace."""
        self._connecting.pop(sid, None)
        session = self.sessions.of_socket(sid)
        leaving = reason == self.sio.reason.CLIENT_DISCONNECT and not self.closing
        emits = self.sessions.disconnect(sid, self.clock(), leaving=leaving)
        if session is not None and session.away:
            log.info(
                "sid=%s session=%s away (%s), grace %ss",
                sid,
                session.key,
                reason,
                self.config.resume_grace,
            )
        if self.closing:
            return  # every socket is closing: nobody to tell
        for emit in emits:
            log.info(
                "room=%s sid=%s %s -> telling sid=%s",
                emit.payload.get("room"),
                sid,
                emit.event,
                emit.to,
            )
        self.emit(emits)

    def emit(self, emits: list[Emit]) -> None:
        for emit in emits:
            if not self.sio.send_now(emit.to, emit.event, emit.payload):
                log.debug(
                    "sid=%s gone before %s could reach it; kept for its resume", emit.to, emit.event
                )

    # -- events -----------------------------------------------------------

    def dispatch(self, sid: str, event: str, args: list[Any]) -> dict[str, Any]:
        """Run one event to completion; return its ack value."""
        handler = self._handlers.get(event)
        try:
            if handler is None:
                raise SignalingError(
                    ErrorCode.UNKNOWN_EVENT,
                    f"unknown event {event[:40]!r}; accepted: "
                    + ", ".join(str(e) for e in self._handlers),
                )
            payload = require_object(args[0] if args else None, event)
            seq = parse_request_seq(payload, event)
            if event == Event.BYE:
                return self._bye(sid, payload).ack
            ack, emits = self.sessions.request(sid, seq, lambda s: handler(s.key, payload))
        except SignalingError as exc:
            log.info("sid=%s %s refused: %s %s", sid, event[:40], exc.code.value, exc.message)
            return exc.to_ack()
        if ack.get("ok") is False:
            error = ack["error"]
            log.info("sid=%s %s refused: %s %s", sid, event[:40], error["code"], error["message"])
        self.emit(emits)
        return ack

    def _offer(self, sid: str, payload: dict[str, Any]) -> Outcome:
        room = parse_room(payload, "offer")
        description = parse_description(payload, "offer", "offer", self.config.max_sdp_bytes)
        outcome = self.rooms.offer(sid, room, description, self.clock())
        log.info("room=%s sid=%s offer held=%s", room, sid, outcome.ack["held"])
        return outcome

    def _join(self, sid: str, payload: dict[str, Any]) -> Outcome:
        room = parse_room(payload, "join")
        outcome = self.rooms.join(sid, room, self.clock())
        log.info(
            "room=%s sid=%s joined offer=%s held_candidates=%d",
            room,
            sid,
            outcome.ack["offer"] is not None,
            len(outcome.ack["candidates"]),
        )
        return outcome

    def _answer(self, sid: str, payload: dict[str, Any]) -> Outcome:
        room = parse_room(payload, "answer")
        description = parse_description(payload, "answer", "answer", self.config.max_sdp_bytes)
        outcome = self.rooms.answer(sid, room, description)
        log.info("room=%s sid=%s answered", room, sid)
        return outcome

    def _candidate(self, sid: str, payload: dict[str, Any]) -> Outcome:
        room = parse_room(payload, "candidate")
        return self.rooms.candidate(sid, room, parse_candidate(payload))

    def _hangup(self, sid: str, payload: dict[str, Any]) -> Outcome:
        room = parse_room(payload, "hangup")
        outcome = self.rooms.hangup(sid, room)
        log.info("room=%s sid=%s hung up", room, sid)
        return outcome

    def _bye(self, sid: str, payload: dict[str, Any]) -> Outcome:
        """End the socket's session now; the connection goes on with a fresh session."""
        old = self.sessions.of_socket(sid)
        session, emits = self.sessions.bye(sid, self.rooms.name_of(old.key) if old else None)
        log.info(
            "sid=%s session=%s bye -> new session=%s", sid, old.key if old else None, session.key
        )
        self.emit(emits)
        return Outcome(ok(session=session.token))

    def _rooms(self, sid: str, payload: dict[str, Any]) -> Outcome:
        watch = payload.get("watch")
        if watch is not None and not isinstance(watch, bool):
            raise SignalingError(
                ErrorCode.INVALID, f"rooms: watch must be true or false, got {watch!r}"
            )
        if watch:
            self.lobby_watchers.add(sid)
        elif watch is False:
            self.lobby_watchers.discard(sid)
        return Outcome(ok(rooms=self.rooms.lobby(self.clock())))

    # -- background work --------------------------------------------------

    def sweep(self) -> None:
        """Expire lonely rooms; push the lobby to watchers when it changed."""
        emits = self.sessions.expire(self.clock())
        for emit in emits:
            log.info(
                "room=%s %s %s -> sid=%s",
                emit.payload.get("room"),
                emit.event,
                emit.payload.get("reason"),
                emit.to,
            )
        self.emit(emits)
        self.push_lobby()

    def push_lobby(self) -> None:
        if self.rooms.lobby_version == self._lobby_sent:
            return
        self._lobby_sent = self.rooms.lobby_version
        if not self.lobby_watchers:
            return
        lobby = {"rooms": self.rooms.lobby(self.clock())}
        for key in list(self.lobby_watchers):
            session = self.sessions.of_key(key)
            if session is None:
                self.lobby_watchers.discard(key)
            elif session.socket is not None:
                self.sio.send_now(session.socket, Event.ROOMS, lobby)

    def health(self) -> dict[str, Any]:
        lobby = self.rooms.lobby(self.clock())
        return {
            "status": "ok",
            "rooms": len(self.rooms),
            "heldOffers": len(lobby),
            "sockets": self.sessions.socket_count,
            "sessions": len(self.sessions),
            "awaySessions": self.sessions.away_count,
            "uptimeSeconds": round(self.clock() - self.started, 3),
        }


async def _background(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB_KEY]
    interval = min(hub.config.lobby_interval, hub.config.sweep_interval, hub.config.offer_ttl / 4)

    async def loop() -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                hub.sweep()
            except Exception:  # keep sweeping whatever one pass hit
                log.exception("sweep failed")

    task = asyncio.create_task(loop(), name="signaling-sweep")
    yield
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass


async def _close_sockets(app: web.Application) -> None:
    """On shutdown, drop every client's connection so their sessions go into grace.

    No Engine.IO CLOSE packet is sent: to a client that packet means "the server
    closed this on purpose", after which python-socketio does not reconnect. A
    connection that simply ends is what a restart looks like to every client, and
    each reconnects and resumes (or, on a memory hub, learns its session is gone).
    """
    hub = app[HUB_KEY]
    hub.closing = True
    await hub.cancel_kicks()
    sio = hub.sio
    for socket in list(sio.eio.sockets.values()):
        await socket.close(wait=False, abort=True, reason=sio.eio.reason.TRANSPORT_CLOSE)
        socket.queue.put_nowait(None)  # wakes a lean writer, which closes the WebSocket
    await sio.shutdown()


def _seconds(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response(request.app[HUB_KEY].health())


def _file_route(path: Path, missing: str, content_type: str | None = None) -> Any:
    """Serve one file; a clear 404 names the setup step when it is absent."""
    headers = {"Content-Type": content_type} if content_type else None
    present = path.is_file()  # checked once: the page and vendor files ship with setup

    async def handler(request: web.Request) -> web.StreamResponse:
        if not present:
            raise web.HTTPNotFound(text=missing)
        return web.FileResponse(path, headers=headers)

    return handler


def _static_routes(app: web.Application, static_dir: Path) -> None:
    app.router.add_get(
        "/",
        _file_route(static_dir / "index.html", "the call page is missing (static/index.html)"),
    )
    for name, rel in VENDOR_FILES.items():
        app.router.add_get(
            f"/vendor/{name}",
            _file_route(
                static_dir / rel,
                f"{name} is missing: run `make setup` (npm ci in static/)",
                "text/javascript",
            ),
        )
    if static_dir.is_dir():
        app.router.add_static("/static/", static_dir, follow_symlinks=False)


HUB_KEY: web.AppKey[Hub] = web.AppKey("hub", Hub)


def create_app(config: Config | None = None) -> web.Application:
    """Build the hub: Socket.IO at ``/socket.io/``, the page at ``/``, ``/healthz``."""
    config = config or Config()
    app = web.Application()
    hub = Hub(config)
    app[CONFIG_KEY] = config
    app[HUB_KEY] = hub
    hub.sio.attach(app)
    app.router.add_get("/healthz", _healthz)
    _static_routes(app, config.static_dir)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_close_sockets)
    return app
