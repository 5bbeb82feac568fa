"""Rooms and sessions shared by every hub on one Redis (``--redis``, protocol v1.1).

Every change to the hub's state is an *op* (a connect, a request, a disconnect,
an expiry tick, a dead hub) appended to one Redis Stream. Every hub of the group
reads that stream from the last id it applied and applies each op, in stream
order, to its own copy of the state (:meth:`Hub.apply
<signaling.server.Hub.apply>`), which is a pure state machine: every copy is the
same, so order, exactly-once, limits, expiry, lobby and resume hold across hubs
as they do in one. Each hub sends only to the sockets it holds; a request's ack
goes out when its own op comes back.

- **Atomicity** comes from the single stream: ops are applied one at a time, in
  one order, by every hub, so a room transition needs no lock or Lua.
- **Lossless across a reconnect to Redis**: a hub reads on from its last id.
- **Expiry** is an op the group's leader (``SET NX PX``) writes every sweep
  interval with its wall clock; deadlines live in the replicated state.
- **Dead hubs**: each hub refreshes a heartbeat key (``PX``); the leader writes a
  ``hub_down`` op for a hub whose key has gone, and every hub moves that hub's
  sessions into their grace, so their clients resume on another hub.
- **Snapshots**: the leader stores the state with the id it reflects, then trims
  the stream to the previous snapshot's id; a hub that starts (or fell behind a
  trim) loads the snapshot and reads on from its id.
- **Redis unreachable**: ops fail at once with ``unavailable`` (a request's ack, a
  refused connect), disconnects are kept and written when Redis is back, and every
  loop reconnects by itself.

Ops are JSON that only hubs write; snapshots are pickles of the hub's own classes,
read back by an unpickler that accepts nothing else.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import pickle
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from . import jsoncodec
from .transport import Deferred

if TYPE_CHECKING:
    from .server import Hub

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL = 1.0  # seconds between a hub's heartbeats
HEARTBEAT_TTL = 3.0  # a hub whose heartbeat is this old is taken for dead
LEADER_TTL = 3.0
RULES_TTL = 30.0
OP_TIMEOUT = 5.0  # an op not back from the stream by then: its waiter gets "unavailable"
READ_BLOCK_MS = 1000
READ_COUNT = 100  # stream entries per read; each holds up to BATCH_OPS ops
BATCH_OPS = 256
SNAPSHOT_INTERVAL = 30.0  # seconds between the leader's snapshots
RETRY_MIN, RETRY_MAX = 0.05, 1.0  # reconnect backoff, seconds
MAX_BACKLOG = 100_000  # disconnects kept while Redis is away (one per socket that closed)
# the settings every hub of a group must share: they decide what every op does
RULE_FIELDS = (
    "offer_ttl",
    "max_sdp_bytes",
    "max_candidates",
    "max_rooms_per_socket",
    "max_held_bytes",
    "max_held_bytes_per_address",
    "resume_grace",
)


class StoreError(RuntimeError):
    """The hub cannot join its group on Redis; the message says why."""


class SharedStore:
    """One hub's link to its group's op stream on Redis."""

    def __init__(self, hub: Hub, url: str, prefix: str = "p2pcall") -> None:
        self.hub = hub
        self.me = hub.hub_id
        self.redis: aioredis.Redis = aioredis.from_url(
            url, socket_timeout=READ_BLOCK_MS / 1000 + 2, socket_connect_timeout=2
        )
        self.stream = f"{prefix}:ops"
        self.snapshot_key = f"{prefix}:snapshot"
        self.trimmed_key = f"{prefix}:trimmed"
        self.rules_key = f"{prefix}:rules"
        self.leader_key = f"{prefix}:leader"
        self.hub_prefix = f"{prefix}:hub:"
        self.last_id = "0-0"
        self.available = False
        self.leading_since: float | None = None
        self._next = 0
        # op number -> (its waiter, the op): insertion order is submission order
        self._waiting: dict[int, tuple[Deferred, dict[str, Any]]] = {}
        self._outbox: deque[dict[str, Any]] = deque()
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._snapshot_ids: deque[str] = deque(maxlen=2)
        self._last_snapshot = 0.0
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Check the group's rules, load its state, catch up; then serve.

        Raises :class:`StoreError` (a sentence) when Redis cannot be reached or this
        hub's rule settings differ from the group's.
        """
        try:
            await self._check_rules()
            await self._load_snapshot()
            while await self._read_once(block=None):
                pass
        except (RedisError, OSError) as exc:
            raise StoreError(f"cannot reach Redis (--redis): {exc}") from None
        self.available = True
        await self._beat()
        self._tasks = [
            asyncio.create_task(self._reader(), name="shared-reader"),
            asyncio.create_task(self._writer(), name="shared-writer"),
            asyncio.create_task(self._heartbeat(), name="shared-heartbeat"),
            asyncio.create_task(self._timeouts(), name="shared-timeouts"),
        ]
        log.info("sharing rooms through Redis as hub %s (stream %s)", self.me, self.stream)

    async def stop(self, flush_timeout: float = 2.0) -> None:
        """Write what is queued (bounded), stop the loops, drop the heartbeat."""
        deadline = time.monotonic() + flush_timeout
        while self._outbox and self.available and time.monotonic() < deadline:
            self._wakeup.set()
            await asyncio.sleep(0.01)
        self._stopping = True
        if self._tasks:
            # wake our own blocked XREAD with an empty batch (every hub skips it) and
            # let the reader return by itself: redis-py can leave a blocking read that
            # is cancelled mid-wait stuck for good
            try:
                await self.redis.xadd(self.stream, {"ops": jsoncodec.dumps([])})
            except (RedisError, OSError):
                pass
            await asyncio.wait(self._tasks[:1], timeout=READ_BLOCK_MS / 1000 + 1)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)
        try:
            await self.redis.delete(self.hub_prefix + self.me)
            if await self.redis.get(self.leader_key) == self.me.encode():
                await self.redis.delete(self.leader_key)
        except (RedisError, OSError):
            pass
        await self.redis.aclose()

    # -- ops ---------------------------------------------------------------

    def submit(self, op: dict[str, Any]) -> Deferred:
        """Append ``op``; the Deferred resolves with what applying it returned, or with
        ``hub.unavailable(op)`` if it cannot be written or does not come back in time."""
        deferred = Deferred()
        if not self.available:
            deferred.resolve(self.hub.unavailable(op))
            return deferred
        number = self._stamp(op)
        self._waiting[number] = (deferred, op)
        self._outbox.append(op)
        self._wakeup.set()
        return deferred

    def post(self, op: dict[str, Any]) -> None:
        """Append ``op`` with nobody waiting; kept and retried while Redis is away."""
        self._stamp(op)
        if len(self._outbox) >= MAX_BACKLOG:
            log.warning("dropping a queued op: %d wait for Redis", len(self._outbox))
            self._outbox.popleft()
        self._outbox.append(op)
        self._wakeup.set()

    def _stamp(self, op: dict[str, Any]) -> int:
        self._next += 1
        op["hub"] = self.me
        op["n"] = self._next
        op["now"] = time.time()
        op["started"] = time.perf_counter()
        return self._next

    def _time_out_waiting(self) -> None:
        """Ops submitted more than OP_TIMEOUT ago and not back: ``unavailable``.

        One sweep of the oldest waiters instead of a timer per op: ``_waiting`` is in
        submission order, so the sweep stops at the first op still in time.
        """
        limit = time.perf_counter() - OP_TIMEOUT
        while self._waiting:
            number, (deferred, op) = next(iter(self._waiting.items()))
            if op["started"] > limit:
                return
            del self._waiting[number]
            deferred.resolve(self.hub.unavailable(op))

    async def _timeouts(self) -> None:
        while True:
            await asyncio.sleep(OP_TIMEOUT / 10)
            self._time_out_waiting()

    def _fail_waiting(self) -> None:
        """Redis is away: every op still waiting gets ``unavailable`` now, not later."""
        waiting, self._waiting = self._waiting, {}
        for deferred, op in waiting.values():
            deferred.resolve(self.hub.unavailable(op))

    # -- loops -------------------------------------------------------------

    async def _writer(self) -> None:
        """XADD queued ops in order: what queued while the last write was under way goes
        as one entry, so a busy hub pays Redis's round trip per batch, not per op."""
        delay = RETRY_MIN
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._outbox:
                batch = [self._outbox[i] for i in range(min(len(self._outbox), BATCH_OPS))]
                try:
                    # one stream entry per batch: every hub reads and applies it whole
                    await self.redis.xadd(self.stream, {"ops": jsoncodec.dumps(batch)})
                except (RedisError, OSError) as exc:
                    self._lost(exc)
                    # ops someone waits for were answered "unavailable": drop them;
                    # disconnects stay queued for when Redis is back
                    kept = [op for op in self._outbox if op["kind"] not in ("request", "connect")]
                    self._outbox = deque(kept)
                    await asyncio.sleep(delay)
                    delay = min(RETRY_MAX, delay * 2)
                    continue
                delay = RETRY_MIN
                for _ in batch:
                    self._outbox.popleft()

    async def _reader(self) -> None:
        delay = RETRY_MIN
        while not self._stopping:
            try:
                await self._read_once(block=READ_BLOCK_MS)
                delay = RETRY_MIN
                if not self.available:
                    await self._recover()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self._lost(exc)
                await asyncio.sleep(delay)
                delay = min(RETRY_MAX, delay * 2)

    async def _read_once(self, block: int | None) -> int:
        """Apply the next ops after ``last_id``; how many."""
        reply: Any = await self.redis.xread(
            {self.stream: self.last_id}, count=READ_COUNT, block=block
        )
        count = 0
        for _stream, entries in reply or ():
            for entry_id, fields in entries:
                for op in jsoncodec.loads(fields[b"ops"]):
                    self._apply(entry_id, op)
                self.last_id = entry_id.decode()
                count += 1
        return count

    def _apply(self, entry_id: bytes, op: dict[str, Any]) -> None:
        try:
            value = self.hub.apply(op)
        except Exception:  # a bug in applying one op must not stop the stream
            log.exception("op %s (%s) failed to apply", entry_id.decode(), op.get("kind"))
            value = self.hub.unavailable(op)
        if op["hub"] == self.me:
            waiting = self._waiting.pop(op["n"], None)
            if waiting is not None:
                waiting[0].resolve(value)
            elif op["kind"] == "connect":
                # its connect was answered "unavailable" meanwhile: that socket is gone
                self.hub.abandon_connect(op["sid"])

    async def _recover(self) -> None:
        """Redis is back: reload the state if the stream was trimmed past our last id."""
        trimmed = await self.redis.get(self.trimmed_key)
        if trimmed is not None and _id_below(self.last_id, _text(trimmed)):
            log.warning("fell behind the shared stream while Redis was away: reloading")
            await self._load_snapshot()
            self.hub.sio.abort_all()  # their sessions moved on without this hub
        self.available = True
        log.warning("Redis is reachable again: taking requests")

    def _lost(self, exc: BaseException) -> None:
        if self.available:
            log.warning("Redis unreachable (%s): refusing requests until it is back", exc)
        self.available = False
        self._fail_waiting()

    async def _heartbeat(self) -> None:
        """Beat; lead if nobody does; as leader tick expiry, bury dead hubs, snapshot."""
        while True:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            try:
                await self._beat()
                if await self._lead():
                    await self._leader_duties()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.leading_since = None
                log.debug("heartbeat failed: %s", exc)

    async def _beat(self) -> None:
        await self.redis.set(self.hub_prefix + self.me, "1", px=int(HEARTBEAT_TTL * 1000))
        # the group's rules outlive its last hub by RULES_TTL: then new limits may start
        await self.redis.pexpire(self.rules_key, int(RULES_TTL * 1000))

    async def _lead(self) -> bool:
        px = int(LEADER_TTL * 1000)
        if await self.redis.set(self.leader_key, self.me, nx=True, px=px):
            self.leading_since = time.monotonic()
            return True
        if await self.redis.get(self.leader_key) == self.me.encode():
            await self.redis.pexpire(self.leader_key, px)
            if self.leading_since is None:
                self.leading_since = time.monotonic()
            return True
        self.leading_since = None
        return False

    async def _leader_duties(self) -> None:
        if self.available:
            self.post({"kind": "expire"})
        assert self.leading_since is not None
        # a new leader first lets every live hub beat once (after a Redis outage all
        # heartbeats lapsed together), so it never buries a hub that is alive
        if time.monotonic() - self.leading_since >= HEARTBEAT_TTL:
            hubs = set(self.hub.socket_hub.values()) - {self.me}
            for other in sorted(hubs):
                if not await self.redis.exists(self.hub_prefix + other):
                    self.post({"kind": "hub_down", "dead": other})
        if time.monotonic() - self._last_snapshot >= SNAPSHOT_INTERVAL:
            await self._snapshot()

    async def _snapshot(self) -> None:
        """Store the state at ``last_id``; trim the stream to the snapshot before it."""
        self._last_snapshot = time.monotonic()
        blob = pickle.dumps((self.last_id, self.hub.shared_state()), pickle.HIGHEST_PROTOCOL)
        await self.redis.set(self.snapshot_key, blob)
        self._snapshot_ids.append(self.last_id)
        if len(self._snapshot_ids) == 2:
            # keep one snapshot period of ops: a hub briefly away reads on without reloading
            oldest = self._snapshot_ids[0]
            await self.redis.set(self.trimmed_key, oldest)
            await self.redis.xtrim(self.stream, minid=oldest, approximate=False)

    async def _load_snapshot(self) -> None:
        blob = await self.redis.get(self.snapshot_key)
        if blob is None:
            return
        data = blob if isinstance(blob, bytes) else blob.encode()
        last_id, state = _SnapshotUnpickler(io.BytesIO(data)).load()
        self.hub.load_shared_state(state)
        self.last_id = last_id

    async def _check_rules(self) -> None:
        config = self.hub.config
        mine = json.dumps({name: getattr(config, name) for name in RULE_FIELDS}, sort_keys=True)
        await self.redis.set(self.rules_key, mine, nx=True)
        theirs = await self.redis.get(self.rules_key)
        if theirs is not None and _text(theirs) != mine:
            raise StoreError(
                "this hub's limits differ from the other hubs' on this Redis "
                f"(theirs {_text(theirs)}, mine {mine}); every hub of a group must run "
                "with the same limit flags"
            )


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _id_below(a: str, b: str) -> bool:
    """Stream id ``a`` < ``b`` (``ms-seq``)."""
    ams, _, aseq = a.partition("-")
    bms, _, bseq = b.partition("-")
    return (int(ams), int(aseq or 0)) < (int(bms), int(bseq or 0))


class _SnapshotUnpickler(pickle.Unpickler):
    """Loads the hub's own state classes and the containers they use; nothing else."""

    ALLOWED = {
        ("collections", "deque"),
        ("collections", "OrderedDict"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("copyreg", "_reconstructor"),
        ("builtins", "object"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if module.startswith("signaling.") or (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"a snapshot may not hold {module}.{name}")
