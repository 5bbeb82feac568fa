"""Soak: legitimate calls mixed with hostile clients, against one hub, on loopback only.

``python -m bench.soak [--seconds S] [--pairs N] [--rate R] [--out FILE] [--plot PNG]``
(``make soak``: 10 minutes) starts ``python -m signaling`` with an access token
and, for S seconds, keeps running at the same time:

- N paced call lanes (``bench.loadgen.hub_pair``): offer and candidates held,
  join, answer and candidates relayed live, hangup; every relayed message is
  checked for loss, duplication and order;
- malformed packets (bad packet ids, broken JSON, deep nesting, binary
  attachments), each on its own socket, which the hub must close;
- slow readers that ask for the lobby over and over and never read, which the
  hub must close at its send-queue cap;
- abrupt disconnects: callers that hold an offer and candidates and then drop
  the TCP connection without a word;
- token guesses and half-sent request headers.

Hostile clients connect from other loopback addresses (127.0.0.2-5), so the
hub's per-address throttles and caps act on them and not on the calls. Every
hostile kind runs one client at a time, so the load stays bounded. The hub's
RSS is sampled every second. The result is one JSON object (``--out``) and a
plot of RSS over time (``--plot``, matplotlib).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from .loadgen import Tally, Window, hub_pair

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "soak-token-0123456789abcdef"
WAIT = 15.0
HOSTILE_ADDRESSES = {
    "malformed": "127.0.0.2",
    "slow_reader": "127.0.0.3",
    "token_guess": "127.0.0.4",
    "half_headers": "127.0.0.5",
}
MALFORMED: tuple[str | bytes, ...] = (
    '42\xff["rooms",{}]',
    '42["rooms",{',
    "42" + "[" * 50_000,
    '451-["offer",{"_placeholder":true,"num":0}]',
    b"\x04binary",
    "40{not json",
)
HUB_FLAGS = (
    "--token",
    TOKEN,
    "--max-queued-bytes",
    "131072",  # slow readers reach it within a few thousand lobby requests
    "--request-timeout",
    "4",  # half-sent headers are cut after 4 s instead of 10
    "--max-token-failures",
    "5",
    "--token-failure-window",
    "5",
    "--resume-grace",
    "2",  # abruptly dropped callers keep their rooms this long (sessions), then free them
)


@dataclass
class Hostile:
    """How many hostile clients of each kind ran, and how many the hub ended as it should."""

    tried: dict[str, int] = field(default_factory=dict)
    handled: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)

    def count(self, kind: str, ok: bool, detail: str = "") -> None:
        self.tried[kind] = self.tried.get(kind, 0) + 1
        if ok:
            self.handled[kind] = self.handled.get(kind, 0) + 1
        elif len(self.unexpected) < 10:
            self.unexpected.append(f"{kind}: {detail}"[:200])


@dataclass
class HubProcess:
    process: subprocess.Popen[str]
    url: str
    log: list[str]


def spawn_hub() -> HubProcess:
    argv = [sys.executable, "-m", "signaling", "--port", "0", "--log-level", "warning"]
    proc = subprocess.Popen(
        [*argv, *HUB_FLAGS], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(proc.stderr or ()), daemon=True).start()
    handle = psutil.Process(proc.pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        ports = [c.laddr.port for c in handle.net_connections("tcp") if c.status == "LISTEN"]
        if ports:
            return HubProcess(proc, f"http://127.0.0.1:{ports[0]}", log)
        time.sleep(0.05)
    proc.kill()
    proc.wait(5)
    raise RuntimeError("the hub did not start: " + "".join(log[-20:]))


def _session(kind: str) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(local_addr=(HOSTILE_ADDRESSES[kind], 0), force_close=True)
    return aiohttp.ClientSession(connector=connector)


async def _until_closed(ws: aiohttp.ClientWebSocketResponse) -> list[str]:
    seen: list[str] = []
    async with asyncio.timeout(WAIT):
        while True:
            msg = await ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                seen.append(msg.data)
            elif msg.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                return seen


async def malformed(url: str, n: int, h: Hostile) -> None:
    async with _session("malformed") as session:
        ws = await session.ws_connect(url + "/socket.io/?EIO=4&transport=websocket")
        await ws.receive_str()
        await ws.send_str("40" + json.dumps({"token": TOKEN}))
        await ws.receive_str()
        frame = MALFORMED[n % len(MALFORMED)]
        if isinstance(frame, bytes):
            await ws.send_bytes(frame)
        else:
            await ws.send_str(frame)
        await _until_closed(ws)
        h.count("malformed", True)


def _ws_frame(text: str) -> bytes:
    """One masked client text frame of under 126 bytes (RFC 6455 5.2), zero mask."""
    data = text.encode()
    assert len(data) < 126, text
    return bytes([0x81, 0x80 | len(data)]) + b"\0\0\0\0" + data


async def slow_reader(url: str, n: int, h: Hostile) -> None:
    port = int(url.rsplit(":", 1)[1])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((HOSTILE_ADDRESSES["slow_reader"], 0))
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    try:
        writer.write(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        writer.write(_ws_frame("40" + json.dumps({"token": TOKEN})))
        for i in range(8):  # listed offers of its own make every lobby ack ~1 KB
            desc = '{"type":"offer","sdp":"v=0"}'
            writer.write(_ws_frame(f'42["offer",{{"room":"slow{n}x{i}","description":{desc}}}]'))
        async with asyncio.timeout(WAIT * 4):
            i = 0
            while True:  # until the hub closes it at its send-queue cap
                if writer.transport.is_closing():
                    raise ConnectionResetError("closed by the hub")
                writer.write(_ws_frame(f'42{i}["rooms",{{}}]'))
                i += 1
                if i % 200 == 0:
                    await writer.drain()
                    await asyncio.sleep(0)  # drain rarely blocks: let the call lanes run
    except (ConnectionError, OSError):
        h.count("slow_reader", True)
    except TimeoutError:
        h.count("slow_reader", False, "timed out")
    finally:
        writer.close()


async def abrupt_disconnect(url: str, n: int, h: Hostile) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await session.ws_connect(url + "/socket.io/?EIO=4&transport=websocket")
        await ws.receive_str()
        await ws.send_str("40" + json.dumps({"token": TOKEN}))
        await ws.receive_str()  # CONNECT reply
        room = f"drop{n}"
        sdp = "v=0\r\n" + "a" * 2000
        await ws.send_str(
            "421"
            + json.dumps(["offer", {"room": room, "description": {"type": "offer", "sdp": sdp}}])
        )
        for i in range(20):
            cand = {"candidate": f"candidate:{i} 1 udp 1 127.0.0.1 {i + 1000} typ host"}
            await ws.send_str(
                f"42{i + 2}" + json.dumps(["candidate", {"room": room, "candidate": cand}])
            )
        async with asyncio.timeout(WAIT):
            while not (await ws.receive_str()).startswith("4321"):
                pass  # until the last candidate's ack: everything was held
        transport = ws._response.connection.transport if ws._response.connection else None
        if transport is not None:
            transport.abort()
        h.count("abrupt_disconnect", True)


async def token_guess(url: str, n: int, h: Hostile) -> None:
    async with _session("token_guess") as session:
        ws = await session.ws_connect(url + "/socket.io/?EIO=4&transport=websocket")
        await ws.receive_str()
        await ws.send_str("40" + json.dumps({"token": f"guess-{n:016d}"}))
        seen = await _until_closed(ws)
        refused = [s for s in seen if s.startswith("44")]
        code = json.loads(refused[0][2:])["message"] if refused else "none"
        h.count("token_guess", code in ("unauthorized", "limit"), f"got {seen!r}")


async def half_headers(url: str, n: int, h: Hostile) -> None:
    port = int(url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, local_addr=(HOSTILE_ADDRESSES["half_headers"], 0)
    )
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")
    try:
        async with asyncio.timeout(WAIT):
            while await reader.read(4096):
                pass
        h.count("half_headers", True)
    except TimeoutError:
        h.count("half_headers", False, "still open")
    finally:
        writer.close()


Kind = Callable[[str, int, Hostile], Awaitable[None]]
KINDS: tuple[Kind, ...] = (malformed, slow_reader, abrupt_disconnect, token_guess, half_headers)


async def _hostile_lane(kind: Kind, url: str, until: float, h: Hostile, pause: float) -> None:
    n = 0
    while time.monotonic() < until:
        try:
            await kind(url, n, h)
        except Exception as exc:
            h.count(kind.__name__, False, f"{type(exc).__name__}: {exc}")
        n += 1
        await asyncio.sleep(pause)


async def _call_lane(url: str, lane: int, until: float, t: Tally, period: float) -> None:
    n = lane * 10**9
    window = Window(0, 2**62)
    while time.monotonic() < until:
        started = time.monotonic()
        await hub_pair(url, n, t, window, 0, token=TOKEN)
        n += 1
        await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))


async def _sample_rss(pid: int, until: float, every: float, out: list[tuple[float, int]]) -> None:
    proc = psutil.Process(pid)
    t0 = time.monotonic()
    while time.monotonic() < until:
        out.append((round(time.monotonic() - t0, 2), proc.memory_info().rss))
        await asyncio.sleep(every)


async def _settled_health(url: str) -> dict[str, Any]:
    """The hub's /healthz once the last hostile sockets and their graces are gone (10 s)."""
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            async with session.get(url + "/healthz") as resp:
                health: dict[str, Any] = await resp.json()
            if health["sockets"] == 0 and health["rooms"] == 0:
                break
            await asyncio.sleep(0.1)
    return health


async def run(seconds: float, pairs: int, rate: float, pause: float) -> dict[str, Any]:
    hub = spawn_hub()
    try:
        until = time.monotonic() + seconds
        tally, hostile = Tally(), Hostile()
        rss: list[tuple[float, int]] = []
        period = pairs / rate
        await asyncio.gather(
            _sample_rss(hub.process.pid, until, 1.0, rss),
            *(_call_lane(hub.url, i, until, tally, period) for i in range(pairs)),
            *(_hostile_lane(k, hub.url, until, hostile, pause) for k in KINDS),
        )
        health = await _settled_health(hub.url)
    finally:
        hub.process.terminate()
        hub.process.wait(30)
    log = "".join(hub.log)
    # warm-up: the first quarter of the run, at most 2 minutes (caches, allocator arenas)
    warm = [b for t, b in rss if t >= min(120.0, seconds / 4)] or [b for _, b in rss]
    return {
        "seconds": seconds,
        "pairs": pairs,
        "rate": rate,
        "calls_completed": tally.setups_total,
        "calls_failed": tally.errors,
        "call_error_samples": tally.error_samples,
        "relayed_expected": tally.relayed_expected,
        "relayed_received": tally.relayed_received,
        "lost": tally.lost,
        "duplicated": tally.duplicated,
        "reordered": tally.reordered,
        "hostile": asdict(hostile),
        "rss_mb_after_warmup": round(warm[0] / 2**20, 1),
        "rss_mb_end": round(rss[-1][1] / 2**20, 1),
        "rss_mb_max": round(max(b for _, b in rss) / 2**20, 1),
        "hub_after": health,
        "hub_tracebacks": len(re.findall(r"Traceback", log)),
        "hub_warning_lines": sum(1 for line in hub.log if " WARNING " in line),
        "rss": rss,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [t / 60 for t, _ in result["rss"]]
    mb = [b / 2**20 for _, b in result["rss"]]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(times, mb)
    ax.set_xlabel("minutes")
    ax.set_ylabel("hub RSS (MiB)")
    ax.set_ylim(0, max(mb) * 1.3)
    ax.set_title(
        f"soak: {result['calls_completed']} calls, {result['calls_failed']} failed, "
        f"{result['lost']} lost, {result['duplicated']} duplicated"
    )
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=600.0, help="how long (default 600)")
    p.add_argument("--pairs", type=int, default=4, help="concurrent call lanes (default 4)")
    p.add_argument("--rate", type=float, default=20.0, help="calls per second (default 20)")
    p.add_argument(
        "--pause", type=float, default=0.05, help="seconds between hostile clients of a kind"
    )
    p.add_argument("--out", type=Path, help="write the JSON result here")
    p.add_argument("--plot", type=Path, help="write a PNG of RSS over time here")
    args = p.parse_args(argv)
    # a slow reader's last writes race the hub's close; asyncio warns of each one
    logging.getLogger("asyncio").setLevel(logging.ERROR)
    result = asyncio.run(run(args.seconds, args.pairs, args.rate, args.pause))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        plot(result, args.plot)
    summary = {k: v for k, v in result.items() if k != "rss"}
    print(json.dumps(summary, indent=1))
    ok = (
        result["calls_failed"] == 0
        and result["lost"] == 0
        and result["duplicated"] == 0
        and result["hub_tracebacks"] == 0
        and not result["hostile"]["unexpected"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
