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
from typing import Any, NoReturn

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
    MAX_LOBBY_ROOMS,
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
    new_session_token,
    parse_request_seq,
    parse_resume,
    resume_message,
)
from .shared import SharedStore
from .stock import StockServer
from .transport import Deferred
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
UNAVAILABLE_MESSAGE = (
    "the hub cannot reach its Redis (--redis) right now, so it cannot take requests; "
    "nothing was changed, try again in a moment"
)


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
        self.hub_id = secrets.token_hex(4)  # names this process in the shared op stream
        self._fresh: str | None = None  # the new-session token an op carries (see _new_token)
        self.sessions = Sessions(self.rooms, config.resume_grace, self._new_token)
        # every attached socket of the hub group -> the hub that holds it: with --redis a
        # dead hub's sockets are known to the others
        self.socket_hub: dict[str, str] = {}
        self.store = SharedStore(self, config.redis, config.redis_prefix) if config.redis else None
        self._origin = True  # False while applying another hub's op: its lines are its own
        self._now = clock()  # the time of the op being applied
        self._connecting: dict[str, Connected] = {}  # sid -> its session, until welcome
        self._kicks: set[asyncio.Task[None]] = set()
        self.closing = False  # shutting down: sessions go into grace, nobody is told
        # False once the CLI's site could not listen: a hub that never served has no
        # shutdown to report
        self.served = True
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
                held_offers=lambda: self.rooms.held_count,
                held_bytes=lambda: self.budget.total,
                sessions=lambda: len(self.sessions),
                away_sessions=lambda: self.sessions.away_count,
                uptime=lambda: self.clock() - self.started,
            )
        )
        self.sio.on("connect", self.on_connect if self.store is None else self.on_connect_shared)
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
            token, last_seq, name = self._check_connect(sid, address, auth)
            try:
                connected = self._apply_connect(
                    sid, self.hub_id, address, token, last_seq, name, self.clock()
                )
            except ValueError as exc:
                raise socketio.exceptions.ConnectionRefusedError("invalid", str(exc)) from None
            self._log_connected(sid, connected, last_seq, name)
            return True
        except socketio.exceptions.ConnectionRefusedError as exc:
            self.metrics.refusals.labels(str(exc.error_args.get("message"))).inc()
            raise
        except Exception as exc:
            self._unreadable_auth(sid, exc)

    async def on_connect_shared(self, sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
        """:meth:`on_connect` with ``--redis``: the session comes from the shared op stream."""
        assert self.store is not None
        address = client_address(environ)
        try:
            token, last_seq, name = self._check_connect(sid, address, auth)
            if not self.store.available:
                raise _refused(ErrorCode.UNAVAILABLE, UNAVAILABLE_MESSAGE)
            op = {
                "kind": "connect",
                "sid": sid,
                "address": address,
                "token": token,
                "lastSeq": last_seq,
                "name": name,
                "fresh": new_session_token(),
            }
            result = await self.store.submit(op).wait()
            if result is None:
                raise _refused(ErrorCode.UNAVAILABLE, UNAVAILABLE_MESSAGE)
            if isinstance(result, str):
                raise socketio.exceptions.ConnectionRefusedError("invalid", result)
            self._log_connected(sid, result, last_seq, name)
            if not self.sio.is_open(sid):  # it closed while its op went round
                self.abandon_connect(sid)
                return False
            return True
        except socketio.exceptions.ConnectionRefusedError as exc:
            self.metrics.refusals.labels(str(exc.error_args.get("message"))).inc()
            raise
        except Exception as exc:
            self._unreadable_auth(sid, exc)

    def _unreadable_auth(self, sid: str, exc: Exception) -> NoReturn:
        self._connecting.pop(sid, None)
        log.info("sid=%s connect refused: unreadable auth (%s)", sid, type(exc).__name__)
        self.metrics.refusals.labels(ErrorCode.INVALID.value).inc()
        raise _refused(
            ErrorCode.INVALID, "the connect auth could not be read; send {name?, token?}"
        ) from None

    def abandon_connect(self, sid: str) -> None:
        """A connect whose op took effect after its socket was gone: detach it again."""
        self._connecting.pop(sid, None)
        if self.store is not None:
            self.store.post({"kind": "disconnect", "sid": sid, "leaving": False, "reason": None})

    def _new_token(self) -> str:
        """A new session's token: the one its op carries (every hub opens the same
        session), or a fresh one."""
        fresh, self._fresh = self._fresh, None
        return fresh if fresh is not None else new_session_token()

    def _check_connect(
        self, sid: str, address: str, auth: Any
    ) -> tuple[str | None, int, str | None]:
        """This hub's own checks of a connect (token, throttle, auth shape): the resume
        token, lastSeq and name, or a refusal."""
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
            if token is None:
                # no guess was made: it does not count toward the wrong-token throttle
                log.info("sid=%s connect refused: no token", sid)
                raise socketio.exceptions.ConnectionRefusedError(
                    "unauthorized", "missing access token: this hub needs auth.token"
                )
            if not isinstance(token, str) or not hmac.compare_digest(
                token.encode(), self.config.token.encode()
            ):
                self.token_throttle.failed(address, now)
                log.info("sid=%s connect refused: wrong token", sid)
                raise socketio.exceptions.ConnectionRefusedError(
                    "unauthorized", "wrong access token: this hub needs auth.token"
                )
        name = parse_name(auth)
        if "name" in auth and name is None:
            raise socketio.exceptions.ConnectionRefusedError(
                "invalid",
                "auth.name must be a string of 1-64 printable characters (no control, "
                "surrogate or bidi-override characters)",
            )
        try:
            token, last_seq = parse_resume(auth)
        except ValueError as exc:
            raise socketio.exceptions.ConnectionRefusedError("invalid", str(exc)) from None
        return token, last_seq, name

    def _apply_connect(
        self,
        sid: str,
        hub: str,
        address: str,
        token: str | None,
        last_seq: int,
        name: str | None,
        now: float,
        fresh: str | None = None,
    ) -> Connected:
        """Attach ``sid`` (held by ``hub``) to its session; raises ``ValueError`` (a
        sentence, nothing changed). Every hub of a group applies every connect."""
        self._fresh = fresh
        try:
            connected = self.sessions.connect(sid, token, last_seq, name, now)
        finally:
            self._fresh = None
        self.socket_hub[sid] = hub
        self.budget.register(connected.session.key, address)
        if hub == self.hub_id:
            self._connecting[sid] = connected  # its replay waits for the welcome
        kicked = connected.kicked
        if kicked is not None and self.socket_hub.pop(kicked, None) == self.hub_id:
            task = asyncio.ensure_future(self._kick(kicked))
            self._kicks.add(task)
            task.add_done_callback(self._kicks.discard)
        self.emit(connected.others)  # peer_back, or the hangups of a gap: to other parties
        return connected

    def _log_connected(
        self, sid: str, connected: Connected, last_seq: int, name: str | None
    ) -> None:
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
                "sid=%s session=%s new: resume refused (%s%s)",
                sid,
                key,
                connected.resume_error.value,
                f": {connected.ended.value}" if connected.ended else "",
            )
        else:
            log.debug("sid=%s session=%s connected name=%s", sid, key, name)

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
        # what it missed, and what reached its session since (see emit): in seq order
        self.emit(connected.replay)

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
        leaving = self.sio.is_client_disconnect(reason) and not self.closing
        if self.store is not None:
            # written even while Redis is away: the store retries until it is back
            op = {"kind": "disconnect", "sid": sid, "leaving": leaving, "reason": str(reason)}
            self.store.post(op)
            return
        self._apply_disconnect(sid, self.clock(), leaving, reason)

    def _apply_disconnect(self, sid: str, now: float, leaving: bool, reason: Any = None) -> None:
        session = self.sessions.of_socket(sid)
        emits = self.sessions.disconnect(sid, now, leaving=leaving)
        self.socket_hub.pop(sid, None)
        if session is not None:
            self.budget.forget(session.key)  # its held data stays charged until released
        if session is not None and session.away and self._origin:
            log.info(
                "sid=%s session=%s away (%s), grace %ss",
                sid,
                session.key,
                reason or "its hub is gone",
                self.config.resume_grace,
            )
        if self.closing:
            return  # every socket is closing: nobody to tell
        for emit in emits:
            self._note(
                "room=%s sid=%s %s -> telling sid=%s",
                emit.payload.get("room"),
                sid,
                emit.event,
                emit.to,
            )
        self.emit(emits)

    def emit(self, emits: list[Emit]) -> None:
        """Send each event to its socket, if this hub holds it (with --redis every hub
        applies every op, and each sends to its own sockets)."""
        connecting = self._connecting
        for emit in emits:
            if connecting and emit.to in connecting:
                # its CONNECT is not sent yet: the event follows the welcome, in order
                connecting[emit.to].replay.append(emit)
            elif not self.sio.send_now(emit.to, emit.event, emit.payload):
                log.debug(
                    "sid=%s gone before %s could reach it; kept for its resume", emit.to, emit.event
                )

    # -- events -----------------------------------------------------------

    def dispatch(self, sid: str, event: str, args: list[Any]) -> dict[str, Any] | Deferred:
        """Run one event to completion; return its ack value.

        With ``--redis``, a :class:`~signaling.transport.Deferred` ack: the event
        becomes an op on the shared stream and runs when it comes back, on every hub.
        """
        if self.store is not None:
            op: dict[str, Any] = {"kind": "request", "sid": sid, "event": event, "args": args}
            if event == Event.BYE:
                op["fresh"] = new_session_token()
            return self.store.submit(op)
        return self._apply_request(sid, event, args, self.clock(), time.perf_counter())

    def _apply_request(
        self,
        sid: str,
        event: str,
        args: list[Any],
        now: float,
        started: float,
        fresh: str | None = None,
    ) -> dict[str, Any]:
        """Run one request on this hub's copy of the state; send its relays; the ack."""
        self._now = now
        self._fresh = fresh
        handler = self._handlers.get(event)
        if self._origin:
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
            ack, emits = exc.to_ack(), []
        finally:
            self._fresh = None
        if self._origin and ack.get("ok") is False:
            error = ack["error"]
            log.info("sid=%s %s refused: %s %s", sid, event[:40], error["code"], error["message"])
            self.metrics.refusals.labels(str(error["code"])).inc()
        self.emit(emits)
        if emits and self._origin:
            self.metrics.observe_relays(len(emits), time.perf_counter() - started)
        return ack

    def _note(self, message: str, *args: object) -> None:
        """An info line about a request, logged by the hub that took it only."""
        if self._origin:
            log.info(message, *args)

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
        outcome = self.rooms.offer(sid, room, description, self._now, listed=not private)
        self._note("room=%s session=%s offer held=%s", room, sid, outcome.ack["held"])
        return outcome

    def _join(self, sid: str, payload: dict[str, Any]) -> Outcome:
        room = parse_room(payload, "join")
        outcome = self.rooms.join(sid, room, self._now)
        self._note(
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
        self._note("room=%s session=%s answered", room, sid)
        return outcome

    def _candidate(self, sid: str, payload: dict[str, Any]) -> Outcome:
        room = parse_room(payload, "candidate")
        return self.rooms.candidate(sid, room, parse_candidate(payload))

    def _hangup(self, sid: str, payload: dict[str, Any]) -> Outcome:
        room = parse_room(payload, "hangup")
        outcome = self.rooms.hangup(sid, room)
        self._note("room=%s session=%s hung up", room, sid)
        return outcome

    def _bye(self, sid: str, payload: dict[str, Any]) -> Outcome:
        """End the socket's session now; the connection goes on with a fresh session."""
        old = self.sessions.of_socket(sid)
        session, emits = self.sessions.bye(sid, self.rooms.name_of(old.key) if old else None)
        self._note(
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
        return Outcome(ok(**self.lobby(self._now)))

    # -- the shared op stream (--redis) ------------------------------------

    def apply(self, op: dict[str, Any]) -> Any:
        """Apply one op of the group's stream to this hub's copy of the state.

        Every hub applies every op in stream order, so every copy is the same; each
        hub sends only to the sockets it holds. Returns what the op's own hub waits
        for: an ack, a :class:`~signaling.sessions.Connected` or a refusal sentence.
        Ops are this hub's own JSON (signaling/shared.py writes them).
        """
        self._origin = op["hub"] == self.hub_id
        now = op["now"]
        try:
            kind = op["kind"]
            if kind == "request":
                return self._apply_request(
                    op["sid"], op["event"], op["args"], now, op["started"], op.get("fresh")
                )
            if kind == "connect":
                try:
                    return self._apply_connect(
                        op["sid"],
                        op["hub"],
                        op["address"],
                        op["token"],
                        op["lastSeq"],
                        op["name"],
                        now,
                        op["fresh"],
                    )
                except ValueError as exc:
                    return str(exc)
            if kind == "disconnect":
                self._apply_disconnect(op["sid"], now, op["leaving"], op.get("reason"))
            elif kind == "expire":
                self._apply_expire(now)
            elif kind == "hub_down":
                self._apply_hub_down(op["dead"], now)
            return None
        finally:
            self._origin = True

    def _apply_hub_down(self, dead: str, now: float) -> None:
        """A hub stopped beating: its sockets are gone, their sessions go into grace."""
        sids = [sid for sid, hub in self.socket_hub.items() if hub == dead]
        if self._origin or dead == self.hub_id:
            log.warning("hub %s is gone: %d of its sockets' sessions into grace", dead, len(sids))
        for sid in sids:
            self._apply_disconnect(sid, now, leaving=False)
        if dead == self.hub_id:
            # the group took this hub for dead (it was cut off from Redis too long):
            # its sockets no longer have sessions here; they reconnect and resume
            self.sio.abort_all()

    def unavailable(self, op: dict[str, Any]) -> Any:
        """What an op that could not reach Redis resolves to for its waiter."""
        if op["kind"] == "request":
            self.metrics.refusals.labels(ErrorCode.UNAVAILABLE.value).inc()
            return SignalingError(ErrorCode.UNAVAILABLE, UNAVAILABLE_MESSAGE).to_ack()
        return None

    def shared_state(self) -> tuple[Any, ...]:
        """What a snapshot of the group's state holds (signaling/snapshot.py)."""
        return (self.budget, self.rooms, self.sessions, self.socket_hub, self.lobby_watchers)

    def load_shared_state(self, state: tuple[Any, ...]) -> None:
        self.budget, self.rooms, self.sessions, self.socket_hub, self.lobby_watchers = state
        self.budget.on_refused = self._warn_held_cap
        self.sessions.set_new_token(self._new_token)
        self._lobby_sent = -1

    # -- background work --------------------------------------------------

    def sweep(self) -> None:
        """Expire lonely rooms, close stalled senders, push the lobby when it changed."""
        self.sio.shed_stuck_senders(time.monotonic(), self.config.send_timeout)
        if self.store is None:  # with --redis, the group's leader writes expire ops
            self._apply_expire(self.clock())
        self.push_lobby()

    def _apply_expire(self, now: float) -> None:
        emits = self.sessions.expire(now)
        for emit in emits:
            self._note(
                "room=%s %s %s -> sid=%s",
                emit.payload.get("room"),
                emit.event,
                emit.payload.get("reason"),
                emit.to,
            )
        self.emit(emits)

    def lobby(self, now: float) -> dict[str, Any]:
        """``{"rooms": [...]}``, the oldest :data:`MAX_LOBBY_ROOMS`; *extension*
        ``"more": n`` when n more wait. Bounded, so a lobby filled by one client can
        never outgrow a watcher's send queue (which would close the watcher)."""
        rooms = self.rooms.lobby(now)
        if len(rooms) <= MAX_LOBBY_ROOMS:
            return {"rooms": rooms}
        return {"rooms": rooms[:MAX_LOBBY_ROOMS], "more": len(rooms) - MAX_LOBBY_ROOMS}

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
        lobby = self.lobby(self.clock())
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
        if self.served:
            self._log_shutdown()
        await self.sio.close_all(self.config.drain_timeout)
        await self.sio.shutdown()

    def _log_shutdown(self) -> None:
        paired = sum(1 for name in self.rooms.names() if (r := self.rooms.get(name)) and r.paired)
        log.info(
            "shutting down: closing %d sockets; %d rooms open (%d in a call, %d held offers, "
            "%d other waiting)",
            self.sessions.socket_count,
            len(self.rooms),
            paired,
            self.rooms.held_count,
            len(self.rooms) - paired - self.rooms.held_count,
        )

    def health(self) -> dict[str, Any]:
        if self.closing:
            status = "draining"
        elif self.store is not None and not self.store.available:
            status = "unavailable"
        else:
            status = "ok"
        return {
            "status": status,
            "rooms": len(self.rooms),
            "heldOffers": self.rooms.held_count,
            "sockets": self.sessions.socket_count,
            "sessions": len(self.sessions),
            "awaySessions": self.sessions.away_count,
            "uptimeSeconds": round(self.clock() - self.started, 3),
            **({"hub": self.hub_id} if self.store is not None else {}),
        }


async def _background(app: web.Application) -> AsyncIterator[None]:
    hub = app[HUB_KEY]
    if hub.store is not None:
        await hub.store.start()  # StoreError: the hub does not start
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
    hub = app[HUB_KEY]
    await hub.shutdown()
    if hub.store is not None:
        await hub.store.stop()  # after the sockets' disconnects are queued: they go out
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
    """200 while the hub takes calls; 503 while it drains or cannot reach its Redis, so a
    load balancer's health check takes it out of rotation."""
    health = request.app[HUB_KEY].health()
    return web.json_response(health, status=200 if health["status"] == "ok" else 503)


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
    """On every response: no MIME sniffing, no framing, no token in the Referer.

    Not on a WebSocket upgrade's 101: it carries no document to sniff, frame or refer
    from, and it is the one response every client gets.
    """
    if response.status == 101:
        return
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
    hub = Hub(config, time.time if config.redis else time.monotonic)
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
        handler_args={
            "keepalive_timeout": config.request_timeout,
            "logger": server_log,
            # Engine.IO's pings find a dead client within ping interval + timeout, and
            # keepalive_timeout closes idle HTTP, long before the kernel's first probe
            # (two hours by default); on, it costs a system call per connection
            "tcp_keepalive": False,
        },
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
