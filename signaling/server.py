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
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from . import jsoncodec, transport
from .budget import HeldBudget
from .clientlog import ClientFaultLog
from .config import Config
from .edge import CONNECTION_GUARD_KEY, ConnectionGuard, HubRunner
from .guards import RateLimitedWarning, TokenThrottle
from .metrics import Gauges, HubMetrics
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
from .sessions import (
    Connected,
    Emit,
    Sessions,
    parse_request_seq,
    parse_resume,
    resume_message,
)
from .stock import StockServer
from .turn import ice_servers

log = logging.getLogger(__name__)

CONFIG_KEY = web.AppKey("config", Config)
VENDOR_FILES = {
    "socket.io.esm.min.js": Path("node_modules/socket.io-client/dist/socket.io.esm.min.js"),
}
# Longest accepted Engine.IO message: a 64 KiB SDP, JSON-escaped, with headroom.
MAX_MESSAGE_BYTES = 200_000
PAGE_SUFFIXES = (".js", ".css")  # what the page loads from static/; nothing else is served
# Where the connect ``environ`` keeps the aiohttp request (python-engineio's driver).
REQUEST_ENVIRON_KEY = "aiohttp.request"

Handler = Callable[[str, dict[str, Any]], Outcome]


class Hub:
    """One hub: the room core, the Socket.IO server and the glue between them."""

    def __init__(self, config: Config, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.started = clock()
        self.budget = HeldBudget(
            config.max_held_bytes, config.max_held_bytes_per_address, self._warn_held_cap
        )
        self.rooms = Rooms(
            Limits(
                max_sdp_bytes=config.max_sdp_bytes,
                max_candidates=config.max_candidates,
                max_rooms_per_socket=config.max_rooms_per_socket,
                offer_ttl=config.offer_ttl,
            ),
            self.budget,
        )
        self.sessions = Sessions(self.rooms, config.resume_grace)
        self._connecting: dict[str, Connected] = {}  # sid -> its session, until welcome
        self._kicks: set[asyncio.Task[None]] = set()
        self.closing = False  # shutting down: sessions go into grace, nobody is told
        self.lobby_watchers: set[str] = set()  # session keys
        self._lobby_sent = -1
        self._lobby_stale: set[str] = set()  # watchers skipped while their queue was busy
        self.token_throttle = TokenThrottle(config.max_token_failures, config.token_failure_window)
        self.warnings = RateLimitedWarning(log)
        chosen = transport.choose(config.transport, log)
        if chosen == "stock":
            log.info(
                "transport: stock (public python-socketio API; some limits are weaker, "
                "see 'With --transport stock' in docs/security.md)"
            )
        server = OrderedServer if chosen == "lean" else StockServer
        self.sio: OrderedServer | StockServer = server(
            self.dispatch,
            self.welcome,
            max_queued_bytes=config.max_queued_bytes,
            async_mode="aiohttp",
            json=jsoncodec,
            # their own loggers would add a handler (every line twice) and log what a
            # client got wrong at ERROR, once per try
            logger=ClientFaultLog(logging.getLogger("signaling.socketio"), self.warnings, clock),
            engineio_logger=ClientFaultLog(
                logging.getLogger("signaling.engineio"), self.warnings, clock
            ),
            max_http_buffer_size=MAX_MESSAGE_BYTES,
            ping_interval=config.ping_interval,
            ping_timeout=config.ping_timeout,
            request_timeout=config.request_timeout,
            cors_allowed_origins=self._origin_allowed,
        )
        self.sio.set_on_shed(self.on_shed)
        self.metrics = HubMetrics(
            Gauges(
                sockets=lambda: self.sessions.socket_count,
                rooms=lambda: len(self.rooms),
                held_offers=lambda: len(self.rooms.lobby(self.clock())),
                held_bytes=lambda: self.budget.total,
            )
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
        """Admit or refuse a connect; a refusal leaves nothing registered.

        Any fault while reading the connect (a token that is not valid Unicode, say)
        is a refused connect with code ``invalid``, never a half-registered socket.
        """
        address = client_address(environ)
        try:
            return self._connect(sid, address, auth)
        except socketio.exceptions.ConnectionRefusedError as exc:
            self.metrics.refusals.labels(str(exc.error_args.get("message"))).inc()
            raise
        except Exception as exc:
            self._connecting.pop(sid, None)
            log.info("sid=%s connect refused: unreadable auth (%s)", sid, type(exc).__name__)
            self.metrics.refusals.labels(ErrorCode.INVALID.value).inc()
            raise _refused(
                ErrorCode.INVALID, "the connect auth could not be read; send {name?, token?}"
            ) from None

    def _connect(self, sid: str, address: str, auth: Any) -> bool:
        if auth is not None and not isinstance(auth, dict):
            raise socketio.exceptions.ConnectionRefusedError(
                "invalid",
                "auth must be an object {name?: string, token?: string, session?: string, "
                "lastSeq?: integer}",
            )
        auth = auth or {}
        if self.config.token is not None:
            now = self.clock()
            wait = self.token_throttle.wait(address, now)
            if wait:
                self.warnings.warn(
                    "token-throttle", now, "address %s throttled: too many wrong tokens", address
                )
                raise _refused(
                    ErrorCode.LIMIT,
                    f"too many wrong access tokens from your address; try again in "
                    f"{wait:.0f} s (at most {self.config.max_token_failures} per "
                    f"{self.config.token_failure_window:g} s, --max-token-failures)",
                )
            token = auth.get("token")
            if not isinstance(token, str) or not hmac.compare_digest(
                token.encode(), self.config.token.encode()
            ):
                self.token_throttle.failed(address, now)
                log.info("sid=%s connect refused: wrong or missing token", sid)
                raise socketio.exceptions.ConnectionRefusedError(
                    "unauthorized", "wrong or missing access token: this hub needs auth.token"
                )
        name = parse_name(auth)
        if "name" in auth and name is None:
            raise socketio.exceptions.ConnectionRefusedError(
                "invalid", "auth.name must be a string of 1-64 characters"
            )
        try:
            token, last_seq = parse_resume(auth)
            connected = self.sessions.connect(sid, token, last_seq, name, self.clock())
        except ValueError as exc:
            raise socketio.exceptions.ConnectionRefusedError("invalid", str(exc)) from None
        self._connecting[sid] = connected
        key = connected.session.key
        self.budget.register(key, address)
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
                "sid=%s session=%s new: resume refused (%s%s)",
                sid,
                key,
                connected.resume_error.value,
                f": {connected.ended.value}" if connected.ended else "",
            )
        else:
            log.debug("sid=%s session=%s connected name=%s", sid, key, name)
        return True

    def on_shed(self, eio_sid: str, reason: str) -> None:
        """A socket closed for breaking a limit (engine.py calls this)."""
        if reason == "hub shutdown":
            return
        limit = "send_queue" if reason.startswith("send queue") else reason.replace(" ", "_")
        self.metrics.closed.labels(limit).inc()
        if reason == "ping timeout":
            log.info("eio=%s closed: %s", eio_sid, reason)
        elif reason != "malformed packet":  # that one already has its warning
            self.warnings.warn("shed", self.clock(), "eio=%s closed: %s", eio_sid, reason)

    def _origin_allowed(self, origin: str, environ: dict[str, Any]) -> bool:
        """Engine.IO's CORS check: same origin, or one named by ``--cors-origin``."""
        if origin in self.config.cors_origins:
            return True
        host = environ.get("HTTP_HOST", "")
        return origin in (f"http://{host}", f"https://{host}")

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
            welcome["resumeMessage"] = resume_message(
                connected.resume_error, connected.ended, self.config.resume_grace
            )
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
        leaving = self.sio.is_client_disconnect(reason) and not self.closing
        emits = self.sessions.disconnect(sid, self.clock(), leaving=leaving)
        if session is not None:
            self.budget.forget(session.key)  # its held data stays charged until released
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
        started = time.perf_counter()
        handler = self._handlers.get(event)
        self.metrics.count_event(event if handler is not None else "unknown")
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
            self.metrics.refusals.labels(exc.code.value).inc()
            return exc.to_ack()
        if ack.get("ok") is False:
            error = ack["error"]
            log.info("sid=%s %s refused: %s %s", sid, event[:40], error["code"], error["message"])
            self.metrics.refusals.labels(str(error["code"])).inc()
        self.emit(emits)
        if emits:
            self.metrics.observe_relays(len(emits), time.perf_counter() - started)
        return ack

    def _warn_held_cap(self, flag: str, address: str) -> None:
        """One warning line per cap every interval: a full hub refuses callers."""
        self.warnings.warn(
            "held" + flag,
            self.clock(),
            "refusing offers and candidates: %s reached (the hub holds %d bytes; "
            "the last refused was from %s)",
            flag,
            self.budget.total,
            address,
        )

    def _offer(self, sid: str, payload: dict[str, Any]) -> Outcome:
        room = parse_room(payload, "offer")
        description = parse_description(payload, "offer", "offer", self.config.max_sdp_bytes)
        private = payload.get("private", False)
        if not isinstance(private, bool):
            raise SignalingError(
                ErrorCode.INVALID, f"offer: private must be true or false, got {private!r:.40}"
            )
        outcome = self.rooms.offer(sid, room, description, self.clock(), listed=not private)

        log.info("room=%s session=%s offer held=%s", room, sid, outcome.ack["held"])
        return outcome

    def _join(self, sid: str, payload: dict[str, Any]) -> Outcome:
        room = parse_room(payload, "join")
        outcome = self.rooms.join(sid, room, self.clock())
        log.info(
            "room=%s session=%s joined offer=%s held_candidates=%d",
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
        log.info("room=%s session=%s answered", room, sid)
        return outcome

    def _candidate(self, sid: str, payload: dict[str, Any]) -> Outcome:
        room = parse_room(payload, "candidate")
        return self.rooms.candidate(sid, room, parse_candidate(payload))

    def _hangup(self, sid: str, payload: dict[str, Any]) -> Outcome:
        room = parse_room(payload, "hangup")
        outcome = self.rooms.hangup(sid, room)
        log.info("room=%s session=%s hung up", room, sid)
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
        """Expire lonely rooms, close stalled senders, push the lobby when it changed."""
        self.sio.shed_stuck_senders(time.monotonic(), self.config.send_timeout)
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
        """Send the lobby to watchers when it changed; never stack pushes on a slow reader.

        A watcher whose previous sends are still queued is skipped and marked stale;
        it gets the then-current lobby on a later sweep, once its queue has drained.
        """
        if self.rooms.lobby_version != self._lobby_sent:
            self._lobby_sent = self.rooms.lobby_version
            self._lobby_stale = set(self.lobby_watchers)
        if not self._lobby_stale:
            return
        lobby = {"rooms": self.rooms.lobby(self.clock())}
        for key in list(self._lobby_stale):
            session = self.sessions.of_key(key)
            if session is None:
                self.lobby_watchers.discard(key)
                self._lobby_stale.discard(key)
            elif session.socket is not None and not self.sio.backlogged(session.socket):
                self._lobby_stale.discard(key)
                self.sio.send_now(session.socket, Event.ROOMS, lobby)

    async def shutdown(self) -> None:
        """Close every socket without telling anyone a peer left; bounded by drain_timeout.

        A hub going away is not a party leaving: both parties' media flows peer to
        peer and may well outlive the hub, so nobody gets ``hangup``. What was queued
        may still go out for up to ``drain_timeout`` seconds; then every transport
        is aborted, which a Socket.IO client takes as a lost connection (it
        reconnects), not as the server sending it away. What was open is logged.
        """
        self.closing = True
        await self.cancel_kicks()
        paired = sum(1 for name in self.rooms.names() if (r := self.rooms.get(name)) and r.paired)
        log.info(
            "shutting down: closing %d sockets; %d rooms open (%d in a call, %d held offers, "
            "%d other waiting)",
            self.sessions.socket_count,
            len(self.rooms),
            paired,
            len(self.rooms.lobby(self.clock())),
            len(self.rooms) - paired - len(self.rooms.lobby(self.clock())),
        )
        await self.sio.close_all(self.config.drain_timeout)
        await self.sio.shutdown()

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


async def _shutdown(app: web.Application) -> None:
    await app[HUB_KEY].shutdown()
    # what the transport closed but its client kept open (the stock transport can
    # only send Engine.IO's CLOSE, which a WebSocket client may ignore) ends here,
    # instead of waiting out aiohttp's shutdown timeout
    app[CONNECTION_GUARD_KEY].abort_all()


def _seconds(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[HUB_KEY].metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


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


def _page_files(static_dir: Path) -> list[Path]:
    """The page's own modules and style sheet: top-level ``static/*.js`` and ``*.css``.

    Nothing else under ``static/`` is served: not ``node_modules/`` (the one vendor
    file the page imports has its own route), not ``package*.json``.
    """
    if not static_dir.is_dir():
        return []
    return sorted(p for p in static_dir.iterdir() if p.is_file() and p.suffix in PAGE_SUFFIXES)


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
    for path in _page_files(static_dir):
        kind = "text/javascript" if path.suffix == ".js" else "text/css"
        app.router.add_get(
            f"/static/{path.name}", _file_route(path, f"{path.name} is missing", kind)
        )


def client_address(environ: dict[str, Any]) -> str:
    """The peer address of the connection behind a Socket.IO connect."""
    request = environ.get(REQUEST_ENVIRON_KEY)
    remote = getattr(request, "remote", None)
    return remote if isinstance(remote, str) else ""


def _refused(code: ErrorCode, message: str) -> socketio.exceptions.ConnectionRefusedError:
    """A refused connect: the client sees ``code`` as the error message, ``message`` as data."""
    return socketio.exceptions.ConnectionRefusedError(code.value, message)


HUB_KEY: web.AppKey[Hub] = web.AppKey("hub", Hub)


def content_security_policy(host: str) -> str:
    """The page's CSP: its own files only, its own hub only, never inside a frame."""
    return "; ".join(
        (
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "media-src 'self' blob: mediastream:",
            f"connect-src 'self' ws://{host} wss://{host}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """On every response: no MIME sniffing, no framing, no token in the Referer."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if not response.headers.get("Content-Type", "").startswith("application/json"):
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Content-Security-Policy", content_security_policy(request.host))


def _host_guard(allowed: tuple[str, ...]) -> Any:
    """Refuse requests whose Host is not one of ``--allowed-host`` (DNS rebinding)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        host = (request.url.host or "").lower().strip("[]")
        if host not in allowed:
            raise web.HTTPMisdirectedRequest(
                text=f"this hub does not answer to host {host[:64]!r} (see --allowed-host)"
            )
        response: web.StreamResponse = await handler(request)
        return response

    return middleware


def make_runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """The runner for a hub app: it caps connections per client address."""
    return HubRunner(app, **kwargs)


def create_app(config: Config | None = None) -> web.Application:
    """Build the hub: Socket.IO at ``/socket.io/``, the page at ``/``, ``/healthz``.

    Serve it with :func:`make_runner` so the per-address connection cap applies.
    """
    config = config or Config()
    hub = Hub(config)
    guard = ConnectionGuard(
        config.max_connections_per_address,
        on_shed=hub.metrics.closed.labels("connections_per_address").inc,
        request_timeout=config.request_timeout,
        on_request_timeout=hub.metrics.closed.labels("request_timeout").inc,
    )
    middlewares = [guard.middleware]
    if config.allowed_hosts:
        middlewares.append(_host_guard(config.allowed_hosts))
    # keepalive_timeout runs from the moment a connection opens: slow headers end there
    # aiohttp's logger would write a traceback for every request that does not parse
    server_log = ClientFaultLog(logging.getLogger("aiohttp.server"), hub.warnings, hub.clock)
    app = web.Application(
        middlewares=middlewares,
        handler_args={"keepalive_timeout": config.request_timeout, "logger": server_log},
    )
    app[CONFIG_KEY] = config
    app[HUB_KEY] = hub
    app[CONNECTION_GUARD_KEY] = guard
    app.on_response_prepare.append(_security_headers)
    hub.sio.attach(app)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/metrics", _metrics)
    _static_routes(app, config.static_dir)
    app.cleanup_ctx.append(_background)
    app.on_shutdown.append(_shutdown)
    return app
