"""The soak in its short mode: calls complete and verify while hostile clients are shed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.soak import KINDS

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_short_soak_loses_nothing_and_sheds_every_hostile_kind(tmp_path: Path) -> None:
    out, png = tmp_path / "soak.json", tmp_path / "soak.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.soak",
            "--seconds",
            "20",
            "--out",
            str(out),
            "--plot",
            str(png),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-3000:]}"
    result = json.loads(out.read_text())
    assert result["calls_completed"] > 0 and result["calls_failed"] == 0, result
    assert result["relayed_received"] == result["relayed_expected"] > 0
    assert (result["lost"], result["duplicated"], result["reordered"]) == (0, 0, 0)
    hostile = result["hostile"]
    assert set(hostile["tried"]) == {k.__name__ for k in KINDS}, hostile
    assert hostile["handled"] == hostile["tried"] and not hostile["unexpected"], hostile
    assert result["hub_tracebacks"] == 0
    after = result["hub_after"]
    assert (after["rooms"], after["sockets"]) == (0, 0), after  # nothing left behind
    assert png.stat().st_size > 1000
