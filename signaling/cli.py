"""``p2pcall-signaling`` / ``python -m signaling``: run the hub until interrupted.

Ctrl-C ends the process the same way wherever it lands, even while the server stack
(aiohttp, python-socketio) is still being imported: the console script imports this
module before :func:`main` can catch anything, so its top imports only small
standard-library modules and the settings; the rest loads inside :func:`main`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .config import Config, ConfigError, config_from_args

if TYPE_CHECKING:
    import asyncio

log = logging.getLogger("signaling")
LISTEN_BACKLOG = 1024


async def serve(config: Config, ready: asyncio.Event | None = None) -> None:
    """Serve until cancelled (or SIGINT/SIGTERM); log the real bound URL."""
    import asyncio

    from aiohttp import web

    from .edge import raise_fd_limit
    from .server import HUB_KEY, create_app, make_runner

    soft, hard = raise_fd_limit()
    log.info("open-files limit %d (hard %d)", soft, hard)
    app = create_app(config)
    runner = make_runner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=config.drain_timeout + 2.0,
    )
    await runner.setup()
    try:
        # a deep accept queue: a burst of connects must wait, not be dropped and retried
        site = web.TCPSite(runner, config.host, config.port, backlog=LISTEN_BACKLOG)
        try:
            await site.start()
        except OSError:
            app[HUB_KEY].served = False
            raise
        for host, port, *_ in runner.addresses:
            shown = f"[{host}]" if ":" in host else host
            log.info("p2pcall hub listening on http://%s:%s", shown, port)
        if config.turn is not None:
            log.info(
                "minting TURN credentials for %s, valid %d s",
                " ".join(config.turn.urls),
                config.turn.ttl,
            )
        if ready is not None:
            ready.set()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()


def _tune_gc() -> None:
    """Freeze start-up objects out of the cyclic GC and collect young objects less often.

    Every relayed message allocates short-lived dicts and strings; with the
    default gen-0 threshold (700) the collector runs every few messages and
    rescans the long-lived socket state as it ages. Reference counting frees
    almost all of it anyway; cycles (tasks, exceptions) are still collected.
    """
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def _run(coro: object) -> None:
    import asyncio

    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]
    else:
        uvloop.run(coro)  # type: ignore[arg-type]


def _reason(exc: OSError) -> str:
    """``address already in use``: the errno's own words, as README promises.

    aiohttp re-raises a failed bind as ``OSError(errno, "error while attempting to bind
    on address (...): ...")``, so ``strerror`` repeats the address; the errno alone says it.
    A host that does not resolve is a ``socket.gaierror``, whose errno is an EAI_* code
    that ``os.strerror`` does not know ("unknown error -2"): its own words say it.
    """
    if isinstance(exc, socket.gaierror):
        said = (exc.strerror or str(exc)).lower()
        return (
            f"the host does not resolve ({said}); "
            "expected an IP address of this machine or a name that resolves to one"
        )
    if exc.errno:
        return os.strerror(exc.errno).lower()
    return (exc.strerror or str(exc) or type(exc).__name__).lower()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the hub; 0 after SIGINT/SIGTERM, 1 if it cannot listen, 2 for a bad setting.

    A SIGINT that comes before :func:`serve` has its signal handlers (while the
    settings are read, say) ends it as quietly as one that comes after: exit 0.
    """
    try:
        return _main(argv)
    except KeyboardInterrupt:
        return 0


def _main(argv: Sequence[str] | None) -> int:
    from .shared import StoreError

    try:
        config = config_from_args(argv)
    except ConfigError as exc:
        print(f"p2pcall-signaling: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _tune_gc()
    try:
        _run(serve(config))
    except OSError as exc:
        print(
            f"p2pcall-signaling: cannot listen on {config.host}:{config.port}: {_reason(exc)}",
            file=sys.stderr,
        )
        return 1
    except StoreError as exc:
        print(f"p2pcall-signaling: {exc}", file=sys.stderr)
        return 1
    return 0
