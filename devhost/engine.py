"""Runs orchestrations by replay and activities, the way the Durable extension does.

An *episode* takes every visible inbox message of one instance, appends them to its history after
an ``OrchestratorStarted``, replays the orchestrator through the SDK's own entry point, interprets
the returned actions (schema V3, as ``OutOfProcOrchestrationShim`` does) and commits the result in
one transaction.

Guarantees:
- Episodes run synchronously on the event-loop thread, so two episodes of one instance never
  overlap and no state is shared across threads; many instances progress concurrently because
  activities run as independent tasks (async ones on the loop, sync ones in a thread pool).
- Activities are at least once: a work row lives until its result is committed, and every row
  left by a crash is dispatched again on start.
- Timers, inbox messages and work survive restarts; :meth:`Engine.recover` re-arms them.
- Shared mode (several worker processes on one store, each with its own engine): an episode
  runs in the worker that queued its message, reads one consistent snapshot and commits only if
  no other worker moved the instance on meanwhile; otherwise it is rerun at once from the
  current state (optimistic concurrency: an event is never delivered twice or lost).
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import heapq
import json
import logging
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import azure.functions as func
from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from devhost import failures, hostlog
from devhost import history as h
from devhost.history import EventType
from devhost.loader import LoadedApp
from devhost.status import TERMINAL, RuntimeStatus
from devhost.store import (EpisodeCommit, EpisodeConflict, Instance, Message, NewInstance,
                           NewMessage, Store, WorkItem)

log = logging.getLogger("devhost.engine")

_OOPROC_MARKER = "\n\n$OutOfProcData$:"
_CONTROL = ("terminate", "suspend", "resume")
#: Completion message kinds and the event types they carry.
_SCHEDULING = {EventType.TASK_SCHEDULED: "activity", EventType.TIMER_CREATED: "timer",
               EventType.SUB_ORCHESTRATION_CREATED: "sub"}
_RESULTS = (EventType.TASK_COMPLETED, EventType.TASK_FAILED,
            EventType.SUB_ORCHESTRATION_COMPLETED, EventType.SUB_ORCHESTRATION_FAILED)
_CONTEXT_TAIL = (',"upperSchemaVersion":1,"upperSchemaVersionNew":2,'
                 '"longRunningTimerIntervalDuration":"3.00:00:00",'
                 '"maximumShortTimerDuration":"6.00:00:00",'
                 '"defaultHttpAsyncRequestSleepTimeMillseconds":30000}')


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _as_played(text: str) -> str:
    """The stored form of an event serialised for the current episode. ``IsPlayed`` is the
    third key of every event (``history.event`` builds them), so its first occurrence is the
    event's own flag, never one inside a payload."""
    return text.replace('"IsPlayed":false', '"IsPlayed":true', 1)


def new_execution_id() -> str:
    return uuid.uuid4().hex


class NonDeterminism(Exception):
    """The replayed actions contradict the recorded history."""


class OrchestrationError(Exception):
    """The episode must fail the orchestration with this message (host-side failure)."""


@dataclass
class _Facts:
    """What the history says, indexed for action interpretation."""

    scheduled: dict[int, tuple[str, str]] = field(default_factory=dict)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    timer_fire: dict[int, str] = field(default_factory=dict)
    events: collections.Counter = field(default_factory=collections.Counter)

    def add(self, ev: dict[str, Any]) -> None:
        kind = ev["EventType"]
        if kind in _SCHEDULING:
            self.scheduled[ev["EventId"]] = (_SCHEDULING[kind], ev.get("Name") or "")
            if kind == EventType.TIMER_CREATED:
                self.timer_fire[ev["EventId"]] = ev["FireAt"]
        elif kind in _RESULTS:
            self.results[ev["TaskScheduledId"]] = ev
        elif kind == EventType.TIMER_FIRED:
            self.results[ev["TimerId"]] = ev
        elif kind == EventType.EVENT_RAISED:
            # The host matches event names case-insensitively (the SDK does not).
            self.events[ev["Name"].lower()] += 1


@dataclass
class _Cached:
    execution_id: str
    texts: list[str]
    facts: _Facts


def _retry_delay(options: dict[str, Any], attempt: int, first_at: float, now: float) -> float:
    """Seconds to wait before retry ``attempt`` (0-based), or 0 for no more retries (DTFx
    ``RetryInterceptor.ComputeNextDelay``)."""
    timeout_ms = options.get("retryTimeoutInMilliseconds")
    if timeout_ms is not None and timeout_ms >= 0 and now >= first_at + timeout_ms / 1000:
        return 0.0
    delay_ms = options.get("firstRetryIntervalInMilliseconds", 0) * \
        options.get("backoffCoefficient", 1) ** attempt
    cap = options.get("maxRetryIntervalInMilliseconds")
    if cap is not None and cap > 0:
        delay_ms = min(delay_ms, cap)
    return max(delay_ms, 1) / 1000


@dataclass
class _PendingCommit:
    """An episode's writes, and what to do once they are committed."""

    commit: EpisodeCommit
    after: Callable[[list[WorkItem]], None]


class _Episode:
    """Interprets one orchestrator response against the history (the shim's V2/V3 rules)."""

    def __init__(self, engine: "Engine", inst: Instance, facts: _Facts, at: float) -> None:
        self.engine, self.inst, self.facts, self.at = engine, inst, facts, at
        self.seq = 0
        self.waits: collections.Counter = collections.Counter()
        self.events: list[dict[str, Any]] = []
        self.commit_work: list[tuple[int, str, str | None]] = []
        self.timers: list[NewMessage] = []
        self.cancel: list[int] = []
        self.children: list[NewInstance] = []
        self.messages: list[NewMessage] = []

    def _record(self, ev: dict[str, Any]) -> None:
        self.events.append(ev)
        self.facts.add(ev)

    def _claim(self, kind: str, name: str) -> tuple[int, bool]:
        """Next sequence id, and whether the history already scheduled it."""
        task_id = self.seq
        self.seq += 1
        known = self.facts.scheduled.get(task_id)
        if known is not None and known != (kind, name):
            raise NonDeterminism(
                f"Non-deterministic workflow detected: the history holds a {known[0]} "
                f"'{known[1]}' with id {task_id}, but the orchestrator now schedules a {kind} "
                f"'{name}' there")
        return task_id, known is not None

    def _timer(self, fire_at_text: str, canceled: bool) -> bool:
        task_id, known = self._claim("timer", "")
        if not known:
            self._record(h.event(EventType.TIMER_CREATED, self.at, task_id, FireAt=fire_at_text))
            if not canceled:
                fire_at = h.parse_timestamp(fire_at_text)
                self.timers.append(NewMessage(
                    self.inst.instance_id, "timer",
                    h.event(EventType.TIMER_FIRED, max(fire_at, self.at), -1, TimerId=task_id,
                            FireAt=fire_at_text),
                    fire_at, self.inst.execution_id, task_id))
        elif canceled and task_id not in self.facts.results:
            self.cancel.append(task_id)
        return canceled or task_id in self.facts.results

    def _schedule(self, action: dict[str, Any], kind: str) -> tuple[bool, dict | None]:
        """Schedule one activity/sub-orchestration attempt; (complete?, its result event)."""
        name = action["functionName"]
        task_id, known = self._claim(kind, name)
        if not known:
            if kind == "activity":
                if name not in self.engine.app.activities:
                    raise OrchestrationError(
                        f"The function '{name}' doesn't exist, is disabled, or is not an activity "
                        f"function. Known activities: {sorted(self.engine.app.activities)}")
                self._record(h.event(EventType.TASK_SCHEDULED, self.at, task_id, Name=name,
                                     Version="", Input=_dumps([action.get("input")])))
                self.commit_work.append((task_id, name, action.get("input")))
            else:
                self._sub_orchestration(action, task_id)
        result = self.facts.results.get(task_id)
        return result is not None, result

    def _sub_orchestration(self, action: dict[str, Any], task_id: int) -> None:
        name = action["functionName"]
        if name not in self.engine.app.orchestrators:
            raise OrchestrationError(
                f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator "
                f"function. Known orchestrators: {sorted(self.engine.app.orchestrators)}")
        child_id = action.get("instanceId") or uuid.uuid5(
            uuid.NAMESPACE_URL, f"{self.inst.instance_id}/{self.inst.execution_id}/{task_id}").hex
        text = action.get("input")
        stored_input = None if text is None else _dumps(text)
        self._record(h.event(EventType.SUB_ORCHESTRATION_CREATED, self.at, task_id, Name=name,
                             InstanceId=child_id, Input=stored_input))
        existing = self.engine.store.get(child_id)
        if existing is not None and existing.status not in self.engine.app.overridable:
            self.messages.append(NewMessage(
                self.inst.instance_id, "task",
                h.event(EventType.SUB_ORCHESTRATION_FAILED, self.at, -1, TaskScheduledId=task_id,
                        Reason=f"An Orchestration instance with the status {existing.status.value} "
                               f"already exists (instance id '{child_id}').", Details=None),
                self.at, self.inst.execution_id, task_id))
            return
        execution_id = new_execution_id()
        self.children.append(NewInstance(
            child_id, execution_id, name, stored_input, self.at,
            self.engine.started_event(name, child_id, execution_id, stored_input, self.at,
                                      parent=self.inst, parent_task_id=task_id),
            self.inst.instance_id, self.inst.execution_id, task_id))

    def _with_retry(self, action: dict[str, Any], kind: str) -> bool:
        options = action.get("retryOptions") or {}
        attempts = max(int(options.get("maxNumberOfAttempts", 1)), 1)
        first_at: float | None = None
        for attempt in range(attempts):
            done, result = self._schedule(action, kind)
            if not done:
                return False
            assert result is not None
            if first_at is None:
                first_at = h.parse_timestamp(result["Timestamp"])
            if result["EventType"] in (EventType.TASK_COMPLETED,
                                       EventType.SUB_ORCHESTRATION_COMPLETED):
                return True
            # DTFx waits on a timer after every failed attempt, the last one included; the
            # SDK's RetryAbleTask counts on that extra timer.
            task_id = self.seq
            if self.facts.scheduled.get(task_id) == ("timer", ""):
                self.seq += 1
                if task_id not in self.facts.results:
                    return False
            else:
                delay = _retry_delay(options, attempt, first_at,
                                     h.parse_timestamp(result["Timestamp"]))
                if delay <= 0:
                    return True
                if not self._timer(h.format_timestamp(self.at + delay), False):
                    return False
        return True

    def visit(self, action: dict[str, Any]) -> bool:
        """Invoke one action (scheduling what history lacks); True when it is complete."""
        kind = action["actionType"]
        if kind == 0:
            return self._schedule(action, "activity")[0]
        if kind == 1:
            return self._with_retry(action, "activity")
        if kind == 2:
            return self._schedule(action, "sub")[0]
        if kind == 3:
            return self._with_retry(action, "sub")
        if kind == 5:
            return self._timer(action["fireAt"], bool(action.get("isCanceled")))
        if kind == 6:
            name = action["externalEventName"].lower()
            self.waits[name] += 1
            return self.facts.events[name] >= self.waits[name]
        if kind in (11, 12):
            done = [self.visit(child) for child in action["compoundActions"]]
            return any(done) if kind == 11 else all(done)
        if kind == 4:
            return True
        what = {7: "entity calls", 8: "durable HTTP calls (call_http)", 9: "entity signals"}
        raise OrchestrationError(f"devhost does not support {what.get(kind, f'action {kind}')}")


def _pure_replay(inst: Instance, commit: EpisodeCommit) -> bool:
    """The episode only replayed: it leaves the instance Running and waiting as before (nothing
    scheduled, cancelled or sent, the same custom status). Its log lines go to Debug."""
    return (inst.status == RuntimeStatus.RUNNING and commit.status == RuntimeStatus.RUNNING
            and not (commit.new_work or commit.messages or commit.children
                     or commit.cancel_timers)
            and (not commit.set_custom_status or commit.custom_status == inst.custom_status))


class Engine:
    """Drives every instance of one store (see module docstring for guarantees)."""

    def __init__(self, store: Store, app: LoadedApp, *, clock: Callable[[], float] = h.now,
                 max_activities: int = 32, cache_size: int = 20_000) -> None:
        self.store, self.app, self._clock = store, app, clock
        self.shared = store.shared
        # Start from the latest time already recorded, not 0: if the wall clock stepped back
        # while devhost was down, new OrchestratorStarted events must still not precede the
        # ones in the histories (the SDK needs them non-decreasing).
        self._last_time = store.latest_time()
        self._cache: collections.OrderedDict[str, _Cached] = collections.OrderedDict()
        self._cache_size = cache_size
        self._ready: dict[str, None] = {}
        self._drain_scheduled = False
        self._wakeups: list[tuple[float, str]] = []
        self._wake_handle: asyncio.TimerHandle | None = None
        self._pending: list[_PendingCommit] = []  # episode writes of the running drain
        self._inflight: dict[int, WorkItem] = {}  # activity calls running now
        self._stopping = False  # shutting down: no new activity is dispatched
        self._closed = False
        self._tasks: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(max_activities)
        self._pool = ThreadPoolExecutor(max_workers=max_activities,
                                        thread_name_prefix="devhost-activity")
        self._loop: asyncio.AbstractEventLoop | None = None
        self.episodes = 0

    # ---- time and scheduling -------------------------------------------------------------------

    def now(self) -> float:
        """The engine's clock, never going backwards (episode timestamps must not decrease)."""
        self._last_time = max(self._last_time, self._clock())
        return self._last_time

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def wake(self, instance_id: str, at: float | None = None) -> None:
        """Make sure ``instance_id`` runs an episode once ``at`` (default: now) has passed."""
        if at is None or at <= self.now():
            self._ready[instance_id] = None
            if not self._drain_scheduled:
                self._drain_scheduled = True
                self.loop.call_soon(self._drain)
            return
        heapq.heappush(self._wakeups, (at, instance_id))
        if self._wakeups[0][1] == instance_id and self._wakeups[0][0] == at:
            self._arm()

    def _arm(self) -> None:
        if self._wake_handle is not None:
            self._wake_handle.cancel()
        if self._wakeups:
            delay = max(0.0, self._wakeups[0][0] - self.now())
            self._wake_handle = self.loop.call_later(min(delay, 3600.0), self.poll)

    def poll(self) -> None:
        """Move every wake-up whose time has come to the ready queue (also for fake clocks)."""
        now = self.now()
        while self._wakeups and self._wakeups[0][0] <= now:
            _, iid = heapq.heappop(self._wakeups)
            self.wake(iid)
        self._wake_handle = None
        self._arm()

    def _drain(self) -> None:
        """Run up to 64 ready episodes, then commit them together.

        Episodes are computed first and their writes committed afterwards in one transaction
        (each one a savepoint): one WAL write for the batch, and shared workers hold the write
        lock only for the SQL, never through a replay. What an episode did takes effect
        (activities dispatched, instances woken, cache updated) only after that COMMIT, so
        nothing is observed before it is durable.
        """
        self._drain_scheduled = False
        if self._closed:
            return  # the inbox keeps the messages for the next start
        budget = 64
        try:
            while self._ready and budget:
                iid = next(iter(self._ready))
                del self._ready[iid]
                budget -= 1
                try:
                    self.run_episode(iid)
                except Exception:
                    # A devhost bug: the messages stay in the inbox, so the instance is retried
                    # instead of being lost.
                    log.exception("episode of %s failed; retrying in 1 s", iid)
                    self._retry(iid, self.now() + 1.0)
        finally:
            pending, self._pending = self._pending, []
        outcomes: list[tuple[_PendingCommit, list[WorkItem] | Exception]] = []
        try:
            # Drains that found nothing to deliver open no transaction (nor the write lock).
            with self.store.batch() if pending else contextlib.nullcontext():
                for item in pending:
                    try:
                        outcomes.append((item, self.store.commit_episode(item.commit)))
                    except Exception as exc:  # that savepoint alone was rolled back
                        outcomes.append((item, exc))
        except Exception:
            log.exception("committing %d episodes failed; retrying them in 1 s", len(pending))
            for item in pending:
                self._retry(item.commit.instance_id, self.now() + 1.0)
            outcomes = []
        for item, outcome in outcomes:
            iid = item.commit.instance_id
            if isinstance(outcome, EpisodeConflict):
                # Another worker moved the instance on: rerun from what is there now.
                self._retry(iid, None if self.shared else self.now() + 1.0)
            elif isinstance(outcome, Exception):
                log.error("episode of %s failed to commit; retrying in 1 s", iid,
                          exc_info=outcome)
                self._retry(iid, self.now() + 1.0)
            else:
                item.after(outcome)
        if self._ready and not self._drain_scheduled:
            self._drain_scheduled = True
            self.loop.call_soon(self._drain)

    def _retry(self, instance_id: str, at: float | None) -> None:
        self._cache.pop(instance_id, None)
        self.wake(instance_id, at)

    def _commit(self, commit: EpisodeCommit,
                after: Callable[[list[WorkItem]], None] = lambda scheduled: None) -> None:
        """Queue an episode's writes for the end of the current drain, which commits them and
        then runs ``after`` with the work items they scheduled."""
        self._pending.append(_PendingCommit(commit, after))

    def recover(self) -> tuple[int, int]:
        """Re-arm every instance with messages and re-dispatch every pending activity.

        Returns: (instances woken, activities dispatched).
        """
        wakes = self.store.wake_times()
        for iid, at in wakes:
            self.wake(iid, at)
        work = self.store.pending_work()
        for item in work:
            self.dispatch(item)
        return len(wakes), len(work)

    def running_activities(self) -> list[WorkItem]:
        """The activity calls running now (a result not yet committed)."""
        return list(self._inflight.values())

    def forget(self, instance_id: str) -> None:
        """Drop cached history (the instance was replaced or purged)."""
        self._cache.pop(instance_id, None)

    async def close(self, grace: float = 0.0) -> list[WorkItem]:
        """Dispatch no new activity, give the running ones up to ``grace`` seconds (a result
        that arrives is committed, and episodes keep running meanwhile), then stop timers and
        cancel the rest: their work rows stay, so they run again at the next start.

        Returns: the activity calls that were cancelled (will run again).
        """
        self._stopping = True
        if grace > 0 and self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        self._closed = True
        if self._wake_handle is not None:
            self._wake_handle.cancel()
        unfinished = self.running_activities()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        return unfinished

    # ---- events --------------------------------------------------------------------------------

    def started_event(self, name: str, instance_id: str, execution_id: str, stored_input: str | None,
                      at: float, parent: Instance | None = None,
                      parent_task_id: int | None = None) -> dict[str, Any]:
        parent_info = None
        if parent is not None:
            parent_info = {"Name": parent.name, "TaskScheduleId": parent_task_id,
                           "OrchestrationInstance": {"InstanceId": parent.instance_id,
                                                     "ExecutionId": parent.execution_id}}
        return h.event(EventType.EXECUTION_STARTED, at, -1,
                       OrchestrationInstance={"InstanceId": instance_id,
                                              "ExecutionId": execution_id},
                       ParentInstance=parent_info, Name=name, Version="", Input=stored_input,
                       Tags=None, Correlation=None, ScheduledStartTime=None, Generation=0)

    # ---- episodes ------------------------------------------------------------------------------

    def _load(self, inst: Instance, fresh: bool = False) -> _Cached:
        """The instance's history (cached). ``fresh``: a shared engine first checks that no
        other worker appended to it; the rest of an episode must see that same history, so only
        the episode's first read asks for it."""
        cached = self._cache.get(inst.instance_id)
        if cached is not None and fresh and self.shared and \
                len(cached.texts) != self.store.history_length(inst.instance_id):
            cached = None  # another worker ran an episode of this instance
        if cached is None or cached.execution_id != inst.execution_id:
            texts = self.store.history(inst.instance_id)
            facts = _Facts()
            for text in texts:
                facts.add(json.loads(text))
            cached = _Cached(inst.execution_id, texts, facts)
            self._cache[inst.instance_id] = cached
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(inst.instance_id)
        return cached

    def run_episode(self, instance_id: str) -> None:
        """Deliver every visible message of one instance; its writes are committed by the
        drain that runs it (:meth:`_drain`)."""
        with self.store.snapshot():
            inst = self.store.get(instance_id)
            if inst is None:
                return
            # Never before the instance's last episode (another worker's clock reading may be
            # later than ours): OrchestratorStarted times must not decrease.
            at = max(self.now(), inst.updated_at)
            messages = self.store.visible_messages(instance_id, at)
            if not messages:
                nxt = self.store.next_wake(instance_id)
                if nxt is not None:
                    self.wake(instance_id, nxt)
                return
            self._load(inst, fresh=True)  # the history of the same snapshot
        current = [m for m in messages
                   if m.execution_id is None or m.execution_id == inst.execution_id]
        stale = [m.msg_id for m in messages if m not in current]
        if inst.status in TERMINAL:
            self._commit_simple(inst, at, [m.msg_id for m in messages], [])
            return
        terminate = next((m for m in current if m.kind == "terminate"), None)
        if terminate is not None:
            self._terminate(inst, at, terminate)
            return
        status = inst.status
        control_events: list[dict[str, Any]] = []
        consumed = list(stale)
        for m in current:
            if m.kind not in ("suspend", "resume"):
                continue
            consumed.append(m.msg_id)
            suspend = m.kind == "suspend"
            if suspend == (status == RuntimeStatus.SUSPENDED):
                continue  # suspending a suspended (resuming a live) instance changes nothing
            if suspend:
                status = RuntimeStatus.SUSPENDED
            else:
                status = RuntimeStatus.RUNNING if self._load(inst).texts else RuntimeStatus.PENDING
            control_events.append(h.event(
                EventType.EXECUTION_SUSPENDED if suspend else EventType.EXECUTION_RESUMED,
                at, -1, Reason=m.payload.get("reason")))
        # ExecutionStarted first: after continue-as-new, events kept for the new execution are
        # older in the inbox than its start message.
        deliver = sorted((m for m in current if m.kind not in _CONTROL),
                         key=lambda m: m.kind != "start")
        if status == RuntimeStatus.SUSPENDED or not deliver:
            # Suspended: everything but control messages waits in the inbox for a resume.
            self._commit_simple(inst, at, consumed, control_events, status)
            return
        self._replay(inst, at, deliver, consumed, control_events)

    def _commit_simple(self, inst: Instance, at: float, consumed: list[int],
                       events: list[dict[str, Any]], status: RuntimeStatus | None = None) -> None:
        cached = self._load(inst)
        if not cached.texts:
            events = []  # nothing may precede OrchestratorStarted + ExecutionStarted
        texts = [_dumps({**ev, "IsPlayed": True}) for ev in events]
        self._commit(EpisodeCommit(
            inst.instance_id, inst.execution_id, status or inst.status, at, len(cached.texts),
            new_events=texts, consumed=consumed), lambda scheduled: cached.texts.extend(texts))

    def _terminate(self, inst: Instance, at: float, message: Message) -> None:
        reason = message.payload.get("reason")
        cached = self._load(inst)
        ev = h.event(EventType.EXECUTION_TERMINATED, at, -1, Input=_dumps(reason))
        self._commit(EpisodeCommit(
            inst.instance_id, inst.execution_id, RuntimeStatus.TERMINATED, at, len(cached.texts),
            new_events=[_dumps({**ev, "IsPlayed": True})], output=_dumps(reason),
            set_output=True, finished=True),
            lambda scheduled: self._cache.pop(inst.instance_id, None))

    def _replay(self, inst: Instance, at: float, deliver: list[Message], consumed: list[int],
                control_events: list[dict[str, Any]]) -> None:
        cached = self._load(inst)
        # ExecutionStarted must stay history[1], so control events go after the delivered ones.
        new_events = [h.event(EventType.ORCHESTRATOR_STARTED, at)]
        stored: list[str] = [""]  # each event's JSON text where the inbox already has it
        for m in deliver:
            consumed.append(m.msg_id)
            new_events.append(m.payload)
            stored.append(m.text)
        new_events += control_events
        stored += [""] * len(control_events)
        orchestrator = self.app.orchestrators.get(inst.name)
        facts = cached.facts
        history_base = len(cached.texts)
        for ev in new_events:
            facts.add(ev)
        played = cached.texts
        new_texts = [text or _dumps(ev) for ev, text in zip(new_events, stored)]
        request = "".join((
            '{"history":[', ",".join(played + new_texts),
            '],"input":', inst.input if inst.input is not None else "null",
            ',"instanceId":', _dumps(inst.instance_id),
            ',"isReplaying":', "true" if played else "false",
            ',"parentInstanceId":', _dumps(inst.parent_instance_id), _CONTEXT_TAIL))
        episode = _Episode(self, inst, facts, at)
        state: dict[str, Any] | None = None
        error: str | None = None
        user_exc: BaseException | None = None
        invocation = hostlog.Invocation(inst.name, hostlog.DURABLE_REASON, inst.instance_id,
                                        defer=True)
        try:
            if orchestrator is None:
                raise OrchestrationError(
                    f"The function '{inst.name}' doesn't exist, is disabled, or is not an "
                    f"orchestrator function.")
            try:
                state = json.loads(orchestrator.user_function(
                    context=func.OrchestrationContext(request)))
            except OrchestrationError:
                raise
            except Exception as exc:  # the user's orchestrator failed: OOProc error schema
                user_exc = exc.__cause__ or exc  # the SDK re-raises the user's "from" it
                text = str(exc)
                head, sep, tail = text.partition(_OOPROC_MARKER)
                if sep:
                    try:
                        state = json.loads(tail)
                    except ValueError:
                        state = None
                error = (state or {}).get("error") or head or type(exc).__name__
            if state is not None and error is None and state.get("error"):
                error = state["error"]
            can = None
            if state is not None and error is None:
                for action in (state.get("actions") or [[]])[0]:
                    if action.get("actionType") == 4:
                        can = action
                    if not episode.visit(action):
                        break
        except (OrchestrationError, NonDeterminism) as exc:
            error, state = str(exc), state

        self.episodes += 1
        commit = EpisodeCommit(inst.instance_id, inst.execution_id, RuntimeStatus.RUNNING, at,
                               history_base, consumed=consumed, new_work=episode.commit_work,
                               cancel_timers=episode.cancel, messages=episode.messages + episode.timers,
                               children=episode.children)
        if state is not None and "customStatus" in state:
            commit.custom_status, commit.set_custom_status = _dumps(state["customStatus"]), True
        all_new = new_events + episode.events
        finished_as: RuntimeStatus | None = None
        if error is not None:
            finished_as = RuntimeStatus.FAILED
            message = f"Orchestrator function '{inst.name}' failed: {error}"
            commit.output, commit.set_output = _dumps(message), True
            all_new.append(h.event(EventType.EXECUTION_FAILED, at, -1,
                                   OrchestrationStatus=3, Result=_dumps(message)))
            self._notify_parent(inst, at, commit, failed=message)
        elif state is not None and state.get("isDone") and can is not None:
            execution_id = new_execution_id()
            stored_input = None if can.get("input") is None else _dumps(can["input"])
            commit.status = RuntimeStatus.CONTINUED_AS_NEW
            commit.reset_history = True
            commit.new_execution_id, commit.new_input = execution_id, stored_input
            commit.messages = [NewMessage(inst.instance_id, "start", self.started_event(
                inst.name, inst.instance_id, execution_id, stored_input, at,
                parent=None), at, execution_id)]
            commit.new_work, commit.cancel_timers, commit.children = [], [], []
            all_new = []
            self._cache.pop(inst.instance_id, None)
        elif state is not None and state.get("isDone"):
            finished_as = RuntimeStatus.COMPLETED
            output = _dumps(state.get("output"))
            commit.output, commit.set_output = output, True
            all_new.append(h.event(EventType.EXECUTION_COMPLETED, at, -1,
                                   OrchestrationStatus=1, Result=output))
            self._notify_parent(inst, at, commit, output=output)
        if finished_as is not None:
            commit.status, commit.finished = finished_as, True
            commit.new_work, commit.cancel_timers, commit.children = [], [], []
            commit.messages = [m for m in commit.messages if m.instance_id != inst.instance_id]
        texts: list[str] = []
        if all_new:
            all_new.append(h.event(EventType.ORCHESTRATOR_COMPLETED, at))
            # all_new starts with new_events, already serialised for the request.
            texts = [_as_played(t) for t in new_texts] + [
                _dumps({**ev, "IsPlayed": True}) for ev in all_new[len(new_events):]]
        commit.new_events = texts
        if error is not None:
            invocation.failed(user_exc, None if user_exc else error)
        else:
            invocation.succeeded(quiet=finished_as is None and not commit.reset_history
                                 and _pure_replay(inst, commit))

        def after(scheduled: list[WorkItem]) -> None:
            if finished_as is not None or commit.reset_history:
                self._cache.pop(inst.instance_id, None)
            else:
                cached.texts.extend(texts)
            for item in scheduled:
                self.dispatch(item)
            for m in commit.messages:
                self.wake(m.instance_id, m.visible_at)
            for child in commit.children:
                self.wake(child.instance_id)

        self._commit(commit, after)

    def _notify_parent(self, inst: Instance, at: float, commit: EpisodeCommit,
                       output: str | None = None, failed: str | None = None) -> None:
        if inst.parent_instance_id is None:
            return
        if failed is None:
            ev = h.event(EventType.SUB_ORCHESTRATION_COMPLETED, at, -1,
                         TaskScheduledId=inst.parent_task_id, Result=output)
        else:
            ev = h.event(EventType.SUB_ORCHESTRATION_FAILED, at, -1,
                         TaskScheduledId=inst.parent_task_id, Reason=failed, Details=None)
        commit.messages.append(NewMessage(inst.parent_instance_id, "task", ev, at,
                                          inst.parent_execution_id, inst.parent_task_id))

    # ---- activities ----------------------------------------------------------------------------

    def dispatch(self, item: WorkItem) -> None:
        """Run an activity in the background; its result is committed, then its instance woken."""
        if item.work_id in self._inflight or self._stopping:
            return  # stopping: the work row stays and runs at the next start
        self._inflight[item.work_id] = item
        task = self.loop.create_task(self._run_activity(item))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_activity(self, item: WorkItem) -> None:
        try:
            async with self._slots:
                event = await self._invoke_activity(item)
        finally:
            self._inflight.pop(item.work_id, None)
        at = self.now()
        event["Timestamp"] = h.format_timestamp(at)
        if self.store.complete_work(item.work_id, NewMessage(
                item.instance_id, "task", event, at, item.execution_id, item.task_id)):
            self.wake(item.instance_id)

    async def _invoke_activity(self, item: WorkItem) -> dict[str, Any]:
        activity = self.app.activities.get(item.name)
        if activity is None:
            return h.event(EventType.TASK_FAILED, 0, -1, TaskScheduledId=item.task_id,
                           Reason=f"The function '{item.name}' doesn't exist, is disabled, or is "
                                  f"not an activity function.", Details=None)
        invocation = hostlog.Invocation(item.name, hostlog.DURABLE_REASON, item.instance_id)
        try:
            value = None if item.input is None else ActivityTriggerConverter.decode(
                meta.Datum(type="json", value=item.input), trigger_metadata=None)
            kwargs = {activity.input_param: value}
            if activity.is_async:
                result = await activity.user_function(**kwargs)
            else:
                result = await self.loop.run_in_executor(self._pool, hostlog.in_context(
                    functools.partial(activity.user_function, **kwargs)))
            datum = ActivityTriggerConverter.encode(result, expected_type=None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            invocation.failed(exc)
            reason, details = failures.activity_failure(item.name, exc)
            return h.event(EventType.TASK_FAILED, 0, -1, TaskScheduledId=item.task_id,
                           Reason=reason, Details=details)
        invocation.succeeded()
        return h.event(EventType.TASK_COMPLETED, 0, -1, TaskScheduledId=item.task_id,
                       Result=datum.value)
