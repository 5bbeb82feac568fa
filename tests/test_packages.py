"""Both packages export their API lazily: every name resolves, and flag parsing stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import peer
import signaling
from tests.conftest import ROOT


@pytest.mark.parametrize("package", [peer, signaling])
def test_every_exported_name_resolves(package: object) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert names == sorted(names)
    for name in names:
        assert getattr(package, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'missing'"):
        _ = package.missing  # type: ignore[attr-defined]


def test_peer_flags_parse_without_the_media_stack() -> None:
    """``--help`` and usage errors must not wait for aiortc, PyAV or OpenCV to load."""
    code = (
        "import sys, peer.cli\n"
        "from peer.config import config_from_args\n"
        "config_from_args(['--room', 'r', '--role', 'caller'], environ={})\n"
        "heavy = sorted(m for m in ('aiortc', 'av', 'cv2', 'socketio') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
