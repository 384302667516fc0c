"""The test-only episode hold (devhost/core/hold.py): off unless the variable names an existing file."""
from __future__ import annotations

from pathlib import Path

import pytest

from devhost.core import hold


def test_hold_is_off_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(hold.ENV, raising=False)
    assert hold.engaged() is False


def test_hold_follows_the_file_named_by_the_variable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "hold"
    monkeypatch.setenv(hold.ENV, str(path))
    assert hold.engaged() is False
    path.touch()
    assert hold.engaged() is True
    path.unlink()
    assert hold.engaged() is False
