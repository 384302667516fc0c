"""Timer triggers, run the way the Functions host runs them.

Guarantees:
- The schedule is read once at startup (``%NAME%`` is replaced by that app setting, as on the
  host) and parsed by :mod:`devhost.app.ncrontab`; a schedule that does not parse skips the function
  with a warning naming it, and everything else runs.
- ``run_on_startup`` invokes the function once when devhost starts.
- ``use_monitor`` (the host's default) keeps each function's schedule status (``Last``,
  ``Next``, ``LastUpdated``) in devhost's SQLite file, in its own table. When devhost starts and
  the recorded ``Next`` has passed (devhost was down when the timer was due), the function is
  invoked at once with ``past_due`` set, exactly once however many occurrences were missed, as
  the host does.
- The worker receives ``func.TimerRequest(past_due, schedule_status, schedule)`` with the
  host's shapes: ``schedule_status`` is ``{}`` without the monitor.
- Every invocation logs the host's ``Executing``/``Executed`` lines (:mod:`devhost.app.hostlog`);
  a failing one is logged once, with the user's frames, and the schedule goes on; nothing is
  retried (as on the host).
- :meth:`TimerRunner.stop` (devhost's shutdown) ends the wait for the next occurrence at once;
  an invocation already running finishes and is recorded first (cancel :meth:`TimerRunner.run`
  to cut it: then it is not recorded, and a monitored timer runs as past due at the next start).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest

from devhost.app import hostlog, ncrontab
from devhost.app.bindings import TimerFunction
from devhost.core.store import TIMER_SCHEMA

log = logging.getLogger("devhost.timers")

_SETTING = re.compile(r"%([^%]+)%")

# In devhost's database, which must recognise it (devhost.core.store.check_database).
_SCHEMA = TIMER_SCHEMA


@dataclass(frozen=True)
class ScheduleStatus:
    """The host's ``ScheduleStatus``: the last occurrence run, the next one due, and when this
    record was written."""

    last: datetime | None
    next: datetime | None
    last_updated: datetime

    def to_json(self) -> dict[str, str | None]:
        return {"Last": _iso(self.last), "Next": _iso(self.next),
                "LastUpdated": _iso(self.last_updated)}


def resolve_setting_references(text: str, environ: dict[str, str] | None = None) -> str:
    """Replace each ``%NAME%`` by the app setting ``NAME``, as the host resolves binding
    expressions. Raises: ValueError naming an unset setting."""
    env = os.environ if environ is None else environ

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ValueError(f"app setting {name} (referenced as %{name}%) is not set")
        return env[name]

    return _SETTING.sub(value, text)


class ScheduleMonitor:
    """Schedule status per timer function, in its own table of devhost's SQLite file.

    Guarantees: every write is one committed transaction, so a status read after a crash is one
    that was fully written.
    """

    def __init__(self, db_path: str) -> None:
        self._db = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.execute(_SCHEMA)

    def get(self, function_name: str) -> ScheduleStatus | None:
        row = self._db.execute(
            "SELECT last, next, last_updated FROM timer_schedule_status WHERE function_name = ?",
            (function_name,)).fetchone()
        if row is None:
            return None
        return ScheduleStatus(_parse(row[0]), _parse(row[1]), _parse(row[2]) or _utcnow())

    def put(self, function_name: str, status: ScheduleStatus) -> None:
        self._db.execute(
            "INSERT INTO timer_schedule_status (function_name, last, next, last_updated) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (function_name) DO UPDATE SET "
            "last = excluded.last, next = excluded.next, last_updated = excluded.last_updated",
            (function_name, _iso(status.last), _iso(status.next), _iso(status.last_updated)))

    def close(self) -> None:
        self._db.close()


def past_due_at_startup(schedule: ncrontab.Schedule, status: ScheduleStatus | None,
                        now: datetime) -> bool:
    """Whether a monitored timer missed an occurrence while devhost was down: its recorded
    ``Next`` has passed. A changed schedule is judged by the occurrence it would have had after
    the recorded ``Last`` (the host recomputes it the same way)."""
    if status is None:
        return False
    due = status.next
    if status.last is not None:
        due = schedule.next_after(status.last)
    return due is not None and due <= now


class TimerRunner:
    """Runs one timer function until cancelled.

    ``invoke`` calls the function with its keyword arguments and raises what it raises;
    ``clock`` is injectable for tests. ``wait_until(due)`` replaces the wait for the next
    occurrence (:mod:`devhost.testing` passes one that returns when its virtual clock reaches
    ``due``); by default the runner sleeps on the real clock, and :meth:`stop` ends the wait.
    """

    def __init__(self, fn: TimerFunction, schedule: ncrontab.Schedule,
                 monitor: ScheduleMonitor | None,
                 invoke: Callable[[TimerFunction, func.TimerRequest], Awaitable[None]],
                 clock: Callable[[], datetime] | None = None,
                 wait_until: Callable[[datetime], Awaitable[None]] | None = None) -> None:
        self.fn, self.schedule, self.monitor, self._invoke = fn, schedule, monitor, invoke
        self._clock = clock or _utcnow
        self._wait_until = wait_until
        self._last: datetime | None = None
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Wait for no further occurrence: :meth:`run` returns once a running invocation
        finished."""
        self._stopping.set()

    async def run(self) -> None:
        now = self._clock()
        status = self.monitor.get(self.fn.name) if self.monitor else None
        self._last = status.last if status else None
        if self.monitor and past_due_at_startup(self.schedule, status, now):
            log.info("timer %s is past due (it was due at %s)", self.fn.name,
                     _iso(status.next if status else None))
            await self._fire(now, past_due=True, status=status)
        elif self.fn.run_on_startup:
            await self._fire(now, past_due=False, status=status)
        elif self.monitor and status is None:
            self._record(None, self.schedule.next_after(now), now)
        while not self._stopping.is_set():
            due = self._next_due(self._clock())
            if due is None:
                log.warning("timer %s: schedule %r never fires again", self.fn.name,
                            self.fn.schedule)
                return
            if self._wait_until is not None:  # devhost.testing's virtual clock
                await self._wait_until(due)
                if not self._stopping.is_set():
                    await self._fire(due, past_due=False, status=self.monitor.get(self.fn.name)
                                     if self.monitor else None)
                continue
            try:
                await asyncio.wait_for(self._stopping.wait(),
                                       max(0.0, (due - self._clock()).total_seconds()))
                return
            except TimeoutError:
                pass
            await self._fire(due, past_due=False,
                             status=self.monitor.get(self.fn.name) if self.monitor else None)

    def _next_due(self, now: datetime) -> datetime | None:
        """Cron schedules: the next matching time after now and after the last occurrence run
        (a sleep may end a moment early; that occurrence must not fire twice). TimeSpan
        schedules: one interval after the last run (the host's constant schedule), never
        earlier than now."""
        if isinstance(self.schedule, ncrontab.IntervalSchedule) and self._last is not None:
            return max(now, self._last + self.schedule.interval)
        return self.schedule.next_after(now if self._last is None else max(now, self._last))

    async def _fire(self, occurrence: datetime, past_due: bool,
                    status: ScheduleStatus | None) -> None:
        request = TimerRequest(
            past_due=past_due,
            schedule_status=status.to_json() if (self.monitor and status) else None,
            schedule={"AdjustForDST": True})
        invocation = hostlog.Invocation(self.fn.name,
                                        f"Timer fired at {_reason_time(occurrence)}")
        try:
            await self._invoke(self.fn, request)
        except Exception as exc:
            invocation.failed(exc)
        else:
            invocation.succeeded()
        self._last = max(occurrence, self._clock()) if past_due else occurrence
        self._record(occurrence, self.schedule.next_after(max(occurrence, self._clock())),
                     self._clock())

    def _record(self, last: datetime | None, nxt: datetime | None, now: datetime) -> None:
        if self.monitor:
            self.monitor.put(self.fn.name, ScheduleStatus(last, nxt, now))


async def call(fn: TimerFunction, request: func.TimerRequest, client_binding: str | None) -> None:
    """Invoke ``fn`` like the worker does (keyword arguments; sync functions on a thread)."""
    kwargs: dict[str, Any] = {fn.trigger_param: request}
    if fn.client_param:
        kwargs[fn.client_param] = client_binding
    if fn.is_async:
        await fn.user_function(**kwargs)
    else:
        await asyncio.get_running_loop().run_in_executor(
            None, hostlog.in_context(functools.partial(fn.user_function, **kwargs)))


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _reason_time(moment: datetime) -> str:
    """The occurrence as the host's reason shows it (``2024-01-02T03:04:05.0000000+00:00``)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f0+00:00")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(timezone.utc).isoformat()


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)
