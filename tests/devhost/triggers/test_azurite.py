"""The project's Azurite: what happens without npm, and when it is not installed."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devhost.app.bindings import QueueFunction
from devhost.app.loader import LoadedApp
from devhost.triggers import azurite, runner as triggers


def test_without_npm_the_reason_names_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(azurite.shutil, "which", lambda tool: None if tool == "npm" else "/x")
    reason = azurite.missing_reason()
    assert reason is not None and "npm is not installed" in reason
    assert f"Azurite {azurite.VERSION}" in reason and "apt-get install nodejs npm" in reason


def test_install_without_npm_exits_zero_with_the_reason(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(azurite, "binary", lambda install_dir=None: None)
    monkeypatch.setattr(azurite.shutil, "which", lambda tool: None)
    assert azurite.main(["install"]) == 0  # `make run` goes on and serves the rest
    err = capsys.readouterr().err
    assert "node is not installed" in err and "everything else will" in err


def test_an_install_elsewhere_or_of_another_version_is_not_used(tmp_path: Path) -> None:
    bin_dir = tmp_path / "node_modules" / ".bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "azurite-queue").write_text("#!/bin/sh\n")
    package = tmp_path / "node_modules" / "azurite"
    package.mkdir()
    (package / "package.json").write_text('{"version": "3.35.0"}')
    assert azurite.binary(tmp_path) is None
    (package / "package.json").write_text(f'{{"version": "{azurite.VERSION}"}}')
    assert azurite.binary(tmp_path) == bin_dir / "azurite-queue"


async def test_devhost_warns_when_azurite_is_needed_but_not_installed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    monkeypatch.setattr(azurite, "binary", lambda install_dir=None: None)
    monkeypatch.setattr(azurite, "listening", lambda port, host="127.0.0.1": False)
    app = LoadedApp(directory=str(tmp_path), route_prefix="api", hub_name="Hub",
                    overridable=frozenset(), http=(), orchestrators={}, activities={},
                    queues=(QueueFunction("stop_from_queue", "msg", "client", "workflow-stop",
                                          "AzureWebJobsStorage", lambda msg, client: None,
                                          False),))
    runner = triggers.Triggers(app, str(tmp_path / "db.sqlite3"), lambda: "{}",
                               start_azurite=True)
    await asyncio.get_running_loop().run_in_executor(None, runner._ensure_azurite)
    assert any(f"Azurite {azurite.VERSION} is not installed" in w for w in runner.warnings)
