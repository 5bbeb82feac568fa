"""One call from the command line: media, status line, chat on stdin, clean close.

Kept apart from :mod:`peer.cli` so that parsing flags (and ``--help``, and usage
errors) does not pay for loading aiortc, PyAV and OpenCV.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from signaling.protocol import answer_link

from . import aiortc_seam
from .call import Call, CallOptions
from .config import PeerConfig
from .errors import UsageError
from .media import Sources, open_sources
from .signaling import SignalingClient
from .sinks import LatestFrame
from .status import StatusLine
from .terminal import printable
from .xserver import x_server_fault

if TYPE_CHECKING:
    from .display import Display

log = logging.getLogger(__name__)

STATUS_INTERVAL = 0.5
HUB_TIMEOUT = 10.0


def _print_chat(msg: dict[str, Any]) -> None:
    sender = msg.get("from")
    shown = printable(sender) if isinstance(sender, str) else "?"
    print(f"{shown}: {printable(msg['text'])}", flush=True)


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
    if cfg.show and (fault := x_server_fault(os.environ.get("DISPLAY", ""))) is not None:
        # OpenCV's Qt would abort the process once the window opens, after the offer
        raise UsageError(f"--show: {fault}")
    aiortc_seam.check()  # says once, at start-up, when the installed aiortc is not 1.16
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
        await client.connect()
        if cfg.private_room:
            print(
                f"private room {cfg.room}: answer at {answer_link(cfg.server, cfg.room)}",
                flush=True,
            )
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
            resolve_mdns=cfg.mdns,
            show_remote=remote,
            private=cfg.private_room,
        )
        call = Call(client, options, sources, start=start, on_chat=_print_chat)
        if remote is not None:
            from .display import Display  # loaded first by the CLI: see peer.display

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
