"""An instance's history as a timeline: one entry per thing that happened, paired up.

A DTFx history records a task twice (scheduled, then completed or failed) and interleaves
bookkeeping (OrchestratorStarted/Completed around every episode). :func:`build` pairs each
scheduled activity, timer and sub-orchestration with its outcome by task id, turns raised and
sent events and the execution's own start, end, suspension and resumption into entries, and
drops the bookkeeping.

Guarantees: :func:`build` is pure (history in, entries out); an entry's ``durationMs`` is the
time from scheduling to its outcome (None while pending); ``failed`` is true exactly for failed
activities and sub-orchestrations and a failed execution; payloads stay the JSON text the
history holds (the page renders them as text).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterable

from devhost.core import history as h
from devhost.core.history import EventType as E

_ENDS = {"completed", "failed", "terminated", "continuedAsNew"}
_BOOKKEEPING = {E.ORCHESTRATOR_STARTED, E.ORCHESTRATOR_COMPLETED, E.GENERIC, E.HISTORY_STATE}


@dataclass
class Entry:
    """One line of the timeline. ``kind``: activity, timer, subOrchestration, eventRaised,
    eventSent, started, completed, failed, terminated, suspended, resumed, continuedAsNew."""

    kind: str
    name: str | None
    start: str
    end: str | None = None
    durationMs: float | None = None
    state: str = "done"  # pending | done | failed | fired | canceled
    failed: bool = False
    taskId: int | None = None
    input: Any = None
    result: Any = None
    failure: str | None = None
    details: str | None = None
    instanceId: str | None = None


def _ms(start: str, end: str) -> float:
    return round((h.parse_timestamp(end) - h.parse_timestamp(start)) * 1000, 1)


def _close(entry: Entry, at: str, state: str) -> None:
    entry.end, entry.state = at, state
    entry.durationMs = _ms(entry.start, at)


def build(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timeline of ``events`` (a history, oldest first, as devhost stores it)."""
    entries: list[Entry] = []
    # Keyed by the history's EventId (an int; None only in a malformed history, never matched).
    open_tasks: dict[int | None, Entry] = {}
    entry: Entry | None
    for ev in events:
        try:
            kind = E(ev["EventType"])
        except (KeyError, ValueError):
            continue
        at = ev.get("Timestamp", "")
        if kind in _BOOKKEEPING:
            continue
        if kind == E.EXECUTION_STARTED:
            entries.append(Entry("started", ev.get("Name"), at, input=ev.get("Input")))
        elif kind == E.TASK_SCHEDULED:
            entry = Entry("activity", ev.get("Name"), at, state="pending",
                          taskId=ev.get("EventId"), input=ev.get("Input"))
            open_tasks[ev.get("EventId")] = entry
            entries.append(entry)
        elif kind == E.TIMER_CREATED:
            entry = Entry("timer", None, at, state="pending", taskId=ev.get("EventId"),
                          input=ev.get("FireAt"))
            open_tasks[ev.get("EventId")] = entry
            entries.append(entry)
        elif kind == E.SUB_ORCHESTRATION_CREATED:
            entry = Entry("subOrchestration", ev.get("Name"), at, state="pending",
                          taskId=ev.get("EventId"), input=ev.get("Input"),
                          instanceId=ev.get("InstanceId"))
            open_tasks[ev.get("EventId")] = entry
            entries.append(entry)
        elif kind in (E.TASK_COMPLETED, E.SUB_ORCHESTRATION_COMPLETED, E.TIMER_FIRED):
            key = ev.get("TimerId") if kind == E.TIMER_FIRED else ev.get("TaskScheduledId")
            entry = open_tasks.pop(key, None)
            if entry is not None:
                _close(entry, at, "fired" if kind == E.TIMER_FIRED else "done")
                entry.result = ev.get("Result")
        elif kind in (E.TASK_FAILED, E.SUB_ORCHESTRATION_FAILED):
            entry = open_tasks.pop(ev.get("TaskScheduledId"), None)
            if entry is not None:
                _close(entry, at, "failed")
                entry.failed, entry.failure = True, ev.get("Reason")
                entry.details = ev.get("Details")
        elif kind == E.EVENT_RAISED:
            entries.append(Entry("eventRaised", ev.get("Name"), at, input=ev.get("Input")))
        elif kind == E.EVENT_SENT:
            entries.append(Entry("eventSent", ev.get("Name"), at, input=ev.get("Input"),
                                 instanceId=ev.get("InstanceId")))
        elif kind == E.EXECUTION_COMPLETED:
            entries.append(Entry("completed", None, at, result=ev.get("Result")))
        elif kind == E.EXECUTION_FAILED:
            entries.append(Entry("failed", None, at, state="failed", failed=True,
                                 failure=ev.get("Result"), details=ev.get("Details")))
        elif kind == E.EXECUTION_TERMINATED:
            entries.append(Entry("terminated", None, at, input=ev.get("Input")))
        elif kind == E.EXECUTION_SUSPENDED:
            entries.append(Entry("suspended", None, at, input=ev.get("Reason")))
        elif kind == E.EXECUTION_RESUMED:
            entries.append(Entry("resumed", None, at, input=ev.get("Reason")))
        elif kind == E.CONTINUE_AS_NEW:
            entries.append(Entry("continuedAsNew", None, at, input=ev.get("Result")))
    if entries and entries[-1].kind in _ENDS:
        # A task still open when the execution ended never will finish (a timer that lost a
        # race, work abandoned by terminate).
        for entry in open_tasks.values():
            entry.state = "canceled"
    return [asdict(e) for e in entries]
