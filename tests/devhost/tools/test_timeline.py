"""The timeline pairs every scheduled task with its outcome and highlights failures
(devhost.tools.timeline, pure: histories in, entries out)."""
from __future__ import annotations

from devhost.core import history as h
from devhost.core.history import EventType as E
from devhost.tools.timeline import build

T0 = 1_800_000_000.0


def ev(kind: E, at: float, event_id: int = -1, **fields: object) -> dict:
    return h.event(kind, T0 + at, event_id, **fields)


def episode(at: float, *events: dict) -> list[dict]:
    return [ev(E.ORCHESTRATOR_STARTED, at), *events, ev(E.ORCHESTRATOR_COMPLETED, at)]


def test_activity_is_paired_with_its_result_and_timed_from_scheduling() -> None:
    history = (episode(0, ev(E.EXECUTION_STARTED, 0, Name="chain", Input='"x"'),
                       ev(E.TASK_SCHEDULED, 0, 0, Name="hello", Input='"x"'))
               + episode(1.25, ev(E.TASK_COMPLETED, 1.25, TaskScheduledId=0,
                                  Result='"Hello x"'),
                         ev(E.EXECUTION_COMPLETED, 1.25, Result='["Hello x"]')))
    entries = build(history)
    assert [e["kind"] for e in entries] == ["started", "activity", "completed"]
    activity = entries[1]
    assert (activity["name"], activity["taskId"], activity["state"]) == ("hello", 0, "done")
    assert activity["durationMs"] == 1250.0
    assert (activity["input"], activity["result"]) == ('"x"', '"Hello x"')
    assert not any(e["failed"] for e in entries)


def test_failed_activity_sub_orchestration_and_execution_are_marked_failed() -> None:
    history = (episode(0, ev(E.EXECUTION_STARTED, 0, Name="parent"),
                       ev(E.TASK_SCHEDULED, 0, 0, Name="explode"),
                       ev(E.SUB_ORCHESTRATION_CREATED, 0, 1, Name="child_fails",
                          InstanceId="kid", Input="null"))
               + episode(2, ev(E.TASK_FAILED, 2, TaskScheduledId=0, Reason="boom",
                               Details="Traceback: user frames"),
                         ev(E.SUB_ORCHESTRATION_FAILED, 2, TaskScheduledId=1, Reason="child broke"),
                         ev(E.EXECUTION_FAILED, 2, Result='"parent failed"')))
    entries = {e["kind"]: e for e in build(history)}
    assert entries["activity"]["failed"] and entries["activity"]["failure"] == "boom"
    assert entries["activity"]["details"] == "Traceback: user frames"
    sub = entries["subOrchestration"]
    assert (sub["failed"], sub["failure"], sub["instanceId"], sub["durationMs"]) == \
        (True, "child broke", "kid", 2000.0)
    assert entries["failed"]["failed"] and entries["failed"]["failure"] == '"parent failed"'
    assert not entries["started"]["failed"]


def test_timer_fires_and_a_timer_that_lost_a_race_shows_as_canceled() -> None:
    history = (episode(0, ev(E.EXECUTION_STARTED, 0, Name="race"),
                       ev(E.TIMER_CREATED, 0, 0, FireAt="2027-01-01T00:00:00Z"),
                       ev(E.TIMER_CREATED, 0, 1, FireAt="2027-01-02T00:00:00Z"))
               + episode(5, ev(E.TIMER_FIRED, 5, TimerId=0, FireAt="2027-01-01T00:00:00Z"),
                         ev(E.EVENT_RAISED, 5, Name="Approve", Input='{"ok":true}'),
                         ev(E.EXECUTION_COMPLETED, 5, Result="null")))
    timers = [e for e in build(history) if e["kind"] == "timer"]
    assert [(t["taskId"], t["state"]) for t in timers] == [(0, "fired"), (1, "canceled")]
    assert timers[0]["durationMs"] == 5000.0 and timers[1]["durationMs"] is None
    raised = [e for e in build(history) if e["kind"] == "eventRaised"]
    assert raised[0]["name"] == "Approve" and raised[0]["input"] == '{"ok":true}'


def test_a_task_still_running_is_pending_and_control_events_are_listed() -> None:
    history = (episode(0, ev(E.EXECUTION_STARTED, 0, Name="steps"),
                       ev(E.TASK_SCHEDULED, 0, 0, Name="slow"))
               + episode(1, ev(E.EXECUTION_SUSPENDED, 1, Reason="look"))
               + episode(2, ev(E.EXECUTION_RESUMED, 2, Reason=None)))
    entries = build(history)
    assert [e["kind"] for e in entries] == ["started", "activity", "suspended", "resumed"]
    assert entries[1]["state"] == "pending" and entries[1]["end"] is None
    assert entries[2]["input"] == "look"


def test_bookkeeping_and_unknown_events_are_left_out() -> None:
    history = [ev(E.ORCHESTRATOR_STARTED, 0), {"EventType": 99, "Timestamp": "x"},
               ev(E.GENERIC, 0), ev(E.ORCHESTRATOR_COMPLETED, 0)]
    assert build(history) == []
