"""DTFx history events as the Durable extension hands them to out-of-process workers.

Guarantees: every event carries the four keys the SDK requires (``EventType``, ``EventId``,
``IsPlayed``, ``Timestamp``), PascalCase field names and integer event types, and UTC timestamps
with a literal ``Z`` (the SDK compares them with tz-aware datetimes).
"""
from __future__ import annotations

import enum
import functools
import json
import math
import time
import uuid
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


class ActionType(enum.IntEnum):
    """The SDK's orchestrator action numbers (``azure.durable_functions.models.actions.ActionType``,
    schema V2/V3), as ``OutOfProcOrchestrationShim`` reads them."""

    CALL_ACTIVITY = 0
    CALL_ACTIVITY_WITH_RETRY = 1
    CALL_SUB_ORCHESTRATOR = 2
    CALL_SUB_ORCHESTRATOR_WITH_RETRY = 3
    CONTINUE_AS_NEW = 4
    CREATE_TIMER = 5
    WAIT_FOR_EXTERNAL_EVENT = 6
    CALL_ENTITY = 7
    CALL_HTTP = 8
    SIGNAL_ENTITY = 9
    WHEN_ANY = 11
    WHEN_ALL = 12


def dumps(value: Any) -> str:
    """Compact JSON, the form devhost stores every JSON column and event field in."""
    return _COMPACT.encode(value)


# Made once: json.dumps with any option builds a new encoder on every call.
_COMPACT = json.JSONEncoder(separators=(",", ":"))


def new_execution_id() -> str:
    """A fresh execution id (one per generation of an instance)."""
    return uuid.uuid4().hex


def now() -> float:
    """Wall-clock time in epoch seconds: the one clock devhost stamps events with."""
    return time.time()


@functools.lru_cache(maxsize=256)
def _utc_second(second: int) -> str:
    """``second`` (epoch) as ``YYYY-MM-DDTHH:MM:SS`` UTC; cached, since most stamps fall in a few
    recent seconds (every event and every status read renders some)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


def format_timestamp(epoch: float) -> str:
    """Render epoch seconds the way history timestamps travel: ISO 8601, microseconds, ``Z``."""
    second, fraction = divmod(round(epoch * 1_000_000), 1_000_000)
    return f"{_utc_second(second)}.{fraction:06d}Z"


def format_status_time(epoch: float) -> str:
    """Render epoch seconds as the status API does (.NET ``ToString("s") + "Z"``): whole
    seconds, the fraction dropped."""
    # The whole second as datetime.fromtimestamp rounds it (half-even microseconds).
    fraction, whole = math.modf(epoch)
    micros = round(fraction * 1_000_000)
    return f"{_utc_second(int(whole) + (micros >= 1_000_000) - (micros < 0))}Z"


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


def execution_started(name: str, instance_id: str, execution_id: str, stored_input: str | None,
                      at: float, parent: tuple[str, str, str, int] | None = None
                      ) -> dict[str, Any]:
    """The ``ExecutionStarted`` event that begins a generation; ``parent`` is
    (name, instance id, execution id, task id) of the orchestration that called it."""
    parent_info = None
    if parent is not None:
        parent_name, parent_id, parent_execution, task_id = parent
        parent_info = {"Name": parent_name, "TaskScheduleId": task_id,
                       "OrchestrationInstance": {"InstanceId": parent_id,
                                                 "ExecutionId": parent_execution}}
    return event(EventType.EXECUTION_STARTED, at, -1,
                 OrchestrationInstance={"InstanceId": instance_id, "ExecutionId": execution_id},
                 ParentInstance=parent_info, Name=name, Version="", Input=stored_input,
                 Tags=None, Correlation=None, ScheduledStartTime=None, Generation=0)
