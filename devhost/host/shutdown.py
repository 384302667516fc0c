"""A clean stop on SIGTERM or Ctrl+C, as the Functions host does one.

On the first signal devhost stops accepting connections, lets running HTTP requests and
activities finish for up to a grace period (``--grace``, default 30 s: the default
``HostOptions.ShutdownTimeout`` of .NET 8's generic host, on which the Functions host runs),
commits what they return, and exits 0. Queue and timer triggers start nothing new and their
running functions get the same grace period. Episodes keep running meanwhile; each one is
committed whole or not at all (one still being computed at the end is computed again at the
next start); an activity whose result arrives in time is committed and never runs again.

Past the grace period (or on a second signal) devhost exits anyway, 0 as well, and lists on
stderr the activity calls that had not finished: their work rows are still in the database, so
they run again at the next start (activities are at least once). Nothing acknowledged is lost
either way, since every transition was committed before it was acknowledged.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from devhost.core.engine import Engine
from devhost.core.store import WorkItem

DEFAULT_GRACE = 30.0


def stopping_message(grace: float) -> str:
    return (f"devhost: stopping; running requests and activities have {grace:g} s to finish "
            f"(press Ctrl+C again to stop now)")


def report_unfinished(unfinished: list[WorkItem], grace: float | None) -> None:
    """Say on stderr which activity calls will run again at the next start."""
    why = "a second signal came" if grace is None else f"the grace period ({grace:g} s) ended"
    lines = [f"devhost: {why} before {len(unfinished)} activity call(s) finished; they will "
             f"run again at the next start (activities run at least once):"]
    lines += [f"  - activity '{item.name}' of instance '{item.instance_id}' (task "
              f"{item.task_id})" for item in unfinished]
    print("\n".join(lines), file=sys.stderr, flush=True)


def exit_now(code: int) -> NoReturn:
    """Exit without waiting for threads (a sync function cut by the grace period keeps its
    thread busy); the logs and output are flushed first."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def stop_now(engine: Engine | None) -> NoReturn:
    """The second signal: report what is running and exit at once. Safe at any event-loop
    turn: every commit runs whole between two turns, and activities' threads never write.

    ``engine`` is the host's engine at the moment of the signal (``None`` once it is closed)."""
    running = engine.running_activities() if engine is not None else []
    if running:
        report_unfinished(running, None)
    exit_now(0)
