"""Episode guarantees on real devhost processes, one and two workers, with the test-only hold
(``devhost.core.hold``) gathering messages into one episode instead of hoping for the timing."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import aiohttp
import pytest

from devhost.core.hold import ENV
from devhost.host.process import DevhostProcess
from tests.devhost.support import APPS, WEBHOOK, Api

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("workers", [1, 2], ids=["one-worker", "two-workers"])
async def test_event_raised_with_a_generation_that_continues_as_new_is_delivered(
        devhost_factory: Callable[..., DevhostProcess], tmp_path: Path, workers: int) -> None:
    held = tmp_path / "hold"
    held.touch()
    host = devhost_factory(APPS / "generations", env={ENV: str(held)}, workers=workers)
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        code, _, body = await api.request(
            "POST", f"{WEBHOOK}/orchestrators/generations/g", data=json.dumps("3").encode())
        assert code == 202, body
        code, _ = await api.raise_raw("g", "E", "kept")  # lands with the first generation
        assert code == 202
        held.unlink()  # both messages go into one episode, which continues as new
        status = await api.wait_for("g", timeout=20)
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == "kept"
