"""``p2pcall-peer`` / ``python -m peer``: make one call from a terminal.

Every expected failure ends in one line on stderr and an exit code from
:class:`~peer.errors.ExitCode`; resources close in ``finally`` blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from .call import Call, CallOptions
from .config import PeerConfig, config_from_args
from .errors import ExitCode, MediaError, PeerError
from .media import Sources, open_sources
from .signaling import SignalingClient
from .sinks import Display, LatestFrame
from .status import StatusLine

log = logging.getLogger("peer")

STATUS_INTERVAL = 0.5
HUB_TIMEOUT = 10.0


def _print_chat(msg: dict[str, Any]) -> None:
    print(f"{msg.get('from', '?')}: {msg['text']}", flush=True)


def _stdin_reader(loop: asyncio.AbstractEventLoop, lines: asyncio.Queue[str | None]) -> None:
    """Blocking reads of stdin, on a thread; ``None`` marks end of input."""
    for line in sys.stdin:
        loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))
    loop.call_soon_threadsafe(lines.put_nowait, None)


async def _chat_pump(call: Call) -> None:
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    threading.Thread(target=_stdin_reader, args=(loop, lines), daemon=True).start()
    while (line := await lines.get()) is not None:
        if line:
            await call.chat_open.wait()
            call.send_chat(line)


async def _status_loop(call: Call, status: StatusLine, display: Display | None) -> None:
    while True:
        status.update()
        if display is not None and display.closed_by_user.is_set():
            call.request_hangup("window closed")
            display.closed_by_user.clear()
        await asyncio.sleep(STATUS_INTERVAL)


async def run_peer(cfg: PeerConfig, result: dict[str, Any]) -> str:
    """Run one call as configured; fill ``result`` with its stats even on failure."""
    start = time.monotonic()
    client = SignalingClient(
        cfg.server, name=cfg.name, token=cfg.token, timeout=min(HUB_TIMEOUT, cfg.timeout)
    )
    sources = Sources()
    call: Call | None = None
    display: Display | None = None
    tasks: list[asyncio.Task[None]] = []
    status: StatusLine | None = None
    loop = asyncio.get_running_loop()
    try:
        if cfg.show and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise MediaError("--show needs a graphical display, and DISPLAY is not set")
        await client.connect()
        local = LatestFrame() if cfg.show else None
        remote = LatestFrame() if cfg.show else None
        sources = await open_sources(
            cfg.video, cfg.audio, cfg.size, cfg.fps, tap=local.put if local else None
        )
        options = CallOptions(
            room=cfg.room,
            role=cfg.role,
            codec=cfg.codec,
            ice_servers=None if cfg.ice_servers is None else list(cfg.ice_servers),
            relay_only=cfg.relay_only,
            name=cfg.name,
            record=cfg.record,
            show_remote=remote,
        )
        call = Call(client, options, sources, start=start, on_chat=_print_chat)
        if remote is not None:
            display = Display(remote, local)
            display.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, call.request_hangup, "interrupted")
        status = StatusLine(call, sys.stderr)
        tasks.append(asyncio.create_task(_status_loop(call, status, display)))
        if cfg.chat:
            tasks.append(asyncio.create_task(_chat_pump(call)))
        await call.start()
        return await call.run(connect_timeout=cfg.timeout, duration=cfg.duration)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if status is not None:
            status.update()
            status.finish()
        if call is not None:
            await call.close()
            result.update(call.stats.summary())
        else:
            sources.stop()
        if display is not None:
            display.stop()
        await client.close()


def _write_stats(path: str, stats: dict[str, Any]) -> None:
    text = json.dumps(stats, indent=2)
    if path == "-":
        print(text, flush=True)
    else:
        with open(path, "w", encoding="utf-8") as out:
            out.write(text + "\n")


def _configure_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if verbose < 2:
        # aiortc and aioice log every transaction at INFO; keep -v about the call
        for noisy in ("aioice", "aiortc", "socketio", "engineio"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg = config_from_args(argv)
    except PeerError as exc:
        print(f"p2pcall-peer: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    _configure_logging(cfg.verbose)
    result: dict[str, Any] = {}
    code = ExitCode.OK
    try:
        reason = asyncio.run(run_peer(cfg, result))
        result["end_reason"] = reason
        print(f"p2pcall-peer: call ended ({reason})", file=sys.stderr)
    except PeerError as exc:
        code = exc.exit_code
        result["error"] = str(exc)
        print(f"p2pcall-peer: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        result["end_reason"] = "interrupted"
    except Exception as exc:  # a bug or an aiortc failure: say so in one line, exit as media
        log.debug("unexpected failure", exc_info=True)
        code = ExitCode.MEDIA
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"p2pcall-peer: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
    result["exit_code"] = int(code)
    if cfg.stats_json is not None:
        _write_stats(cfg.stats_json, result)
    return int(code)
