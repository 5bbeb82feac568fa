"""``python -m bench.browser_first_frame --smoke`` completes and reports every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_browser_first_frame_smoke_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "browser.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.browser_first_frame", "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=160,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    document = json.loads(out.read_text())
    assert document["repeat"] == 1 and len(document["runs"]) == 1
    figures = document["median"]
    assert set(figures) == {"first_frame_ms", "browser_connected_ms", "full_gathering_ms"}
    # the frame can only arrive after the press, and a gathering takes some time
    assert figures["first_frame_ms"] > 0 and figures["full_gathering_ms"] > 0
    assert "first frame" in done.stdout
