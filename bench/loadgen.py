"""Load generator process: keeps N call pairs in flight against one server.

``python -m bench.loadgen --target hub|peerjs --url URL --pairs N --start-ns T0
--end-ns T1 [--rate R] [--out FILE]`` runs pairs until T1 and prints one JSON object: call
setups completed inside [T0, T1], relay latencies of live messages received
inside it, and the integrity counts of every pair it ran. ``--memory K`` instead
connects K idle sockets, then makes each hold an offer and 10 candidates,
pausing for a line on stdin at each step so the caller can read the server's RSS.

One call pair, on either server: the caller connects and sends an offer (~6 KB)
and 10 candidates, held by the server; the answerer connects and gets them
(our hub: in the ``join`` ack; PeerJS: queued messages after ``OPEN``), sends an
answer (~6 KB) and 10 candidates, relayed live to the caller; the caller hangs
up, the answerer receives it; both disconnect.

Without ``--rate`` each pair starts over at once (closed loop, no think time):
the server is saturated and the figures are its throughput and CPU per setup.
With ``--rate R`` each of the N pairs starts one call every N/R seconds and
keeps it up (both sockets connected) for most of that period before hanging
up, so the offered load is R setups/s whatever the concurrency: relay latency
then measures the server's response at that load, not the length of its queue.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .clients import PeerjsConn, SioConn
from .payloads import CANDIDATES_PER_SIDE, CallTemplates, SequenceCheck, candidate_stamp, sdp_stamp

PER_SIDE = 1 + CANDIDATES_PER_SIDE  # description + candidates
PAIR_TIMEOUT = 30.0
RAMP_SECONDS = 1.0
HOLD_FRACTION = 0.8  # paced calls stay up for this share of their period
OFFER = CallTemplates.build("offer", seed=1)
ANSWER = CallTemplates.build("answer", seed=2)


@dataclass
class Tally:
    """What one generator saw; summed over generators by the orchestrator."""

    setups_window: int = 0
    setups_total: int = 0
    relayed_expected: int = 0
    relayed_received: int = 0
    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    latencies_us: list[int] = field(default_factory=list)

    def error(self, text: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(text[:300])

    def add(self, check: SequenceCheck) -> None:
        self.relayed_expected += check.expected
        self.relayed_received += check.received
        self.lost += check.lost
        self.duplicated += check.duplicated
        self.reordered += check.reordered


@dataclass
class Window:
    start_ns: int
    end_ns: int

    def inside(self, ns: int) -> bool:
        return self.start_ns <= ns < self.end_ns


class LiveStream:
    """The caller's view of the answerer's live messages: order and latency."""

    def __init__(self, tally: Tally, window: Window) -> None:
        self.check = SequenceCheck(PER_SIDE)
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tally = tally
        self._window = window

    def got(self, seq: int, sent_ns: int) -> None:
        now = time.monotonic_ns()
        if self._window.inside(now):
            self._tally.latencies_us.append((now - sent_ns) // 1000)
        self.check.see(seq)
        if self.check.complete and not self.done.done():
            self.done.set_result(None)


def _ack_ok(ack: Any, what: str) -> dict[str, Any]:
    if not isinstance(ack, dict) or ack.get("ok") is not True:
        raise RuntimeError(f"{what} refused: {ack!r}")
    return ack


def _held_check(ack: dict[str, Any]) -> SequenceCheck:
    """The join ack must carry the offer (seq 0) and candidates 1..10 in order."""
    check = SequenceCheck(PER_SIDE)
    if ack.get("offer"):
        check.see(sdp_stamp(ack["offer"]["sdp"])[0])
    for cand in ack.get("candidates", ()):
        check.see(candidate_stamp(cand["candidate"])[0])
    return check


async def _hold(until_ns: int) -> None:
    """Keep the call up until ``until_ns`` (0: hang up at once)."""
    delay = (until_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


async def hub_pair(
    url: str,
    n: int,
    t: Tally,
    w: Window,
    hold_ns: int,
    token: str | None = None,
    answer_url: str | None = None,
) -> None:
    """One call pair; the answerer connects to ``answer_url`` (another hub of the
    caller's group) when given, else to ``url``."""
    room = f"r{os.getpid()}x{n}"
    auths = [{"name": who} | ({"token": token} if token else {}) for who in ("caller", "answerer")]
    caller_auth, answerer_auth = (json.dumps(a) for a in auths)
    live = LiveStream(t, w)
    hung: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    hangup = SequenceCheck(1)

    def on_caller(event: str, data: Any) -> None:
        if event == "answer":
            live.got(*sdp_stamp(data["description"]["sdp"]))
        elif event == "candidate":
            live.got(*candidate_stamp(data["candidate"]["candidate"]))

    def on_answerer(event: str, data: Any) -> None:
        if event == "hangup":
            hangup.see(0)
            if not hung.done():
                hung.set_result(data["reason"])

    caller = answerer = None
    armed: list[SequenceCheck] = []  # streams whose sends the server accepted
    try:
        async with asyncio.timeout(PAIR_TIMEOUT):
            caller = await SioConn.connect(url, caller_auth, on_caller)
            now = time.monotonic_ns()
            acks = [
                caller.emit(
                    "offer", f'{{"room":"{room}","description":{OFFER.sdp_json("offer", 0, now)}}}'
                )
            ]
            for i in range(CANDIDATES_PER_SIDE):
                cand = OFFER.candidate_json(i, i + 1, time.monotonic_ns())
                acks.append(caller.emit("candidate", f'{{"room":"{room}","candidate":{cand}}}'))
            for ack in await asyncio.gather(*acks):
                _ack_ok(ack, "caller offer/candidate")
            answerer = await SioConn.connect(answer_url or url, answerer_auth, on_answerer)
            held = _held_check(_ack_ok(await answerer.call("join", f'{{"room":"{room}"}}'), "join"))
            armed.append(held)
            desc = ANSWER.sdp_json("answer", 0, time.monotonic_ns())
            acks = [answerer.emit("answer", f'{{"room":"{room}","description":{desc}}}')]
            for i in range(CANDIDATES_PER_SIDE):
                cand = ANSWER.candidate_json(i, i + 1, time.monotonic_ns())
                acks.append(answerer.emit("candidate", f'{{"room":"{room}","candidate":{cand}}}'))
            for ack in await asyncio.gather(*acks):
                _ack_ok(ack, "answerer answer/candidate")
            armed.append(live.check)
            await live.done
            _count_setup(t, w)
            await _hold(hold_ns)
            _ack_ok(await caller.call("hangup", f'{{"room":"{room}"}}'), "hangup")
            armed.append(hangup)
            reason = await hung
            if reason != "hangup":
                raise RuntimeError(f"answerer got hangup reason {reason!r}")
    except (Exception, TimeoutError) as exc:
        t.error(f"hub pair {room}: {type(exc).__name__}: {exc}")
    finally:
        for check in armed:
            t.add(check)
        for conn in (caller, answerer):
            if conn is not None:
                await _quiet_close(conn.close())


async def peerjs_pair(url: str, n: int, t: Tally, w: Window, hold_ns: int) -> None:
    tag = f"{os.getpid()}x{n}"
    caller_id, answerer_id = f"c{tag}", f"a{tag}"
    live = LiveStream(t, w)
    held = SequenceCheck(PER_SIDE)
    held_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    left: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    leave = SequenceCheck(1)

    def on_caller(kind: str, payload: Any) -> None:
        if kind == "ANSWER":
            live.got(*sdp_stamp(payload["sdp"]["sdp"]))
        elif kind == "CANDIDATE":
            live.got(*candidate_stamp(payload["candidate"]["candidate"]))

    def on_answerer(kind: str, payload: Any) -> None:
        if kind == "OFFER":
            held.see(sdp_stamp(payload["sdp"]["sdp"])[0])
        elif kind == "CANDIDATE":
            held.see(candidate_stamp(payload["candidate"]["candidate"])[0])
        elif kind == "LEAVE":
            leave.see(0)
            if not left.done():
                left.set_result(None)
            return
        if held.complete and not held_done.done():
            held_done.set_result(None)

    media = f'"type":"media","connectionId":"mc_{tag}"'
    caller = answerer = None
    armed: list[SequenceCheck] = []  # streams whose sends went out
    try:
        async with asyncio.timeout(PAIR_TIMEOUT):
            caller = await PeerjsConn.connect(url, caller_id, "tc", on_caller)
            sdp = OFFER.sdp_json("offer", 0, time.monotonic_ns())
            caller.send("OFFER", answerer_id, f'{{"sdp":{sdp},{media}}}')
            for i in range(CANDIDATES_PER_SIDE):
                cand = OFFER.candidate_json(i, i + 1, time.monotonic_ns())
                caller.send("CANDIDATE", answerer_id, f'{{"candidate":{cand},{media}}}')
            armed.append(held)
            answerer = await PeerjsConn.connect(url, answerer_id, "ta", on_answerer)
            await held_done
            sdp = ANSWER.sdp_json("answer", 0, time.monotonic_ns())
            answerer.send("ANSWER", caller_id, f'{{"sdp":{sdp},{media}}}')
            for i in range(CANDIDATES_PER_SIDE):
                cand = ANSWER.candidate_json(i, i + 1, time.monotonic_ns())
                answerer.send("CANDIDATE", caller_id, f'{{"candidate":{cand},{media}}}')
            armed.append(live.check)
            await live.done
            _count_setup(t, w)
            await _hold(hold_ns)
            caller.send("LEAVE", answerer_id, "{}")
            armed.append(leave)
            await left
    except (Exception, TimeoutError) as exc:
        t.error(f"peerjs pair {tag}: {type(exc).__name__}: {exc}")
    finally:
        for check in armed:
            t.add(check)
        for conn in (caller, answerer):
            if conn is not None:
                await _quiet_close(conn.close())


def _count_setup(t: Tally, w: Window) -> None:
    t.setups_total += 1
    if w.inside(time.monotonic_ns()):
        t.setups_window += 1


async def _quiet_close(closing: Awaitable[None]) -> None:
    try:
        await closing
    except Exception:
        pass


Pair = Callable[[str, int, Tally, Window, int], Awaitable[None]]
PAIRS: dict[str, Pair] = {"hub": hub_pair, "peerjs": peerjs_pair}


async def run_load(
    target: str,
    url: str,
    pairs: int,
    window: Window,
    rate: float = 0,
    answer_url: str | None = None,
) -> Tally:
    """Keep ``pairs`` call pairs in flight until the window ends, then let them finish.

    ``rate`` > 0 paces the calls (see the module docstring); 0 runs them back to back.
    ``answer_url``: answerers connect there (our hub only: a second hub of the group).
    """
    tally = Tally()
    pair = functools.partial(hub_pair, answer_url=answer_url) if answer_url else PAIRS[target]
    counter = iter(range(10**12))
    period_ns = int(pairs / rate * 1e9) if rate > 0 else 0
    spread_ns = period_ns or int(RAMP_SECONDS * 1e9)
    first_ns = time.monotonic_ns()

    async def lane(index: int) -> None:
        # spread the first connects, as clients arrive in life
        slot = first_ns + spread_ns * index // pairs
        while slot < window.end_ns:
            await _hold(slot)
            hold = slot + int(period_ns * HOLD_FRACTION) if period_ns else 0
            await pair(url, next(counter), tally, window, hold)
            # a late call starts the next one at once: never more than one per lane
            slot = max(slot + period_ns, time.monotonic_ns())

    await asyncio.gather(*(lane(i) for i in range(pairs)))
    return tally


async def _step(label: str) -> None:
    """Tell the orchestrator we reached ``label``; wait for its go-ahead line."""
    print(label, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def run_memory(target: str, url: str, count: int) -> None:
    """Idle sockets, then a held offer + candidates on each, with pauses for RSS reads."""
    conns: list[Any] = []
    limit = asyncio.Semaphore(50)
    tag = os.getpid()

    def ignore(_: str, __: Any) -> None:
        return None

    async def open_one(i: int) -> Any:
        async with limit:
            if target == "hub":
                return await SioConn.connect(url, "{}", ignore)
            return await PeerjsConn.connect(url, f"m{tag}x{i}", "t", ignore)

    async def hold(i: int, conn: Any) -> None:
        async with limit:
            now = time.monotonic_ns()
            if target == "hub":
                room = f"m{tag}x{i}"
                acks = [
                    conn.emit(
                        "offer",
                        f'{{"room":"{room}","description":{OFFER.sdp_json("offer", 0, now)}}}',
                    )
                ]
                for k in range(CANDIDATES_PER_SIDE):
                    cand = OFFER.candidate_json(k, k + 1, now)
                    acks.append(conn.emit("candidate", f'{{"room":"{room}","candidate":{cand}}}'))
                for ack in await asyncio.gather(*acks):
                    _ack_ok(ack, "held offer")
            else:
                dst = f"absent{tag}x{i}"
                media = f'"type":"media","connectionId":"mc_{i}"'
                conn.send("OFFER", dst, f'{{"sdp":{OFFER.sdp_json("offer", 0, now)},{media}}}')
                for k in range(CANDIDATES_PER_SIDE):
                    cand = OFFER.candidate_json(k, k + 1, now)
                    conn.send("CANDIDATE", dst, f'{{"candidate":{cand},{media}}}')

    conns = list(await asyncio.gather(*(open_one(i) for i in range(count))))
    await _step("idle")
    await asyncio.gather(*(hold(i, c) for i, c in enumerate(conns)))
    await _step("held")
    await asyncio.gather(*(_quiet_close(c.close()) for c in conns))
    print("closed", flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    p.add_argument("--target", choices=sorted(PAIRS), required=True, help="server protocol")
    p.add_argument("--url", required=True, help="server base URL, http://127.0.0.1:PORT")
    p.add_argument(
        "--answer-url", help="answerers connect here (another hub on the same Redis; hub only)"
    )
    p.add_argument("--pairs", type=int, default=10, help="call pairs kept in flight")
    p.add_argument("--start-ns", type=int, default=0, help="window start, time.monotonic_ns()")
    p.add_argument("--end-ns", type=int, default=0, help="window end, time.monotonic_ns()")
    p.add_argument("--rate", type=float, default=0, help="paced setups/s (0: back to back)")
    p.add_argument("--out", type=Path, help="write the result JSON here (default: stdout)")
    p.add_argument("--memory", type=int, default=0, help="memory probe with this many sockets")
    args = p.parse_args(argv)
    if args.answer_url and args.target != "hub":
        p.error("--answer-url: only --target hub has hubs that share rooms")
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is in the dev extras
        run = asyncio.run
    else:
        run = uvloop.run
    if args.memory:
        run(run_memory(args.target, args.url, args.memory))
        return 0
    window = Window(args.start_ns, args.end_ns)
    tally = run(run_load(args.target, args.url, args.pairs, window, args.rate, args.answer_url))
    text = json.dumps(asdict(tally))
    if args.out is not None:
        args.out.write_text(text)
    else:
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
