"""Runs an app's timer and queue triggers next to its HTTP functions (one devhost worker only).

Guarantees: a trigger that cannot run (a schedule that does not parse, an unset connection
setting, no Azurite) is reported as a warning naming the function and the setting, and the rest
of devhost runs; :meth:`Triggers.stop` stops every timer and queue listener, letting the
functions they are running finish within the grace period (a queue message whose function is
cut stays in the queue), and stops the Azurite this devhost started (and only that one).
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

import azure.functions as func

from devhost.app import ncrontab
from devhost.app.bindings import TimerFunction
from devhost.app.loader import LoadedApp
from devhost.triggers import azurite
from devhost.triggers.queues import (
    DEV_QUEUE_PORT, ConnectionProblem, QueueListener, connection_string,
    development_connection_string,
)
from devhost.triggers.timers import ScheduleMonitor, TimerRunner, call, resolve_setting_references

log = logging.getLogger("devhost.triggers")


class Triggers:
    """The timer runners and queue listeners of one app."""

    def __init__(self, app: LoadedApp, db_path: str, client_binding: Callable[[], str],
                 start_azurite: bool = False) -> None:
        self.app, self.db_path, self._binding = app, db_path, client_binding
        self.start_azurite = start_azurite
        self.warnings: list[str] = []
        self.lines: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stoppers: list[Callable[[], None]] = []
        self._monitor: ScheduleMonitor | None = None
        self._azurite: azurite.Azurite | None = None

    async def start(self) -> None:
        """Start every trigger that can run; record a warning for each that cannot."""
        for fn in self.app.timers:
            self._start_timer(fn)
        if self.app.queues and self.start_azurite:
            await asyncio.get_running_loop().run_in_executor(None, self._ensure_azurite)
        for qfn in self.app.queues:
            listener = QueueListener(qfn, self.app.queue_options, self._binding)
            problem = listener.describe_problem()
            if problem:
                self.warnings.append(problem)
                continue
            self.lines.append(f"{qfn.name}: queueTrigger on {qfn.queue_name} "
                              f"(connection {qfn.connection})")
            self._stoppers.append(listener.stop)
            self._watch(asyncio.create_task(listener.run(), name=f"queue:{qfn.name}"))

    def _start_timer(self, fn: TimerFunction) -> None:
        try:
            text = resolve_setting_references(fn.schedule)
            schedule = ncrontab.parse(text)
        except ValueError as exc:
            self.warnings.append(f"timer trigger {fn.name}: {exc}; the function will not run")
            return
        if fn.use_monitor and self._monitor is None:
            self._monitor = ScheduleMonitor(self.db_path)

        async def invoke(timer_fn: TimerFunction, request: func.TimerRequest) -> None:
            await call(timer_fn, request, self._binding() if timer_fn.client_param else None)

        runner = TimerRunner(fn, schedule, self._monitor if fn.use_monitor else None, invoke)
        self.lines.append(f"{fn.name}: timerTrigger {text!r} (UTC"
                          f"{', run on startup' if fn.run_on_startup else ''})")
        self._stoppers.append(runner.stop)
        self._watch(asyncio.create_task(runner.run(), name=f"timer:{fn.name}"))

    def _watch(self, task: asyncio.Task[None]) -> None:
        """Keep the task, and say so loudly if it dies (a trigger that stopped is a bug)."""
        self._tasks.append(task)

        def report(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("trigger %s stopped", done.get_name(), exc_info=done.exception())

        task.add_done_callback(report)

    def _ensure_azurite(self) -> None:
        """Start the project's Azurite when a queue trigger uses the development storage on
        its default port and nothing listens there."""
        wants = False
        for qfn in self.app.queues:
            setting = qfn.connection or "AzureWebJobsStorage"
            if not any(os.environ.get(n) for n in (setting, f"AzureWebJobs{setting}")) and \
                    not any(k.startswith(f"{setting}__") for k in os.environ):
                # A fresh clone has no local.settings.json: use what its example sets, so that
                # `make run` runs the queue trigger without a setup step.
                os.environ[setting] = "UseDevelopmentStorage=true"
                self.lines.append(f"{setting} is unset: using UseDevelopmentStorage=true "
                                  "(Azurite), as local.settings.json.example does")
            try:
                conn = connection_string(qfn.connection)
            except ConnectionProblem:
                continue
            wants = wants or conn == development_connection_string()
        if not wants or azurite.listening(DEV_QUEUE_PORT):
            return
        if azurite.binary() is None:
            reason = azurite.missing_reason() or "run `make azurite` to install it"
            self.warnings.append(f"Azurite {azurite.VERSION} is not installed ({reason}); "
                                 "queue triggers wait for storage on 127.0.0.1:10001")
            return
        data = Path(self.app.directory) / ".devhost" / "azurite-data"
        try:
            self._azurite = azurite.Azurite(DEV_QUEUE_PORT, data).start()
            self.lines.append(f"Azurite {azurite.VERSION} started on 127.0.0.1:{DEV_QUEUE_PORT} "
                              f"(data in {data}); it stops with devhost")
        except RuntimeError as exc:
            self.warnings.append(f"Azurite could not start: {exc}")

    async def stop(self, grace: float = 0.0) -> None:
        """Start no new invocation, give the running ones up to ``grace`` seconds, then cut
        the rest (idempotent)."""
        for stop in self._stoppers:
            stop()
        self._stoppers.clear()
        running = [task for task in self._tasks if not task.done()]
        if grace > 0 and running:
            await asyncio.wait(running, timeout=grace)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._monitor is not None:
            self._monitor.close()
            self._monitor = None
        if self._azurite is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._azurite.stop)
            self._azurite = None

