"""Run the peer CLI and note the wall-clock time of its first received video frame.

``python -m bench.media_launch OUT.json -- <python -m peer arguments>`` behaves like
``python -m peer`` (same imports, same exit code) and writes
``{"first_frame_unix_ms": ...}`` to ``OUT.json`` when the call ends, so the media
benchmark can measure "first frame from process spawn" exactly: the CLI's own stats
count from its ``main``, after the interpreter start-up and imports.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] != "--":
        print("usage: python -m bench.media_launch OUT.json -- PEER_ARGS...", file=sys.stderr)
        return 2
    out, peer_args = Path(argv[0]), argv[2:]
    from peer import cli, stats

    first: list[float] = []
    on_frame = stats.CallStats.on_frame

    def noting_first(self: stats.CallStats, *args: Any, **kwargs: Any) -> Any:
        if not first:
            first.append(time.time())
        return on_frame(self, *args, **kwargs)

    stats.CallStats.on_frame = noting_first  # type: ignore[method-assign]
    try:
        return cli.main(peer_args)
    finally:
        out.write_text(json.dumps({"first_frame_unix_ms": first[0] * 1000 if first else None}))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
