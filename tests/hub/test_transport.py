"""lean_mismatch(): installed major.minor vs LEAN_WRITTEN_FOR."""

from __future__ import annotations

import importlib.metadata
import logging

import pytest

from signaling import transport


def _installed(monkeypatch: pytest.MonkeyPatch, versions: dict[str, str]) -> None:
    """Have importlib.metadata report ``versions`` (any other distribution: missing)."""

    def version(dist: str) -> str:
        if dist not in versions:
            raise importlib.metadata.PackageNotFoundError(dist)
        return versions[dist]

    monkeypatch.setattr(importlib.metadata, "version", version)


def test_match_ignores_patch(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(
        monkeypatch,
        {"python-socketio": "5.18.9", "python-engineio": "4.15.0", "aiohttp": "3.14.2"},
    )
    assert transport.lean_mismatch() is None


def test_mismatch_names_installed_and_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(
        monkeypatch,
        {"python-socketio": "5.18.1", "python-engineio": "4.16.0", "aiohttp": "3.14.0"},
    )
    msg = transport.lean_mismatch()
    assert msg is not None
    assert "python-engineio 4.15" in msg and "4.16.0" in msg
    assert "python-socketio" not in msg and "aiohttp" not in msg


def test_an_aiohttp_of_another_minor_is_a_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(
        monkeypatch,
        {"python-socketio": "5.18.1", "python-engineio": "4.15.0", "aiohttp": "3.15.0"},
    )
    assert transport.lean_mismatch() == "lean transport written for aiohttp 3.14, installed 3.15.0"


def test_missing_distribution_is_mismatch(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(monkeypatch, {"python-socketio": "5.18.1"})
    msg = transport.lean_mismatch()
    assert msg is not None and "not installed" in msg


def test_installed_versions_match() -> None:
    assert transport.lean_mismatch() is None


def _mismatched(monkeypatch: pytest.MonkeyPatch) -> None:
    _installed(monkeypatch, {"python-socketio": "6.0.0", "python-engineio": "4.15.1"})


def test_auto_picks_stock_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _mismatched(monkeypatch)
    log = logging.getLogger("test.transport")
    with caplog.at_level(logging.WARNING, logger="test.transport"):
        assert transport.choose("auto", log) == "stock"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "python-socketio 5.18" in warnings[0].getMessage()


def test_lean_with_mismatch_stays_lean_and_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _mismatched(monkeypatch)
    log = logging.getLogger("test.transport")
    with caplog.at_level(logging.WARNING, logger="test.transport"):
        assert transport.choose("lean", log) == "lean"
    assert len(caplog.records) == 1


def test_auto_without_mismatch_is_lean_silently(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert transport.choose("auto", logging.getLogger("t")) == "lean"
    assert not caplog.records


def test_config_transport_flag_env_and_error() -> None:
    from signaling.config import ConfigError, config_from_args

    assert config_from_args([]).transport == "auto"
    assert config_from_args(["--transport", "stock"]).transport == "stock"
    assert config_from_args([], {"SIGNALING_TRANSPORT": "lean"}).transport == "lean"
    with pytest.raises(ConfigError, match="--transport"):
        config_from_args(["--transport", "fast"])
