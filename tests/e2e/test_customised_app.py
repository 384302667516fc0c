"""The README's one-line customisation on a real devhost: a step after the event runs while the
stop is already answered. (``make customisation`` runs the whole check: template tests, their
fix commands and the contract on a customised copy.)"""
from __future__ import annotations

import asyncio
import importlib.util
import shutil
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest

from devhost.host.process import REPO, DevhostProcess
from tests.devhost.support import Api

pytestmark = pytest.mark.e2e

STEP_SECONDS = 3  # long enough that a stop waiting for the run's end could not miss it


def customisation() -> ModuleType:
    spec = importlib.util.spec_from_file_location("customisation",
                                                  REPO / "scripts" / "customisation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def customised_app(into: Path) -> Path:
    """The app's own files (what ``.funcignore`` deploys), with the customisation applied; skips
    the test when this app is customised already (it demonstrates the template's path)."""
    for name in ("function_app.py", "host.json"):
        shutil.copy2(REPO / name, into / name)
    shutil.copytree(REPO / "workflow", into / "workflow",
                    ignore=shutil.ignore_patterns("__pycache__"))
    module = customisation()
    try:
        module.customise(into)
    except module.AlreadyCustomised as exc:
        pytest.skip(f"the app is not the template any more: {exc}")
    return into


async def status(api: Api, k: str) -> dict[str, Any]:
    code, _, body = await api.request("GET", f"/api/check/{k}")
    assert code == 200, body
    return body


async def test_the_stop_is_answered_while_a_step_after_the_event_still_runs(
        tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    host = DevhostProcess(customised_app(app), tmp_path / "db.sqlite3",
                          env={"WORKFLOW_TIMEOUT_SECONDS": "0",
                               "NOTIFY_SECONDS": str(STEP_SECONDS)}).start()
    try:
        async with aiohttp.ClientSession() as session:
            api, k = Api(session, host.url), "custom"
            assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
            deadline = time.monotonic() + 30
            while (await status(api, k))["customStatus"] is None:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            code, _, stopped = await api.request("POST", f"/api/stop/{k}", body={"ok": 1})
            # Answered from the run's record while notify (3 s) runs: Running, no output yet.
            assert code == 202, stopped
            assert (stopped["confirmed"], stopped["runtimeStatus"], stopped["output"]) == \
                (True, "Running", None)
            assert stopped["customStatus"]["outcome"] == "stopped"
            running = await status(api, k)
            assert running["runtimeStatus"] == "Running"
            assert running["customStatus"] == stopped["customStatus"]
            # The wait is over: a second stop loses at once, while the step still runs.
            code, _, lost = await api.request("POST", f"/api/stop/{k}", body={"ok": 2})
            assert (code, lost["runtimeStatus"]) == (409, "Running"), lost
            deadline = time.monotonic() + STEP_SECONDS + 30
            while (done := await status(api, k))["runtimeStatus"] != "Completed":
                assert time.monotonic() < deadline, done
                await asyncio.sleep(0.02)
            assert done["output"] == {"outcome": "stopped", "event": {"ok": 1}}
    finally:
        host.stop()
