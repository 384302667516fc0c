"""Timer triggers: run_on_startup, the schedule monitor and past-due detection across restarts,
and the TimerRequest the function receives. Time is a settable clock; nothing waits for a real
occurrence."""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import azure.functions as func
import pytest

from devhost.app import ncrontab
from devhost.app.bindings import TimerFunction
from devhost.host.process import REPO, DevhostProcess
from devhost.triggers.timers import (
    ScheduleMonitor, ScheduleStatus, TimerRunner, past_due_at_startup,
    resolve_setting_references,
)

T0 = datetime(2026, 11, 29, 2, 30, tzinfo=timezone.utc)
DAILY = "0 30 2 * * *"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def timer(schedule: str = DAILY, run_on_startup: bool = False,
          use_monitor: bool = True) -> TimerFunction:
    return TimerFunction(name="purge", trigger_param="timer", client_param=None,
                         schedule=schedule, run_on_startup=run_on_startup,
                         use_monitor=use_monitor, user_function=lambda timer: None,
                         is_async=False)


async def first_invocation(fn: TimerFunction, monitor: ScheduleMonitor | None,
                           clock: Clock) -> func.TimerRequest:
    """Run the timer until its first invocation and return the request it got."""
    got: asyncio.Future[func.TimerRequest] = asyncio.get_running_loop().create_future()

    async def invoke(_: TimerFunction, request: func.TimerRequest) -> None:
        if not got.done():
            got.set_result(request)

    task = asyncio.create_task(
        TimerRunner(fn, ncrontab.parse(fn.schedule), monitor, invoke, clock).run())
    try:
        return await asyncio.wait_for(got, 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
def monitor(tmp_path: Path) -> Any:
    m = ScheduleMonitor(str(tmp_path / "devhost.sqlite3"))
    yield m
    m.close()


async def test_a_timer_missed_while_devhost_was_down_runs_once_at_startup_as_past_due(
        monitor: ScheduleMonitor) -> None:
    monitor.put("purge", ScheduleStatus(T0, T0 + timedelta(days=1), T0))
    clock = Clock(T0 + timedelta(days=3, hours=5))  # three occurrences missed

    request = await first_invocation(timer(), monitor, clock)

    assert request.past_due is True
    assert request.schedule_status == {"Last": T0.isoformat(),
                                       "Next": (T0 + timedelta(days=1)).isoformat(),
                                       "LastUpdated": T0.isoformat()}
    assert request.schedule == {"AdjustForDST": True}
    after = monitor.get("purge")
    assert after is not None and after.next == T0 + timedelta(days=4)  # one run, then on time


async def test_the_schedule_status_survives_a_new_monitor_on_the_same_file(tmp_path: Path) -> None:
    first = ScheduleMonitor(str(tmp_path / "db.sqlite3"))
    first.put("purge", ScheduleStatus(T0, T0 + timedelta(days=1), T0))
    first.close()
    second = ScheduleMonitor(str(tmp_path / "db.sqlite3"))
    try:
        assert second.get("purge") == ScheduleStatus(T0, T0 + timedelta(days=1), T0)
    finally:
        second.close()


def test_a_timer_is_not_past_due_before_its_next_occurrence() -> None:
    schedule = ncrontab.parse(DAILY)
    status = ScheduleStatus(T0, T0 + timedelta(days=1), T0)
    assert not past_due_at_startup(schedule, status, T0 + timedelta(hours=23))
    assert past_due_at_startup(schedule, status, T0 + timedelta(days=1))
    assert not past_due_at_startup(schedule, None, T0 + timedelta(days=30))  # never ran


def test_a_changed_schedule_is_judged_by_its_own_next_occurrence_after_the_last_run() -> None:
    recorded = ScheduleStatus(T0, T0 + timedelta(days=1), T0)  # written by the daily schedule
    hourly = ncrontab.parse("0 30 * * * *")
    assert past_due_at_startup(hourly, recorded, T0 + timedelta(hours=2))


async def test_run_on_startup_invokes_at_once_and_not_as_past_due(monitor: ScheduleMonitor) -> None:
    request = await first_invocation(timer(run_on_startup=True), monitor, Clock(T0))
    assert request.past_due is False
    status = monitor.get("purge")
    assert status is not None and status.next == T0 + timedelta(days=1)


async def test_without_the_monitor_the_request_has_no_schedule_status() -> None:
    request = await first_invocation(timer(run_on_startup=True, use_monitor=False), None,
                                     Clock(T0))
    assert request.schedule_status == {}


async def test_a_first_start_records_the_next_occurrence_without_invoking(
        monitor: ScheduleMonitor) -> None:
    calls: list[func.TimerRequest] = []

    async def invoke(_: TimerFunction, request: func.TimerRequest) -> None:
        calls.append(request)

    task = asyncio.create_task(TimerRunner(timer(), ncrontab.parse(DAILY), monitor, invoke,
                                           Clock(T0 + timedelta(hours=1))).run())
    for _ in range(1000):  # until the runner has written its first status
        if monitor.get("purge") is not None:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    status = monitor.get("purge")
    assert status is not None and status.last is None
    assert status.next == T0 + timedelta(days=1)
    assert calls == []


def test_schedule_setting_references_resolve_from_app_settings() -> None:
    assert resolve_setting_references("%SCHEDULE%", {"SCHEDULE": DAILY}) == DAILY
    with pytest.raises(ValueError, match="SCHEDULE"):
        resolve_setting_references("%SCHEDULE%", {})


@pytest.mark.e2e
def test_devhost_runs_a_timer_that_fell_due_while_it_was_down_once_at_startup(
        devhost_factory: Callable[..., DevhostProcess], tmp_path: Path) -> None:
    """The product app's retention timer, yearly here, last ran on 1 January 2025: its next
    occurrence (1 January 2026) passed while devhost was down, so devhost runs it at startup
    and records the next one."""
    db = tmp_path / "devhost0.sqlite3"  # the factory's first database
    year = datetime(2025, 1, 1, tzinfo=timezone.utc)
    before = ScheduleMonitor(str(db))
    before.put("purge_finished_runs",
               ScheduleStatus(year, year.replace(year=2026), year))
    before.close()

    devhost_factory(REPO, env={"WORKFLOW_RETENTION_SCHEDULE": "0 0 0 1 1 *",
                               "AzureWebJobsStorage": ""})

    monitor = ScheduleMonitor(str(db))
    try:
        deadline = time.monotonic() + 30
        status = monitor.get("purge_finished_runs")
        while status is not None and status.last == year and time.monotonic() < deadline:
            time.sleep(0.1)
            status = monitor.get("purge_finished_runs")
    finally:
        monitor.close()
    assert status is not None and status.last is not None and status.last > year
    now = datetime.now(timezone.utc)
    assert status.next == datetime(now.year + 1, 1, 1, tzinfo=timezone.utc)


async def test_a_sleep_that_ends_early_does_not_fire_an_occurrence_twice(
        monitor: ScheduleMonitor) -> None:
    """The clock stands still just before 02:30:00 while the runner 'sleeps': it must fire
    02:30:00 once, then wait for the next day, not fire 02:30:00 again."""
    clock = Clock(T0 - timedelta(microseconds=500))
    fired: list[func.TimerRequest] = []

    async def invoke(_: TimerFunction, request: func.TimerRequest) -> None:
        fired.append(request)

    runner = TimerRunner(timer(), ncrontab.parse(DAILY), monitor, invoke, clock)
    task = asyncio.create_task(runner.run())
    for _ in range(500):
        if fired:
            break
        await asyncio.sleep(0.01)
    assert len(fired) == 1
    assert runner._next_due(clock()) == T0 + timedelta(days=1)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    status = monitor.get("purge")
    assert status is not None and status.last == T0 and status.next == T0 + timedelta(days=1)


async def test_stop_lets_a_running_invocation_finish_and_record_then_ends_the_runner(
        monitor: ScheduleMonitor, caplog: pytest.LogCaptureFixture) -> None:
    """devhost's shutdown: stop() during an invocation waits for it (it is recorded, so it
    does not run again as past due), and logs the host's Executing/Executed lines."""
    started, release = asyncio.Event(), asyncio.Event()

    async def invoke(_: TimerFunction, request: func.TimerRequest) -> None:
        started.set()
        await release.wait()

    runner = TimerRunner(timer(run_on_startup=True), ncrontab.parse(DAILY), monitor, invoke,
                         Clock(T0))
    caplog.set_level("INFO", logger="Function.purge")
    task = asyncio.create_task(runner.run())
    await asyncio.wait_for(started.wait(), 10)
    runner.stop()
    await asyncio.sleep(0.1)
    assert not task.done()  # the running invocation is not cut
    release.set()
    await asyncio.wait_for(task, 10)  # and the runner ends instead of waiting for 02:30 tomorrow
    status = monitor.get("purge")
    assert status is not None and status.last == T0
    lines = [r.getMessage() for r in caplog.records if r.name == "Function.purge"]
    assert lines[0].startswith("Executing 'Functions.purge' (Reason='Timer fired at "
                               "2026-11-29T02:30:00.0000000+00:00', Id=")
    assert lines[1].startswith("Executed 'Functions.purge' (Succeeded, Id=")


async def test_stop_ends_the_wait_for_the_next_occurrence_at_once(
        monitor: ScheduleMonitor) -> None:
    async def invoke(_: TimerFunction, request: func.TimerRequest) -> None:
        raise AssertionError("not due")

    runner = TimerRunner(timer(), ncrontab.parse(DAILY), monitor, invoke,
                         Clock(T0 + timedelta(hours=1)))
    task = asyncio.create_task(runner.run())
    for _ in range(1000):  # until the runner waits for its next occurrence
        if monitor.get("purge") is not None:
            break
        await asyncio.sleep(0.01)
    runner.stop()
    await asyncio.wait_for(task, 5)
