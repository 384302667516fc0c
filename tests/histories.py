"""Build orchestration histories in the host's JSON shape, and replay them through the SDK.

Shapes follow DTFx ``HistoryEvent`` as the host serializes it (protocol §3.2): PascalCase,
``EventType`` as int, UTC timestamps with ``Z``; ExecutionStarted carries ``Version: ""``;
EventRaised has ``EventId: -1``; timers pair ``TimerCreated{EventId}`` with
``TimerFired{TimerId}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from tests.fakes import df_dumps

T0 = datetime(2025, 6, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)

EXECUTION_STARTED = 0
TASK_SCHEDULED = 4
TASK_COMPLETED = 5
TIMER_CREATED = 10
TIMER_FIRED = 11
ORCHESTRATOR_STARTED = 12
ORCHESTRATOR_COMPLETED = 13
EVENT_RAISED = 15


def timestamp(moment: datetime) -> str:
    """.NET round-trip format in UTC: seven fractional digits and a ``Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def fire_at(moment: datetime) -> str:
    """The SDK's ``fireAt`` format in CreateTimer actions."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class History:
    """A history under construction. Episodes open with ``start_episode`` (an
    OrchestratorStarted at the given time) and close with ``end_episode``."""

    orchestration_input: Any
    instance_id: str = "workflow-aaron"
    name: str = "workflow_orchestrator"
    started_at: datetime = T0
    events: list[dict[str, Any]] = field(default_factory=list)
    now: datetime = T0

    def __post_init__(self) -> None:
        self.start_episode(self.started_at)
        self._append(
            EXECUTION_STARTED,
            OrchestrationInstance={"InstanceId": self.instance_id, "ExecutionId": "e0"},
            ParentInstance=None,
            Name=self.name,
            Version="",
            # start_new posts df_dumps(input) as a JSON string; the host stores that string.
            Input=json.dumps(self.input_text),
            Tags=None,
            Correlation=None,
            ScheduledStartTime=None,
            Generation=0,
        )

    @property
    def input_text(self) -> str:
        return df_dumps(self.orchestration_input)

    def start_episode(self, at: datetime) -> History:
        self.now = at
        self._append(ORCHESTRATOR_STARTED)
        return self

    def end_episode(self) -> History:
        self._append(ORCHESTRATOR_COMPLETED)
        for event in self.events:
            event["IsPlayed"] = True
        return self

    def event_from_client(self, data: Any, name: str = "Workflow") -> History:
        """An event raised by ``DurableOrchestrationClient.raise_event`` (double-encoded)."""
        return self.event_raised(json.dumps(json.dumps(data)), name)

    def event_from_webhook(self, data: Any, name: str = "Workflow") -> History:
        """An event posted as raw JSON to the host's ``sendEventPostUri``."""
        return self.event_raised(json.dumps(data), name)

    def event_raised(self, input_text: str, name: str = "Workflow") -> History:
        self._append(EVENT_RAISED, Name=name, Input=input_text)
        return self

    def timer_created(self, event_id: int, at: datetime) -> History:
        self._append(TIMER_CREATED, event_id=event_id, FireAt=timestamp(at))
        return self

    def timer_fired(self, timer_id: int, at: datetime) -> History:
        self._append(TIMER_FIRED, TimerId=timer_id, FireAt=timestamp(at))
        return self

    def task_scheduled(self, event_id: int, name: str, input_text: str | None) -> History:
        """DTFx ``TaskScheduledEvent``: ``EventId`` is the task's sequence number."""
        self._append(TASK_SCHEDULED, event_id=event_id, Name=name, Version="", Input=input_text)
        return self

    def task_completed(self, scheduled_id: int, result_text: str | None) -> History:
        """DTFx ``TaskCompletedEvent``: ``TaskScheduledId`` names the scheduled task."""
        self._append(TASK_COMPLETED, TaskScheduledId=scheduled_id, Result=result_text)
        return self

    def context(self, long_timers: bool = True) -> dict[str, Any]:
        """The orchestration trigger's JSON body, with the host's V3 schema settings."""
        body: dict[str, Any] = {
            "history": [dict(event) for event in self.events],
            "input": self.input_text,
            "instanceId": self.instance_id,
            "isReplaying": any(event["IsPlayed"] for event in self.events),
            "parentInstanceId": None,
            "upperSchemaVersion": 1,
            "upperSchemaVersionNew": 2,
            "defaultHttpAsyncRequestSleepTimeMillseconds": 30000,
        }
        if long_timers:
            body["longRunningTimerIntervalDuration"] = "3.00:00:00"
            body["maximumShortTimerDuration"] = "6.00:00:00"
        return body

    def _append(self, event_type: int, event_id: int = -1, **fields: Any) -> None:
        self.events.append(
            {
                "EventType": event_type,
                "EventId": event_id,
                "IsPlayed": False,
                "Timestamp": timestamp(self.now),
                **fields,
            }
        )


def after(moment: datetime, **delta: float) -> datetime:
    return moment + timedelta(**delta)
