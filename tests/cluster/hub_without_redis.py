"""``python -m signaling`` minus ``--redis URL``: the launcher's hub until the hub has it.

``deploy/cluster.py --hub-command "python tests/cluster/hub_without_redis.py"`` then runs
the whole launcher (Redis included) with hubs that do not share it. Delete this file, and
the option in tests/cluster/test_launcher.py, once ``--redis`` lands.
"""

from __future__ import annotations

import sys

from signaling.cli import main


def without_redis(argv: list[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--redis":
            skip = True
        elif not arg.startswith("--redis="):
            out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main(without_redis(sys.argv[1:])))
