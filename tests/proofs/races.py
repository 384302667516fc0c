"""What a proof needs to force a race and then show it happened.

``Hold`` engages devhost's test-only episode hold (``devhost/core/hold.py``): while it is engaged the
host acknowledges and commits requests but runs no episode, so a proof can line messages up and
release them into one episode. ``inbox`` and ``episodes`` read devhost's SQLite file (read-only)
to assert what was queued before the release and which episode delivered what.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable

from devhost.core.history import EventType
from tests.devhost.support import stored_history


class Hold:
    """The hold file of one devhost (pass ``env`` to the process). Use as a context manager,
    or ``engage()`` / ``release()`` where the release must happen elsewhere (after a kill)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def env(self) -> dict[str, str]:
        from devhost.core import hold
        return {hold.ENV: str(self.path)}

    def engage(self) -> None:
        self.path.touch()

    def release(self) -> None:
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Hold:
        self.engage()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def instance_id(key: str) -> str:
    return f"workflow-{key}"


def inbox(db: Path, key: str) -> list[tuple[str, float, dict[str, Any]]]:
    """``(kind, visible_at, payload)`` of every message queued for ``key``'s run, in arrival
    order (kinds: ``start``, ``event``, ``timer``, ...)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT kind, visible_at, payload FROM inbox WHERE instance_id=? "
                            "ORDER BY msg_id", (instance_id(key),)).fetchall()
    return [(kind, at, json.loads(payload)) for kind, at, payload in rows]


def kinds(db: Path, key: str) -> list[str]:
    return [kind for kind, _, _ in inbox(db, key)]


def episodes(db: Path, key: str) -> list[list[EventType]]:
    """The run's history cut into episodes (each starts at an OrchestratorStarted), as event
    types, in the order the orchestrator saw them."""
    cut: list[list[EventType]] = []
    for event in stored_history(db, instance_id(key)):
        kind = EventType(event["EventType"])
        if kind == EventType.ORCHESTRATOR_STARTED:
            cut.append([])
        cut[-1].append(kind)
    return cut


def raised_payloads(db: Path, key: str) -> list[Any]:
    """The data of every EventRaised in the run's history, in history order. The Python client
    sends event data as the JSON text of its JSON, so a string is decoded once more."""
    values = [json.loads(event["Input"]) for event in stored_history(db, instance_id(key))
              if event["EventType"] == EventType.EVENT_RAISED]
    return [json.loads(v) if isinstance(v, str) else v for v in values]


async def until(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` (a read of state, never a guess at timing) until it holds; fail with
    ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for: {what}"
        await asyncio.sleep(0.01)
