"""Crash safety: ``kill -9`` a devhost and restart it on the same SQLite file; nothing that was
acknowledged is lost, pending timers are re-armed and interrupted activities run again."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable

import aiohttp
import pytest

from devhost.core.history import EventType
from tests.devhost.support import CAPABILITIES, Api, fresh_id, stored_history, wait_for_line
from devhost.host.process import DevhostProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(params=[1, 2], ids=["one-worker", "two-workers"])
def workers(request: pytest.FixtureRequest) -> int:
    """One devhost process, and two workers killed together (the whole process group)."""
    return request.param



async def test_acknowledged_start_and_event_survive_kill_9(
        devhost_factory: Callable[..., DevhostProcess], workers: int) -> None:
    host = devhost_factory(CAPABILITIES, workers=workers)
    waiting, pending = fresh_id("wait"), fresh_id("pending")
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        await api.start("steps", {"event": True}, instance_id=waiting)
        await api.wait_for(waiting, {"Running"})
        # Both answered 202 just before the crash: they must not be lost.
        assert (await api.raise_raw(waiting, "Go", "after crash"))[0] == 202
        await api.start("steps", {"event": True}, instance_id=pending)
        host.kill()

        host.start()
        api = Api(session, host.url)
        assert (await api.wait_for(waiting))["output"] == ["after crash"]
        await api.wait_for(pending, {"Running"})
        assert (await api.raise_raw(pending, "Go", "later"))[0] == 202
        assert (await api.wait_for(pending))["output"] == ["later"]


async def test_activity_interrupted_by_kill_9_runs_again_after_restart(
        devhost_factory: Callable[..., DevhostProcess], tmp_path: Path, workers: int) -> None:
    host = devhost_factory(CAPABILITIES, workers=workers)
    key = fresh_id("slow")
    witness = tmp_path / f"{key}.started"
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        started = await api.start(
            "steps", {"slow": {"dir": str(tmp_path), "key": key, "seconds": 1.0}})
        await wait_for_line(witness)  # the activity is mid-flight (sleeping)
        host.kill()

        host.start()
        api = Api(session, host.url)
        status = await api.wait_for(started["id"], timeout=15)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["slept"]
    runs = witness.read_text().split()
    # At least once: the interrupted run plus the re-dispatched one, in two processes.
    assert len(runs) >= 2
    assert len(set(runs)) >= 2
    assert str(os.getpid()) not in runs


async def test_pending_durable_timer_fires_after_restart(
        devhost_factory: Callable[..., DevhostProcess], workers: int) -> None:
    host = devhost_factory(CAPABILITIES, workers=workers)
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        began = time.monotonic()
        started = await api.start("steps", {"timer": 1.5})
        await api.wait_for(started["id"], {"Running"})  # TimerCreated is committed
        host.kill()

        host.start()
        api = Api(session, host.url)
        status = await api.wait_for(started["id"], timeout=15)
        assert status["output"] == ["timer"]
        assert time.monotonic() - began >= 1.5
        history = stored_history(host.db, started["id"])
        assert [ev["TimerId"] for ev in history if ev["EventType"] == EventType.TIMER_FIRED] \
            == [0]
