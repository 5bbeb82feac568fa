"""``python -m bench.media --smoke`` completes and reports every figure (not their values)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.media import FIGURES, VARIANTS


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_media_benchmark_smoke_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "media.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.media", "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"

    document = json.loads(out.read_text())
    assert document["config"]["smoke"] is True
    assert document["environment"]["versions"]["aiortc"]
    assert document["startup_ms"] is not None
    [entry] = document["summary"]
    for variant in VARIANTS:
        figures = entry[variant]
        assert figures["runs"] == 1 and figures["errors"] == [], variant
        missing = [key for key in FIGURES if figures[key] is None]
        assert missing == [], f"{variant} did not report {missing}"
    ratios = entry["ratio_p2pcall_stock"]
    assert set(ratios) == set(FIGURES)
    assert all(len(run["stats"]) == 2 for run in document["runs"])

    for key in FIGURES:
        assert key in done.stdout
    assert "ours/stock" in done.stdout and str(out) in done.stdout
