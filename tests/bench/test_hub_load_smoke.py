"""The hub load benchmark in smoke mode: it runs, reports every figure, loses nothing."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from bench.hub_load import FIGURES

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_hub_load_smoke_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "hub.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.hub_load", "--smoke", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "ours/PeerJS" in proc.stdout
    result = json.loads(out.read_text())
    summary = result["summary"]
    for target in ("hub", "hub-grace0", "hub-redis", "hub-redis2", "peerjs"):
        memory = summary["memory"][target]
        assert memory["rss_per_idle_socket_bytes"] > 0, memory
        assert math.isfinite(memory["rss_per_held_offer_bytes"]), memory
        for pairs, row in summary["load"][target].items():
            assert set(FIGURES) <= set(row), (target, pairs, row)
            assert row["setups_per_s"] > 0, (target, pairs, row)
            assert row["setups_per_cpu_s"] > 0, (target, pairs, row)
            assert row["p50_ms"] > 0 and row["p99_ms"] >= row["p50_ms"], (target, pairs, row)
            assert row["relayed"] > 0, (target, pairs, row)
            assert (row["errors"], row["lost"], row["duplicated"], row["reordered"]) == (
                0,
                0,
                0,
                0,
            ), (target, pairs, row, result["runs"])
    for pairs, ratio in summary["ratios"].items():
        assert all(math.isfinite(v) and v > 0 for v in ratio.values()), (pairs, ratio)
    for pairs, ratio in summary["sessions"].items():
        assert math.isfinite(ratio["cpu_per_setup"]) and ratio["cpu_per_setup"] > 0, (pairs, ratio)
    assert "sessions with grace / --resume-grace 0" in proc.stdout
    for pairs, ratio in summary["redis"].items():
        assert math.isfinite(ratio["cpu_per_setup"]) and ratio["cpu_per_setup"] > 0, (pairs, ratio)
    assert "--redis (hub + redis-server CPU) / in-memory" in proc.stdout
    for pairs, ratio in summary["two_hubs"].items():
        assert ratio["setups_per_s"] > 0 and ratio["cpu_per_setup"] > 0, (pairs, ratio)
        assert len(ratio["process_cpu_util"]) == 3, ratio  # hub 1, hub 2, redis-server
        assert ratio["process_cpu_util"][1] > 0, ratio  # the second hub did work
    assert "two hubs / one hub, both on Redis" in proc.stdout
    for run in result["runs"]:
        assert run["relayed"] == run["relayed_expected"], run
    assert result["machine"]["python-socketio"] != "absent"
