"""Media benchmark: two CLI peers through the hub against stock aiortc, in one run.

For every size x codec x repeat it runs three variants, each in fresh processes:

- ``p2pcall``: ``python -m peer`` caller and answerer (stamped ``testsrc`` both ways,
  no audio) through a ``python -m signaling`` hub on loopback, each run under
  :mod:`bench.media_launch` so its first frame is timed from the spawn;
- ``stock``: two plain aiortc RTCPeerConnections in one process (:mod:`bench.media_pair`)
  with the same source, sink and configuration, and aiortc's own receive buffer;
- ``marker``: the same pair with :func:`peer.jitter.install`, which isolates the
  receive buffer's share of the difference.

Figures: first frame from process spawn, received fps, frames lost, glass-to-glass
latency p50/p95 (the stamp's send time against the receiver's clock after decoding)
CPU seconds of each process (psutil, read when the process has exited but before it
is reaped, so every thread is counted) and the CPU share during the second half of
the call (``cpu_call_pct``, which leaves out start-up and imports). When a figure
covers both directions it is the worse one. Results go to
``bench/results/media-<timestamp>.json`` and a table of medians with ratios
p2pcall/stock is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import psutil

from bench.media_pair import CODECS, parse_size
from bench.servers import BenchSetupError, start_hub

PROG = "bench.media"  # prefix of progress lines on stderr
RESULTS = Path(__file__).parent / "results"
VARIANTS = ("p2pcall", "stock", "marker")
SMOKE = {"duration": 3.0, "sizes": [(320, 240)], "codecs": ["vp8"], "repeat": 1}
CPU_SAMPLE_INTERVAL = 0.25
SETUP_ALLOWANCE = 60.0  # seconds a run may take beyond its duration before it is killed
FIGURES = (
    "first_frame_from_spawn_ms",
    "fps",
    "frames_lost",
    "latency_p50_ms",
    "latency_p95_ms",
    "cpu_s",
    "cpu_call_pct",
)
TARGETS = {  # the targets for 640x480@30 VP8, reported, never asserted
    "latency_p95_ms": "<= 20",
    "fps": ">= 30.0 (sent 30)",
    "frames_lost": "== 0",
    "cpu_s": "<= stock",
    "cpu_call_pct": "<= stock",
    "first_frame_from_spawn_ms": "<= 350",
}


class BenchError(Exception):
    """A variant could not run; the message says which and why."""


# -- processes ------------------------------------------------------------------------


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def wait_with_cpu(proc: subprocess.Popen[Any], deadline: float) -> tuple[int, float]:
    """Wait for ``proc`` (killing it after ``deadline``); return (exit code, CPU seconds).

    The CPU time is read from the exited, not yet reaped process, so it includes every
    thread the process ever ran (encoder, decoder, ICE).
    """
    killed = False
    while os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        if time.monotonic() > deadline and not killed:
            proc.kill()
            killed = True
        time.sleep(0.02)
    times = psutil.Process(proc.pid).cpu_times()
    code = proc.wait()
    return code, round(times.user + times.system, 2)


class CpuSampler(threading.Thread):
    """Samples the CPU seconds of running children, for their CPU share during the call.

    Whole-life CPU includes interpreter start-up and imports, which dominate short runs;
    the share over the second half of the call is the steady cost of media.
    """

    def __init__(self, pids: dict[str, int], interval: float = CPU_SAMPLE_INTERVAL) -> None:
        super().__init__(daemon=True)
        self.handles = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in pids}
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            for name, handle in self.handles.items():
                try:
                    times = handle.cpu_times()
                except psutil.Error:
                    continue
                self.samples[name].append((time.monotonic(), times.user + times.system))
            self.stopped.wait(self.interval)

    def stop(self) -> None:
        self.stopped.set()
        self.join()

    def share_pct(self, window: float) -> float | None:
        """CPU percent of one core, summed over the processes, over the last ``window`` s."""
        total = 0.0
        for samples in self.samples.values():
            if len(samples) < 2:
                return None
            end_t, end_cpu = samples[-1]
            start_t, start_cpu = next(s for s in samples if s[0] >= end_t - window)
            if end_t - start_t < window / 2:
                return None
            total += (end_cpu - start_cpu) / (end_t - start_t)
        return round(100 * total, 1)


class Drain(threading.Thread):
    """Reads a child's stream to the end so it never blocks; keeps the last lines."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[str] = []
        self.url: str | None = None
        self.ready = threading.Event()

    def run(self) -> None:
        for line in self.stream:
            self.lines = [*self.lines[-40:], line.rstrip()]
            match = re.search(r"listening on (http://\S+)", line)
            if match and self.url is None:
                self.url = match.group(1)
                self.ready.set()
        self.ready.set()


@contextmanager
def hub() -> Iterator[tuple[str, psutil.Process]]:
    """A ``python -m signaling`` hub on a free loopback port; yields (url, process)."""
    try:
        server = start_hub(None)
    except BenchSetupError as exc:
        raise BenchError(str(exc)) from None
    try:
        yield server.url, server.stats()[0]
    finally:
        server.stop()


def startup_ms(repeat: int = 3) -> float:
    """Median wall time of ``python -m peer --help``: interpreter start-up plus imports.

    It is the floor under "first frame from spawn" before any network work starts.
    """
    samples = []
    for _ in range(repeat):
        began = time.monotonic()
        done = subprocess.run(python_module("peer", "--help"), capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"python -m peer --help failed: {done.stderr.strip()[-300:]}")
        samples.append((time.monotonic() - began) * 1000)
    return round(statistics.median(samples), 1)


# -- one run of each variant ----------------------------------------------------------


def receiver_figures(stats: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The worse of the two directions for each figure."""
    values = list(stats.values())

    def pick(key: str, fn: Any, inner: str | None = None) -> Any:
        found = [s[key][inner] if inner else s[key] for s in values]
        if not found or any(v is None for v in found):
            return None
        return fn(found)

    return {
        "first_frame_from_spawn_ms": pick("first_frame_from_spawn_ms", max),
        "fps": pick("fps", min),
        "frames_lost": pick("frames_lost", sum),
        "latency_p50_ms": pick("latency_ms", max, "p50"),
        "latency_p95_ms": pick("latency_ms", max, "p95"),
    }


def run_cli_pair(
    url: str,
    hub_process: psutil.Process,
    size: tuple[int, int],
    codec: str,
    duration: float,
    fps: float,
    workdir: Path,
) -> dict[str, Any]:
    """One call between two peer CLI processes through the hub.

    Each peer runs under :mod:`bench.media_launch` (``python -m peer`` plus a note of
    when its first frame arrived), which makes first frame from spawn exact.
    """
    room = f"bench-{uuid.uuid4().hex[:8]}"
    width, height = size
    hub_cpu0 = sum(hub_process.cpu_times()[:2])
    procs: dict[str, subprocess.Popen[Any]] = {}
    spawned: dict[str, float] = {}
    began = time.monotonic()
    for role in ("caller", "answerer"):
        with (workdir / f"{room}-{role}.log").open("w") as log_file:
            spawned[role] = time.time() * 1000
            procs[role] = subprocess.Popen(
                python_module(
                    "bench.media_launch",
                    str(workdir / f"{room}-{role}-first.json"),
                    "--",
                    *("--server", url, "--room", room, "--role", role),
                    *("--video", "testsrc", "--audio", "none"),
                    *("--size", f"{width}x{height}", "--fps", f"{fps:g}", "--codec", codec),
                    *("--duration", f"{duration:g}", "--timeout", "30"),
                    *("--stats-json", str(workdir / f"{room}-{role}.json")),
                ),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
    deadline = began + duration + SETUP_ALLOWANCE
    sampler = CpuSampler({role: proc.pid for role, proc in procs.items()})
    sampler.start()
    cpu: dict[str, float] = {}
    failures = []
    for role, proc in procs.items():
        code, cpu[role] = wait_with_cpu(proc, deadline)
        if role == "caller":
            sampler.stop()
        if code != 0:
            log_text = (workdir / f"{room}-{role}.log").read_text(errors="replace")
            failures.append(f"{role} exited {code}: {' | '.join(log_text.splitlines()[-3:])}")
    wall = time.monotonic() - began
    if failures:
        raise BenchError("; ".join(failures))
    stats = {}
    for role in procs:
        summary = json.loads((workdir / f"{room}-{role}.json").read_text())
        first = json.loads((workdir / f"{room}-{role}-first.json").read_text())
        at = first["first_frame_unix_ms"]
        summary["first_frame_from_spawn_ms"] = None if at is None else round(at - spawned[role], 1)
        stats[role] = summary
    total = round(sum(cpu.values()), 2)
    hub_cpu = round(sum(hub_process.cpu_times()[:2]) - hub_cpu0, 2)
    return {
        **receiver_figures(stats),
        "cpu_s": total,
        "cpu_pct": round(100 * total / wall, 1),
        "cpu_call_pct": sampler.share_pct(duration / 2),
        "cpu_s_by_process": {**cpu, "hub": hub_cpu},
        "wall_s": round(wall, 2),
        "stats": stats,
    }


def run_in_process_pair(
    size: tuple[int, int], codec: str, duration: float, fps: float, jitter: str
) -> dict[str, Any]:
    """One call between two RTCPeerConnections in a child process (bench.media_pair)."""
    width, height = size
    spawned_ms = time.time() * 1000
    began = time.monotonic()
    proc = subprocess.Popen(
        python_module(
            "bench.media_pair",
            *("--size", f"{width}x{height}", "--codec", codec, "--fps", f"{fps:g}"),
            *("--duration", f"{duration:g}", "--jitter", jitter),
            *("--spawned-at", f"{spawned_ms:.1f}", "--out", "-"),
        ),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    out, err = Drain(proc.stdout), Drain(proc.stderr)
    out.start()
    err.start()
    sampler = CpuSampler({"pair": proc.pid})
    sampler.start()
    code, cpu = wait_with_cpu(proc, began + duration + SETUP_ALLOWANCE)
    sampler.stop()
    wall = time.monotonic() - began
    out.join(5)
    err.join(5)
    if code != 0 or not out.lines:
        raise BenchError(f"bench.media_pair exited {code}: {' | '.join(err.lines[-3:])}")
    stats = json.loads(out.lines[-1])
    return {
        **receiver_figures(stats),
        "cpu_s": cpu,
        "cpu_pct": round(100 * cpu / wall, 1),
        "cpu_call_pct": sampler.share_pct(duration / 2),
        "cpu_s_by_process": {"pair": cpu},
        "wall_s": round(wall, 2),
        "stats": stats,
    }


# -- summary --------------------------------------------------------------------------


def median_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    good = [r for r in runs if "error" not in r]
    medians: dict[str, Any] = {}
    for key in (*FIGURES, "cpu_pct", "wall_s"):
        values = [r[key] for r in good if r.get(key) is not None]
        medians[key] = round(statistics.median(values), 2) if values else None
    medians["runs"] = len(good)
    medians["errors"] = [r["error"] for r in runs if "error" in r]
    return medians


def ratio(ours: Any, stock: Any) -> float | None:
    if ours is None or stock is None or stock == 0:
        return None
    return round(ours / stock, 2)


def table(summary: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return "-" if value is None else f"{value:g}" if isinstance(value, float) else str(value)

    lines = []
    header = f"{'figure':28}" + "".join(f"{v:>10}" for v in VARIANTS) + f"{'ours/stock':>12}"
    for entry in summary:
        lines += ["", f"{entry['size']} {entry['codec']} ({entry['duration']:g} s)", header]
        for key in FIGURES:
            row = f"{key:28}" + "".join(f"{cell(entry[v][key]):>10}" for v in VARIANTS)
            row += f"{cell(entry['ratio_p2pcall_stock'][key]):>12}"
            lines.append(row)
        for v in VARIANTS:
            for error in entry[v]["errors"]:
                lines.append(f"  {v} error: {error}")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    cpu_model = ""
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for package in ("aiortc", "av", "aioice", "python-socketio", "aiohttp", "numpy"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "cpu": cpu_model,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions,
    }


# -- CLI ------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[tuple[int, int]]:
    return [parse_size(part) for part in text.split(",") if part]


def parse_codecs(text: str) -> list[str]:
    codecs = [part.strip().lower() for part in text.split(",") if part.strip()]
    bad = [c for c in codecs if c not in CODECS]
    if bad or not codecs:
        raise argparse.ArgumentTypeError(
            f"codecs {text!r}: expected a comma list of {', '.join(sorted(CODECS))}"
        )
    return codecs


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.media", description=__doc__)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of each call")
    parser.add_argument(
        "--sizes", type=parse_sizes, default=[(640, 480), (1280, 720)], help="e.g. 640x480,1280x720"
    )
    parser.add_argument("--codecs", type=parse_codecs, default=["vp8", "h264"], help="vp8,h264")
    parser.add_argument("--repeat", type=int, default=1, help="runs per configuration")
    parser.add_argument("--fps", type=float, default=30.0, help="source frames per second")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma list of {', '.join(VARIANTS)}",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="3 s, 320x240, vp8, once (used by make test)"
    )
    parser.add_argument("--out", type=Path, default=None, help="results JSON path")
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # make bench passes one argument list to every benchmark
        print(f"{PROG}: ignoring arguments for other benchmarks: {unknown}", file=sys.stderr)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    if args.duration <= 0 or args.repeat < 1:
        parser.error("--duration must be > 0 and --repeat >= 1")
    variants = [v for v in args.variants.split(",") if v]
    if not variants or set(variants) - set(VARIANTS):
        parser.error(f"--variants {args.variants!r}: expected a comma list of {VARIANTS}")
    args.variants = variants
    return args


def run_variant(
    variant: str,
    size: tuple[int, int],
    codec: str,
    args: argparse.Namespace,
    hub_at: tuple[str, psutil.Process],
    workdir: Path,
) -> dict[str, Any]:
    """One run of one variant; a failure becomes ``{"error": ...}`` in the results."""
    print(f"{PROG}: {variant} {size[0]}x{size[1]} {codec} ...", file=sys.stderr, flush=True)
    try:
        if variant == "p2pcall":
            url, hub_process = hub_at
            result = run_cli_pair(url, hub_process, size, codec, args.duration, args.fps, workdir)
        else:
            result = run_in_process_pair(size, codec, args.duration, args.fps, variant)
    except BenchError as exc:
        result = {"error": str(exc)}
    result.update(variant=variant, size=f"{size[0]}x{size[1]}", codec=codec)
    return result


def summarise(
    size: tuple[int, int], codec: str, duration: float, runs: list[dict[str, Any]]
) -> dict[str, Any]:
    """Medians per variant of one size x codec, and the p2pcall/stock ratios."""
    entry: dict[str, Any] = {"size": f"{size[0]}x{size[1]}", "codec": codec, "duration": duration}
    for variant in VARIANTS:
        entry[variant] = median_figures([r for r in runs if r["variant"] == variant])
    entry["ratio_p2pcall_stock"] = {
        key: ratio(entry["p2pcall"][key], entry["stock"][key]) for key in FIGURES
    }
    return entry


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    out = args.out or RESULTS / f"media-{started:%Y%m%d-%H%M%S}.json"
    runs: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    document: dict[str, Any] = {
        "benchmark": "media",
        "started": started.isoformat(),
        "config": {
            "duration": args.duration,
            "sizes": [f"{w}x{h}" for w, h in args.sizes],
            "codecs": args.codecs,
            "repeat": args.repeat,
            "fps": args.fps,
            "variants": args.variants,
            "smoke": args.smoke,
        },
        "environment": environment(),
        "startup_ms": None,
        "targets": TARGETS,
        "summary": summary,
        "runs": runs,
    }
    out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:  # after every run, so a long benchmark cut short keeps its data
        out.write_text(json.dumps(document, indent=2))

    with tempfile.TemporaryDirectory(prefix="p2pcall-media-") as tmp, hub() as hub_at:
        if "p2pcall" in args.variants:
            document["startup_ms"] = startup_ms()
        for size in args.sizes:
            for codec in args.codecs:
                done: list[dict[str, Any]] = []
                for _ in range(args.repeat):
                    for variant in args.variants:
                        done.append(
                            run_variant(
                                variant,
                                size,
                                codec,
                                args,
                                hub_at,
                                Path(tmp),
                            )
                        )
                        runs.append(done[-1])
                        save()
                summary.append(summarise(size, codec, args.duration, done))
    document["environment"]["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    save()
    print(table(summary))
    print(f"\nresults: {out}")
    return 1 if any("error" in r for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
