"""The namespace helpers themselves: how they refuse without root, and stale clean-up."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.netns import net


def test_not_root_fails_saying_how_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(pytest.fail.Exception, match=r"need root .*sudo make test"):
        net.require_root_and_tools()


def test_namespaces_of_dead_runs_are_cleaned_and_live_ones_kept() -> None:
    net.require_root_and_tools()
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs (pids are not reused this fast)
    stale, live = f"{net.PREFIX}{dead.pid}-a", f"{net.PREFIX}1-b"  # pid 1 always runs
    net.ip("netns", "add", stale)
    net.ip("netns", "add", live)
    try:
        assert stale in net.clean_stale()
        names = net.ip("netns", "list").stdout
        assert stale not in names and live in names
    finally:
        net.ip("netns", "del", stale, check=False)
        net.ip("netns", "del", live, check=False)
