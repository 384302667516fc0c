"""DTFx history events as the Durable extension hands them to out-of-process workers.

Guarantees: every event carries the four keys the SDK requires (``EventType``, ``EventId``,
``IsPlayed``, ``Timestamp``), PascalCase field names and integer event types, and UTC timestamps
with a literal ``Z`` (the SDK compares them with tz-aware datetimes).
"""
from __future__ import annotations

import enum
import time
from datetime import datetime, timezone
from typing import Any


class EventType(enum.IntEnum):
    """DTFx ``EventType`` numbers (``azure.durable_functions.models.history.HistoryEventType``)."""

    EXECUTION_STARTED = 0
    EXECUTION_COMPLETED = 1
    EXECUTION_FAILED = 2
    EXECUTION_TERMINATED = 3
    TASK_SCHEDULED = 4
    TASK_COMPLETED = 5
    TASK_FAILED = 6
    SUB_ORCHESTRATION_CREATED = 7
    SUB_ORCHESTRATION_COMPLETED = 8
    SUB_ORCHESTRATION_FAILED = 9
    TIMER_CREATED = 10
    TIMER_FIRED = 11
    ORCHESTRATOR_STARTED = 12
    ORCHESTRATOR_COMPLETED = 13
    EVENT_SENT = 14
    EVENT_RAISED = 15
    CONTINUE_AS_NEW = 16
    GENERIC = 17
    HISTORY_STATE = 18
    EXECUTION_SUSPENDED = 19
    EXECUTION_RESUMED = 20


def now() -> float:
    """Wall-clock time in epoch seconds: the one clock devhost stamps events with."""
    return time.time()


_second: list[Any] = [None, ""]  # the last whole second rendered, and its text


def format_timestamp(epoch: float) -> str:
    """Render epoch seconds the way history timestamps travel: ISO 8601, microseconds, ``Z``."""
    micros = round(epoch * 1_000_000)
    second, fraction = divmod(micros, 1_000_000)
    if _second[0] != second:  # most stamps fall in the second rendered last
        _second[:] = [second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))]
    return f"{_second[1]}.{fraction:06d}Z"


def format_status_time(epoch: float) -> str:
    """Render epoch seconds as the status API does (.NET ``ToString("s") + "Z"``)."""
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> float:
    """Parse an ISO 8601 timestamp (``Z`` or offset; naive means UTC) to epoch seconds.

    Raises: ValueError for text that is not ISO 8601.
    """
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


def event(kind: EventType, at: float, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    """Build one history event; ``fields`` are its type-specific PascalCase keys."""
    return {
        "EventType": int(kind),
        "EventId": event_id,
        "IsPlayed": False,
        "Timestamp": format_timestamp(at),
        **fields,
    }


def completion_key(ev: dict[str, Any]) -> tuple[str, Any] | None:
    """Which scheduled task a completion event resolves: ``("task", id)``, ``("event", name)``.

    Returns None for events that complete nothing (bookkeeping events).
    """
    kind = ev["EventType"]
    if kind in (EventType.TASK_COMPLETED, EventType.TASK_FAILED,
                EventType.SUB_ORCHESTRATION_COMPLETED, EventType.SUB_ORCHESTRATION_FAILED):
        return ("task", ev["TaskScheduledId"])
    if kind == EventType.TIMER_FIRED:
        return ("task", ev["TimerId"])
    if kind == EventType.EVENT_RAISED:
        return ("event", ev["Name"])
    return None
