"""``python -m bench`` / ``make bench``: run every benchmark in turn, each as its own process."""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = ("bench.hub_load", "bench.media", "bench.browser_first_frame")


def main(argv: list[str]) -> int:
    failed = 0
    for module in BENCHMARKS:
        print(f"== {module}", flush=True)
        failed |= subprocess.call([sys.executable, "-m", module, *argv]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
