"""``p2pcall-peer`` / ``python -m peer``: make one call from a terminal.

Every expected failure ends in one line on stderr and an exit code from
:class:`~peer.errors.ExitCode`; resources close in ``finally`` blocks. Flags are
parsed before the media stack loads, so ``--help`` and usage errors are instant.

Ctrl-C ends the process the same way wherever it lands: mid-call, or in the first
half second while aiortc, PyAV and numpy are still being imported. That is why this
module imports only small standard-library modules at its top: the console script
imports it before :func:`main` can catch anything.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

INTERRUPTED = "interrupted"  # the end reason of a Ctrl-C (SIGINT) or SIGTERM

log = logging.getLogger("peer")


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
    """Run ``p2pcall-peer`` with ``argv`` (default ``sys.argv[1:]``); the exit code.

    A Ctrl-C that comes before the call has its own SIGINT handler (while flags are
    parsed or the media stack loads) ends like one mid-call: the line
    ``p2pcall-peer: call ended (interrupted)`` and exit 0, no traceback.
    """
    try:
        return _run(argv)
    except KeyboardInterrupt:
        return interrupted()


def interrupted() -> int:
    """Say the call ended by Ctrl-C, as :func:`peer.session.run_peer` ends it; exit 0."""
    # CPython 3.11 records a KeyboardInterrupt that escapes an exec() of a string
    # (dataclasses and namedtuple build their methods so, at import) as unhandled even
    # once it is caught, and `python -m` then kills itself by SIGINT at exit; the next
    # exec() of a string clears that record, so the exit code below is the one kept.
    exec("pass")
    print(f"p2pcall-peer: call ended ({INTERRUPTED})", file=sys.stderr)
    return 0


def _run(argv: Sequence[str] | None) -> int:
    import asyncio

    from .config import config_from_args
    from .errors import ExitCode, PeerError

    try:
        cfg = config_from_args(argv)
    except PeerError as exc:
        print(f"p2pcall-peer: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    _configure_logging(cfg.verbose)
    result: dict[str, Any] = {}
    code = ExitCode.OK
    try:
        if cfg.show:
            from . import display  # noqa: F401  OpenCV before PyAV, see peer.display
        from .session import run_peer

        reason = asyncio.run(run_peer(cfg, result))
        result["end_reason"] = reason
        print(f"p2pcall-peer: call ended ({reason})", file=sys.stderr)
    except PeerError as exc:
        code = exc.exit_code
        result["error"] = str(exc)
        print(f"p2pcall-peer: {exc}", file=sys.stderr)
    except KeyboardInterrupt:  # before run_peer set its own SIGINT handler
        result["end_reason"] = INTERRUPTED
        code = ExitCode(interrupted())
    except Exception as exc:  # a bug or an aiortc failure: say so in one line, exit as media
        log.debug("unexpected failure", exc_info=True)
        code = ExitCode.MEDIA
        result["error"] = f"{type(exc).__name__}: {exc}"
        print(f"p2pcall-peer: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
    result["exit_code"] = int(code)
    if cfg.stats_json is not None:
        _write_stats(cfg.stats_json, result)
    return int(code)
