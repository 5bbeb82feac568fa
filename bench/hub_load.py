"""Hub load benchmark: our hub and the PeerJS server under the same call pattern.

``python -m bench.hub_load [--pairs 50,200,1000] [--seconds 10] [--repeat 3]
[--smoke] [--out FILE]``. Each server runs pinned to the first CPU, the load
generators (``bench.loadgen``) and this process to the second. Per repeat and
server: a memory probe (RSS per idle socket, per held offer + 10 candidates),
then for each concurrency a fixed window of back-to-back call pairs, with the
server's CPU time read from its process over exactly that window. Medians of
the repeats and our/PeerJS ratios are printed and written as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from .servers import (
    PEERJS_VERSION,
    ROOT,
    BenchSetupError,
    Server,
    pin,
    start_hub,
    start_hub_redis,
    start_peerjs,
)

TARGETS: dict[str, Callable[[Plan], Server]] = {
    "hub": lambda plan: start_hub(plan.server_cpu),
    # the same hub with --resume-grace 0 (v1 lifetimes): what the session rules cost
    "hub-grace0": lambda plan: start_hub(plan.server_cpu, "--resume-grace", "0"),
    "peerjs": lambda plan: start_peerjs(plan.server_cpu),
    # the hub with --redis (the shared store of several hubs), its redis-server's CPU counted
    "hub-redis": lambda plan: start_hub_redis(plan.server_cpu),
    # two hubs on one Redis, callers on the first, answerers on the second (the second
    # hub shares the load generators' CPU: this machine has two)
    "hub-redis2": lambda plan: start_hub_redis(plan.server_cpu, second_cpu=plan.load_cpu),
}
PROTOCOL = {
    "hub": "hub",
    "hub-grace0": "hub",
    "peerjs": "peerjs",
    "hub-redis": "hub",
    "hub-redis2": "hub",
}
RESULTS_DIR = ROOT / "bench" / "results"
DRAIN_SECONDS = 60.0
# Paced load, well under either server's capacity on one core: latency at a given
# load rather than the length of a saturated server's queue.
DEFAULT_RATE = 200.0
FIGURES = (
    "setups_per_s",
    "cpu_s_per_1000_setups",
    "setups_per_cpu_s",
    "p50_ms",
    "p99_ms",
    "server_cpu_util",
    "generator_cpu_util",
    "errors",
    "lost",
    "duplicated",
    "reordered",
    "relayed",
)


@dataclass(frozen=True)
class Plan:
    pairs: tuple[int, ...]
    seconds: float
    repeat: int
    warmup: float
    generators: int
    memory_sockets: int
    rate: float
    server_cpu: int | None
    load_cpu: int | None


def cpus() -> tuple[int | None, int | None]:
    """(server CPU, load CPU): the first two CPUs we may run on, if there are two."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None, None
    return allowed[0], allowed[1]


def percentile(sorted_values: Sequence[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return float(sorted_values[index])


def _cpu(procs: list[psutil.Process]) -> float:
    return float(sum(t.user + t.system for t in (p.cpu_times() for p in procs)))


def _rss_median(procs: list[psutil.Process], samples: int = 5) -> int:
    values = []
    for _ in range(samples):
        values.append(sum(p.memory_info().rss for p in procs))
        time.sleep(0.1)
    return int(statistics.median(values))


def _loadgen(args: list[str], plan: Plan, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.loadgen", *args],
        cwd=ROOT,
        text=True,
        preexec_fn=(lambda: pin(plan.load_cpu)) if plan.load_cpu is not None else None,
        **kwargs,
    )


def memory_probe(target: str, server: Server, plan: Plan) -> dict[str, float]:
    """RSS delta per idle socket and per held offer + 10 candidates (medians of samples)."""
    k = plan.memory_sockets
    proc = server.stats()
    time.sleep(0.3)
    base = _rss_median(proc)
    gen = _loadgen(
        ["--target", PROTOCOL[target], "--url", server.url, "--memory", str(k)],
        plan,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert gen.stdin is not None and gen.stdout is not None
    marks: dict[str, int] = {}
    try:
        for step in ("idle", "held"):
            line = gen.stdout.readline().strip()
            if line != step:
                raise BenchSetupError(f"memory probe of {target}: expected {step!r}, got {line!r}")
            time.sleep(0.3)
            marks[step] = _rss_median(proc)
            gen.stdin.write("\n")
            gen.stdin.flush()
        gen.wait(60)
    finally:
        if gen.poll() is None:
            gen.kill()
            gen.wait()
    return {
        "rss_base_bytes": base,
        "rss_per_idle_socket_bytes": (marks["idle"] - base) / k,
        "rss_per_held_offer_bytes": (marks["held"] - marks["idle"]) / k,
    }


def load_run(target: str, server: Server, pairs: int, plan: Plan, rate: float) -> dict[str, Any]:
    """One window of ``pairs`` call pairs in flight; the server's CPU over exactly it.

    ``rate`` 0 runs the pairs back to back (saturation); > 0 paces them at
    ``rate`` setups/s in total (see ``bench.loadgen``).
    """
    proc = server.stats()
    start = time.monotonic_ns() + int(plan.warmup * 1e9)
    end = start + int(plan.seconds * 1e9)
    n_gen = max(1, min(plan.generators, pairs))
    shares = [pairs // n_gen + (i < pairs % n_gen) for i in range(n_gen)]
    window = ["--start-ns", str(start), "--end-ns", str(end)]
    common = ["--target", PROTOCOL[target], "--url", server.url, *window]
    if server.answer_url:
        common += ["--answer-url", server.answer_url]
    folder = Path(tempfile.mkdtemp(prefix="hub_load-"))
    outs = [folder / f"tally-{i}.json" for i in range(n_gen)]
    gens = [
        _loadgen(
            [
                *common,
                "--pairs",
                f"{share}",
                "--rate",
                f"{rate * share / pairs}",
                "--out",
                f"{out}",
            ],
            plan,
        )
        for share, out in zip(shares, outs, strict=True)
    ]
    handles = [psutil.Process(g.pid) for g in gens]
    time.sleep(max(0.0, (start - time.monotonic_ns()) / 1e9))
    each0, gen0 = [_cpu([p]) for p in proc], _cpu(handles)
    time.sleep(max(0.0, (end - time.monotonic_ns()) / 1e9))
    each1, gen1 = [_cpu([p]) for p in proc], _cpu(handles)
    cpu0, cpu1 = sum(each0), sum(each1)
    tallies = []
    try:
        for g, out in zip(gens, outs, strict=True):
            if g.wait(timeout=DRAIN_SECONDS) != 0:
                raise BenchSetupError(f"load generator for {target} failed with {g.returncode}")
            tallies.append(json.loads(out.read_text()))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    latencies = sorted(x for t in tallies for x in t["latencies_us"])
    setups = sum(t["setups_window"] for t in tallies)
    cpu = cpu1 - cpu0
    return {
        "target": target,
        "pairs": pairs,
        "mode": "paced" if rate else "saturated",
        "offered_setups_per_s": rate or None,
        "seconds": plan.seconds,
        "setups": setups,
        "setups_total": sum(t["setups_total"] for t in tallies),
        "setups_per_s": setups / plan.seconds,
        "server_cpu_s": cpu,
        "cpu_s_per_1000_setups": 1000 * cpu / setups if setups else float("inf"),
        "setups_per_cpu_s": setups / cpu if cpu > 0 else float("nan"),
        "server_cpu_util": cpu / plan.seconds,
        # per process (the server, then its helpers): where a bottleneck is
        "process_cpu_util": [(b - a) / plan.seconds for a, b in zip(each0, each1, strict=True)],
        "generator_cpu_util": (gen1 - gen0) / plan.seconds,
        "latency_samples": len(latencies),
        "p50_ms": percentile(latencies, 0.50) / 1000,
        "p99_ms": percentile(latencies, 0.99) / 1000,
        "relayed": sum(t["relayed_received"] for t in tallies),
        "relayed_expected": sum(t["relayed_expected"] for t in tallies),
        "lost": sum(t["lost"] for t in tallies),
        "duplicated": sum(t["duplicated"] for t in tallies),
        "reordered": sum(t["reordered"] for t in tallies),
        "errors": sum(t["errors"] for t in tallies),
        "load_avg_1min": os.getloadavg()[0],
        "error_samples": [s for t in tallies for s in t["error_samples"]][:5],
    }


def run_target(target: str, plan: Plan) -> tuple[dict[str, float], list[dict[str, Any]]]:
    server = TARGETS[target](plan)
    try:
        memory = memory_probe(target, server, plan)
        runs = []
        for n in plan.pairs:
            runs.append(load_run(target, server, n, plan, 0))
            if plan.rate:
                runs.append(load_run(target, server, n, plan, plan.rate))
    finally:
        server.stop()
    return memory, runs


def summarise(
    memory: dict[str, list[dict[str, float]]], runs: list[dict[str, Any]], plan: Plan
) -> dict[str, Any]:
    """Medians over repeats (integrity counts summed), and our/PeerJS ratios."""
    summary: dict[str, Any] = {
        "memory": {},
        "load": {},
        "paced": {},
        "ratios": {},
        "sessions": {},
        "redis": {},
        "two_hubs": {},
    }
    for target, probes in memory.items():
        summary["memory"][target] = {
            key: statistics.median(p[key] for p in probes) for key in probes[0]
        }
    for target in memory:
        for n in plan.pairs:
            for mode, section in (("saturated", "load"), ("paced", "paced")):
                mine = [
                    r for r in runs if (r["target"], r["pairs"], r["mode"]) == (target, n, mode)
                ]
                if not mine:
                    continue
                row: dict[str, float] = {}
                for key in FIGURES:
                    values = [r[key] for r in mine]
                    summed = key in ("errors", "lost", "duplicated", "reordered", "relayed")
                    row[key] = sum(values) if summed else statistics.median(values)
                summary[section].setdefault(target, {})[str(n)] = row
    for n in plan.pairs if {"hub", "hub-redis"} <= set(memory) else ():
        mem, red = summary["load"]["hub"][str(n)], summary["load"]["hub-redis"][str(n)]
        summary["redis"][str(n)] = {
            "cpu_per_setup": _ratio(red["cpu_s_per_1000_setups"], mem["cpu_s_per_1000_setups"]),
            "p99": _ratio(red["p99_ms"], mem["p99_ms"]),
        }
    for n in plan.pairs if {"hub-redis", "hub-redis2"} <= set(memory) else ():
        one, two = summary["load"]["hub-redis"][str(n)], summary["load"]["hub-redis2"][str(n)]
        wanted = ("hub-redis2", n, "saturated")
        mine = [
            r["process_cpu_util"] for r in runs if (r["target"], r["pairs"], r["mode"]) == wanted
        ]
        columns = zip(*mine, strict=True)
        summary["two_hubs"][str(n)] = {
            "setups_per_s": _ratio(two["setups_per_s"], one["setups_per_s"]),
            "cpu_per_setup": _ratio(two["cpu_s_per_1000_setups"], one["cpu_s_per_1000_setups"]),
            "p99": _ratio(two["p99_ms"], one["p99_ms"]),
            # hub 1, hub 2, redis-server; and the load generators on hub 2's CPU
            "process_cpu_util": [statistics.median(column) for column in columns],
            "generator_cpu_util": two["generator_cpu_util"],
        }
    for n in plan.pairs if {"hub", "hub-grace0"} <= set(memory) else ():
        on, off = summary["load"]["hub"][str(n)], summary["load"]["hub-grace0"][str(n)]
        summary["sessions"][str(n)] = {
            "cpu_per_setup": _ratio(on["cpu_s_per_1000_setups"], off["cpu_s_per_1000_setups"]),
            "p99": _ratio(on["p99_ms"], off["p99_ms"]),
        }
    for n in plan.pairs if {"hub", "peerjs"} <= set(memory) else ():
        ours, theirs = summary["load"]["hub"][str(n)], summary["load"]["peerjs"][str(n)]
        ratio = {
            "setups_per_cpu_s": ours["setups_per_cpu_s"] / theirs["setups_per_cpu_s"],
            "cpu_per_setup": ours["cpu_s_per_1000_setups"] / theirs["cpu_s_per_1000_setups"],
            "p99": _ratio(ours["p99_ms"], theirs["p99_ms"]),
        }
        if summary["paced"]:
            ours, theirs = summary["paced"]["hub"][str(n)], summary["paced"]["peerjs"][str(n)]
            ratio["paced_cpu_per_setup"] = _ratio(
                ours["cpu_s_per_1000_setups"], theirs["cpu_s_per_1000_setups"]
            )
            ratio["paced_p99"] = _ratio(ours["p99_ms"], theirs["p99_ms"])
        summary["ratios"][str(n)] = ratio
    return summary


def _ratio(ours: float, theirs: float) -> float:
    return ours / theirs if theirs else float("nan")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "absent"


def machine() -> dict[str, Any]:
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    model = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node,
        "peer": PEERJS_VERSION,
        **{
            pkg: _version(pkg)
            for pkg in ("python-socketio", "python-engineio", "aiohttp", "uvloop", "orjson")
        },
    }


def print_summary(summary: dict[str, Any], plan: Plan) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print("\nmedians of", plan.repeat, "run(s);", plan.seconds, "s windows; load average", load)
    head = f"{'server':10} {'pairs':>5} {'setups/s':>9} {'cpu-s/1k':>9} {'setups/cpu-s':>12} "
    head += f"{'p50 ms':>7} {'p99 ms':>7} {'srv cpu':>7} {'gen cpu':>7} errors lost dup reord"
    for section, title in (("load", "saturated (back to back)"), ("paced", "paced")):
        if not summary[section]:
            continue
        if section == "paced":
            title += f" at {plan.rate:g} setups/s offered"
        print(title)
        print(head)
        _print_rows(summary[section])
    for n, r in summary["ratios"].items():
        paced = (
            f"; paced: CPU per setup {r['paced_cpu_per_setup']:.2f}x, p99 {r['paced_p99']:.2f}x"
            if "paced_p99" in r
            else ""
        )
        print(
            f"ours/PeerJS at {n} pairs: setups per CPU-second {r['setups_per_cpu_s']:.2f}x, "
            f"CPU per setup {r['cpu_per_setup']:.2f}x, p99 {r['p99']:.2f}x{paced}"
        )
    for n, r in summary["sessions"].items():
        print(
            f"sessions with grace / --resume-grace 0 at {n} pairs: "
            f"CPU per setup {r['cpu_per_setup']:.2f}x, p99 {r['p99']:.2f}x"
        )
    for n, r in summary["redis"].items():
        print(
            f"--redis (hub + redis-server CPU) / in-memory at {n} pairs: "
            f"CPU per setup {r['cpu_per_setup']:.2f}x, p99 {r['p99']:.2f}x"
        )
    for n, r in summary["two_hubs"].items():
        hub1, hub2, redis = r["process_cpu_util"]
        print(
            f"two hubs / one hub, both on Redis, at {n} pairs: setups/s {r['setups_per_s']:.2f}x, "
            f"CPU per setup {r['cpu_per_setup']:.2f}x, p99 {r['p99']:.2f}x; CPU busy: hub 1 "
            f"{hub1:.0%}, hub 2 {hub2:.0%}, redis-server {redis:.0%}, load generators "
            f"{r['generator_cpu_util']:.0%} (on hub 2's CPU)"
        )
    for target, m in summary["memory"].items():
        print(
            f"{target}: RSS per idle socket {m['rss_per_idle_socket_bytes'] / 1024:.1f} KiB, "
            f"per held offer + 10 candidates {m['rss_per_held_offer_bytes'] / 1024:.1f} KiB"
        )


def _print_rows(load: dict[str, dict[str, dict[str, float]]]) -> None:
    for target, rows in load.items():
        for n, r in rows.items():
            print(
                f"{target:10} {n:>5} {r['setups_per_s']:9.1f} {r['cpu_s_per_1000_setups']:9.3f} "
                f"{r['setups_per_cpu_s']:12.1f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} "
                f"{r['server_cpu_util']:7.0%} {r['generator_cpu_util']:7.0%} "
                f"{r['errors']:6.0f} {r['lost']:4.0f} {r['duplicated']:3.0f} {r['reordered']:5.0f}"
            )


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, Plan]:
    p = argparse.ArgumentParser(prog="python -m bench.hub_load", description=__doc__)
    p.add_argument("--pairs", default="50,200,1000", help="concurrencies, comma-separated")
    p.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    p.add_argument("--repeat", type=int, default=3, help="runs per concurrency; medians kept")
    p.add_argument("--warmup", type=float, default=2.0, help="ramp-up before each window")
    p.add_argument("--generators", type=int, default=1, help="load generator processes")
    p.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help="offered setups/s of the paced run after each saturated one (0: none)",
    )
    p.add_argument("--memory-sockets", type=int, default=1000, help="sockets in the memory probe")
    p.add_argument(
        "--targets",
        default="hub,hub-grace0,hub-redis,hub-redis2,peerjs",
        help="servers to run (hub, hub-grace0 = the hub with --resume-grace 0, "
        "hub-redis = the hub with --redis on its own redis-server, hub-redis2 = two hubs "
        "on one redis-server with callers on one and answerers on the other, peerjs)",
    )
    p.add_argument("--smoke", action="store_true", help="a few seconds, small N (for tests)")
    p.add_argument("--out", type=Path, help="result JSON (default bench/results/hub-<time>.json)")
    args, unknown = p.parse_known_args(argv)
    if not set(args.targets.split(",")) <= set(TARGETS):
        p.error(
            "--targets: expected a comma-separated subset of hub,hub-grace0,hub-redis,hub-redis2,"
            " peerjs, "
            f"got {args.targets!r}"
        )
    if unknown:
        print(f"bench.hub_load: ignoring options for other benchmarks: {unknown}", file=sys.stderr)
    try:
        pairs = tuple(int(x) for x in args.pairs.split(","))
    except ValueError:
        p.error(f"--pairs: expected comma-separated integers, got {args.pairs!r}")
    if not pairs or min(pairs) < 1:
        p.error(f"--pairs: every concurrency must be >= 1, got {args.pairs!r}")
    if args.rate < 0:
        p.error(f"--rate: expected setups/s >= 0, got {args.rate}")
    if args.seconds <= 0 or args.repeat < 1 or args.generators < 1 or args.memory_sockets < 1:
        p.error("--seconds must be > 0; --repeat, --generators, --memory-sockets >= 1")
    server_cpu, load_cpu = cpus()
    if args.smoke:
        return args, Plan((10,), 2.0, 1, 1.0, 1, 50, 20.0, server_cpu, load_cpu)
    plan = Plan(
        pairs, args.seconds, args.repeat, args.warmup, args.generators, args.memory_sockets,
        args.rate, server_cpu, load_cpu,
    )  # fmt: skip
    return args, plan


def main(argv: Sequence[str] | None = None) -> int:
    args, plan = parse_args(argv)
    pin(plan.load_cpu)
    if plan.server_cpu is None:
        print("bench.hub_load: fewer than 2 CPUs; running unpinned", file=sys.stderr)
    memory: dict[str, list[dict[str, float]]] = {t: [] for t in args.targets.split(",")}
    runs: list[dict[str, Any]] = []
    started = datetime.now(UTC)
    load_start = os.getloadavg()
    try:
        for rep in range(plan.repeat):
            for target in memory:
                print(f"repeat {rep + 1}/{plan.repeat}: {target}", flush=True)
                mem, target_runs = run_target(target, plan)
                memory[target].append(mem)
                runs.extend(target_runs)
                for r in target_runs:
                    print(
                        f"  {r['pairs']:>5} pairs {r['mode']:9}: {r['setups_per_s']:.0f} setups/s, "
                        f"{r['setups_per_cpu_s']:.0f} setups/cpu-s, p99 {r['p99_ms']:.1f} ms, "
                        f"errors {r['errors']} lost {r['lost']}",
                        flush=True,
                    )
    except BenchSetupError as exc:
        print(f"bench.hub_load: {exc}", file=sys.stderr)
        return 1
    summary = summarise(memory, runs, plan)
    print_summary(summary, plan)
    out = args.out or RESULTS_DIR / f"hub-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "hub_load",
        "started": started.isoformat(),
        "machine": machine(),
        "plan": {**plan.__dict__, "pairs": list(plan.pairs)},
        # 1, 5, 15-minute load averages: the figures only mean something on a quiet machine
        "load_avg_start": load_start,
        "load_avg_end": os.getloadavg(),
        "summary": summary,
        "memory_runs": memory,
        "runs": runs,
    }
    out.write_text(json.dumps(result, indent=2))
    print(f"results: {out}")
    integrity = sum(r["lost"] + r["duplicated"] + r["reordered"] for r in runs)
    return 1 if integrity else 0


if __name__ == "__main__":
    sys.exit(main())
