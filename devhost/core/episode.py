"""One orchestration episode as a pure function: (snapshot, new messages) -> one commit.

:func:`compute` reads nothing but its :class:`Snapshot` (no store, no clock, no engine state), so
it may run on any thread; the engine applies the :class:`Outcome` it returns. The rules are the
host's (``OutOfProcOrchestrationShim`` schema V2/V3 over DTFx ``TaskOrchestrationContext``):

- Messages addressed to another execution are stale and consumed unseen. A terminate ends the
  execution (a parent's call of it fails with the reason); suspend/resume change the status and
  are recorded as history events; while the instance is suspended everything else waits in the
  inbox.
- Otherwise the new messages are appended after an ``OrchestratorStarted``, the orchestrator is
  replayed through the SDK, and its actions are walked as the host replays them: the history's
  events are played in order and each top-level action is invoked once the one before it has
  completed; ids that history lacks are scheduled (activities, timers, sub-orchestrations), and
  the walk stops at the first action the history does not complete. A raised event goes to the
  newest open waiter of its name (else it waits for the next one); a retried call takes its
  timer's and next attempt's ids when its failure and timer are played.
- Host-side refusals fail the instance with the extension's message: an unknown function, a
  sub-orchestration id equal to the caller's or its parent's, a custom status over 16 KB.
- Non-determinism fails the instance, as DTFx's ``NonDeterministicOrchestrationException`` does:
  an id the history scheduled with another kind or name, or one the replay never produced.
- ``continue_as_new``: the history restarts with a new execution; new ``EventRaised`` messages that
  come after the point where the generation completed are left in the inbox for the next
  generation (DTFx ``BehaviorOnContinueAsNew.Carryover``), events it had buffered before are
  dropped (the shim's ``preserveUnprocessedEvents=false``). Messages addressed to the old
  execution die with it; control messages addressed to no execution (terminate, suspend) stay.
"""
from __future__ import annotations

import collections
import functools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func

from devhost.app import hostlog
from devhost.app.loader import LoadedApp
from devhost.app.status import TERMINAL, RuntimeStatus
from devhost.core import history as h
from devhost.core.history import ActionType, EventType, dumps
from devhost.core.store import ChildStart, EpisodeCommit, Instance, Message, NewInstance, NewMessage

_OOPROC_MARKER = "\n\n$OutOfProcData$:"
_CONTROL = ("terminate", "suspend", "resume")
#: What each scheduling event schedules, in the words of DTFx's non-determinism message.
_SCHEDULING = {EventType.TASK_SCHEDULED: "activity", EventType.TIMER_CREATED: "timer",
               EventType.SUB_ORCHESTRATION_CREATED: "sub-orchestration"}
_RESULTS = (EventType.TASK_COMPLETED, EventType.TASK_FAILED,
            EventType.SUB_ORCHESTRATION_COMPLETED, EventType.SUB_ORCHESTRATION_FAILED)
_CONTEXT_TAIL = (',"upperSchemaVersion":1,"upperSchemaVersionNew":2,'
                 '"longRunningTimerIntervalDuration":"3.00:00:00",'
                 '"maximumShortTimerDuration":"6.00:00:00",'
                 '"defaultHttpAsyncRequestSleepTimeMillseconds":30000}')
#: A walk result: None while incomplete, else the history position of the event that completed
#: it (``_NO_EVENT`` for what completes without one: a cancelled timer, continue_as_new).
Position = int | None
_NO_EVENT = -1


#: The extension's cap on an orchestration's serialized custom status, in KB of UTF-16.
MAX_CUSTOM_STATUS_KB = 16


def custom_status_refusal(value: Any) -> str | None:
    """The extension's refusal of a custom status too large to store, or None to accept it.

    ``DurableOrchestrationContext.SetCustomStatus`` serializes the value with
    ``MessagePayloadDataConverter.Serialize(value, MaxCustomStatusPayloadSizeInKB = 16)``, which
    measures the compact JSON in UTF-16 bytes ("String payloads in Azure Storage are encoded in
    UTF-16"), truncates to whole KB and throws ArgumentException when that exceeds 16: so up to
    17 KB - 1 byte passes. The shim sets the status before it replays the actions, so the
    episode fails without scheduling anything and the previous custom status stays.
    """
    if value is None:
        return None
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    size_kb = int(len(text.encode("utf-16-le")) / 1024.0)
    if size_kb <= MAX_CUSTOM_STATUS_KB:
        return None
    return (f"The UTF-16 size of the JSON-serialized payload must not exceed "
            f"{MAX_CUSTOM_STATUS_KB:,} KB. The current payload size is {size_kb:,} KB.")


class NonDeterminism(Exception):
    """The replayed actions contradict the recorded history."""


class OrchestrationError(Exception):
    """The episode must fail the orchestration with this message (host-side failure)."""


def _as_played(text: str) -> str:
    """The stored form of an event serialised for the current episode. ``IsPlayed`` is the
    third key of every event (``history.event`` builds them), so its first occurrence is the
    event's own flag, never one inside a payload."""
    return text.replace('"IsPlayed":false', '"IsPlayed":true', 1)


@dataclass
class Facts:
    """What the history says, indexed for the action walk; positions number events in order."""

    scheduled: dict[int, tuple[str, str]] = field(default_factory=dict)
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    result_at: dict[int, int] = field(default_factory=dict)
    timer_fire: dict[int, str] = field(default_factory=dict)
    #: (position, lower-cased name) of every raised event, in history order (the host matches
    #: names case-insensitively; the SDK does not).
    raised: list[tuple[int, str]] = field(default_factory=list)
    count: int = 0

    @classmethod
    def of(cls, texts: list[str]) -> Facts:
        facts = cls()
        for text in texts:
            facts.add(json.loads(text))
        return facts

    def add(self, ev: dict[str, Any]) -> int:
        """Index one event; returns its position."""
        at = self.count
        self.count += 1
        kind = ev["EventType"]
        if kind in _SCHEDULING:
            self.scheduled[ev["EventId"]] = (_SCHEDULING[kind], ev.get("Name") or "")
            if kind == EventType.TIMER_CREATED:
                self.timer_fire[ev["EventId"]] = ev["FireAt"]
        elif kind in _RESULTS:
            self.results[ev["TaskScheduledId"]] = ev
            self.result_at[ev["TaskScheduledId"]] = at
        elif kind == EventType.TIMER_FIRED:
            self.results[ev["TimerId"]] = ev
            self.result_at[ev["TimerId"]] = at
        elif kind == EventType.EVENT_RAISED:
            self.raised.append((at, ev["Name"].lower()))
        return at


@dataclass
class History:
    """One instance's history as the engine caches it. ``facts`` is built on first use (by
    :func:`compute`, off the event loop) and advanced by every episode computed from it."""

    execution_id: str
    texts: list[str]
    facts: Facts | None = None
    size: int = 0

    def __post_init__(self) -> None:
        self.size = sum(len(t) for t in self.texts)


@dataclass(frozen=True)
class Snapshot:
    """What one episode may depend on, read in one consistent view: the instance row, its
    history and its inbox messages visible at ``at`` (the episode's OrchestratorStarted time)."""

    instance: Instance
    at: float
    messages: list[Message]
    history: History


@dataclass(frozen=True)
class Run:
    """The orchestrator call of an episode, logged by the engine once the commit is durable
    (:func:`compute` writes no log line: the invocation holds what the orchestrator logged).

    ``error`` is the reason the episode fails the instance (None: it did not fail);
    ``user_exc`` the exception the user's code raised, when that is the reason.
    """

    invocation: hostlog.Invocation
    error: str | None = None
    user_exc: BaseException | None = None


@dataclass
class Outcome:
    """An episode's commit, and what the engine does once it is durable."""

    commit: EpisodeCommit
    #: Events appended to the cached history (None: drop the cache entry).
    appended: list[str] | None
    replayed: bool = False
    #: The orchestrator call to log (None: the episode called no orchestrator).
    run: Run | None = None


def retry_delay(options: dict[str, Any], attempt: int, first_at: float, now: float) -> float:
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


def _refused_child(parent_id: str, parent_execution: str, task_id: int, child_id: str,
                   at: float, status: RuntimeStatus) -> NewMessage:
    """The parent's SubOrchestrationInstanceFailed when the child id is taken (DTFx
    ``OrchestrationAlreadyExistsException`` text)."""
    return NewMessage(parent_id, "task", h.event(
        EventType.SUB_ORCHESTRATION_FAILED, at, -1, TaskScheduledId=task_id,
        Reason=f"An Orchestration instance with the status {status.value} already exists "
               f"(instance id '{child_id}').", Details=None),
        at, parent_execution, task_id)


@dataclass(eq=False)
class _Node:
    """One task of an action as the shim invoked it; ``at`` is the history position by which it
    completed (None: not yet; ``_NO_EVENT``: without an event, e.g. a cancelled timer).

    A compound's ``at`` follows its children as the shim awaits them (a WhenAll's every child,
    a WhenAny's first; a cancelled timer does not decide a WhenAny): kept up to date as each
    child completes (:meth:`done`), so a fan-out of n tasks costs O(n), not O(n**2).
    """

    kind: int
    at: Position = None
    children: list[_Node] = field(default_factory=list)
    parent: _Node | None = None
    #: WhenAll: children not complete yet, and the latest completion among the others.
    pending: int = 0
    latest: int = _NO_EVENT

    @classmethod
    def compound(cls, kind: int, children: list[_Node]) -> _Node:
        node = cls(kind, children=children)
        for child in children:
            child.parent = node
        node._recount()
        if kind == ActionType.WHEN_ANY:
            for child in children:
                node.at = _first(node.at, child.at)
        return node

    def _recount(self) -> None:
        if self.kind == ActionType.WHEN_ALL:
            self.pending = sum(child.at is None for child in self.children)
            self.latest = max((c.at for c in self.children if c.at is not None),
                              default=_NO_EVENT)
            self.at = None if self.pending else self.latest

    def done(self, at: int) -> None:
        """This (leaf) task completed at position ``at``: update the compounds above it."""
        old, self.at = self.at, at
        node = self
        while node.parent is not None and node.at != old:
            parent, was = node.parent, node.parent.at
            if parent.kind == ActionType.WHEN_ANY:
                parent.at = _first(parent.at, node.at)
            elif old is None and node.at is not None:
                parent.pending -= 1
                parent.latest = max(parent.latest, node.at)
                parent.at = None if parent.pending else parent.latest
            else:  # a completed child's position moved (a nested WhenAny): rare, recount
                parent._recount()
            node, old = parent, was


def _first(current: Position, candidate: Position) -> Position:
    """A WhenAny's completion once ``candidate`` is one of its completed children's."""
    if candidate is None:
        return current
    if current is None or current == _NO_EVENT:
        return candidate
    return current if candidate == _NO_EVENT else min(current, candidate)


@dataclass(eq=False)
class _Retry(_Node):
    """A ``*_with_retry`` call: DTFx's ``RetryInterceptor`` loop, advanced event by event."""

    action: dict[str, Any] = field(default_factory=dict)
    task_kind: str = "activity"
    attempt: int = 0
    #: What the call waits for now: an attempt's result, a retry timer, the last (dummy) timer.
    phase: str = "attempt"
    first_at: float | None = None


class _Walk:
    """Interprets one orchestrator response against the history (the shim's V2/V3 rules).

    The host replays the history events in order, and between two events runs what they
    completed: the shim invokes the top-level actions one after another, each once the one
    before has completed (``ProcessAsyncActionsV2``), and a retried call's interceptor goes on
    when its attempt or timer completes. Ids are handed out in that order, so the walk plays
    the same interleaving: ``cursor`` is the position of the last event played.
    """

    def __init__(self, app: LoadedApp, inst: Instance, facts: Facts, at: float) -> None:
        self.app, self.inst, self.facts, self.at = app, inst, facts, at
        self.seq = 0
        self.events: list[dict[str, Any]] = []
        self.work: list[tuple[int, str, str | None]] = []
        self.timers: list[NewMessage] = []
        self.cancel: list[int] = []
        self.children: list[ChildStart] = []
        self.cursor = _NO_EVENT
        #: The next raised event to play (an index into ``facts.raised``).
        self._next_raised = 0
        #: Open event waiters by lower-cased name, newest last, and events no waiter took yet.
        self._waiters: dict[str, list[_Node]] = collections.defaultdict(list)
        self._buffered: dict[str, collections.deque[int]] = collections.defaultdict(
            collections.deque)
        #: Retried calls by the id of the task (attempt or timer) each one waits for.
        self._retrying: dict[int, _Retry] = {}

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
                f"Non-Deterministic workflow detected: A previous execution of this orchestration "
                f"scheduled a {known[0]} task with sequence ID {task_id} and name '{known[1]}', "
                f"but the current replay execution schedules a {kind} task with name '{name}' "
                f"there. Was a change made to the orchestrator code after this instance had "
                f"already started running?")
        return task_id, known is not None

    def check_all_replayed(self) -> None:
        """Raise NonDeterminism for a task the history scheduled that the replay did not
        produce (DTFx checks each scheduling event of the past against the replay's actions)."""
        missing = sorted(t for t in self.facts.scheduled if t >= self.seq)
        if missing:
            kind, name = self.facts.scheduled[missing[0]]
            raise NonDeterminism(
                f"Non-Deterministic workflow detected: A previous execution of this orchestration "
                f"scheduled a {kind} task with sequence ID {missing[0]} and name '{name}', but "
                f"the current replay execution hasn't (yet?) scheduled this task. Was a change "
                f"made to the orchestrator code after this instance had already started running?")

    def _timer(self, fire_at_text: str, canceled: bool) -> int:
        task_id, known = self._claim("timer", "")
        if not known:
            self._record(h.event(EventType.TIMER_CREATED, self.at, task_id, FireAt=fire_at_text))
            if not canceled:
                fire_at = h.parse_timestamp(fire_at_text)
                self.timers.append(NewMessage(
                    self.inst.instance_id, "timer",
                    h.event(EventType.TIMER_FIRED, max(fire_at, self.at), -1, TimerId=task_id,
                            FireAt=fire_at_text),
                    # A timer already due arrives as it is sent, not at its past FireAt: two
                    # such timers are delivered in the order they were created.
                    max(fire_at, self.at), self.inst.execution_id, task_id))
        elif canceled and task_id not in self.facts.results:
            self.cancel.append(task_id)
        return task_id

    def _schedule(self, action: dict[str, Any], kind: str) -> int:
        """Schedule one activity/sub-orchestration attempt; its task id."""
        name = action["functionName"]
        task_id, known = self._claim(kind, name)
        if not known:
            if kind == "activity":
                if name not in self.app.activities:
                    raise OrchestrationError(
                        f"The function '{name}' doesn't exist, is disabled, or is not an activity "
                        f"function. Known activities: {sorted(self.app.activities)}")
                self._record(h.event(EventType.TASK_SCHEDULED, self.at, task_id, Name=name,
                                     Version="", Input=dumps([action.get("input")])))
                self.work.append((task_id, name, action.get("input")))
            else:
                self._sub_orchestration(action, task_id)
        return task_id

    def _sub_orchestration(self, action: dict[str, Any], task_id: int) -> None:
        name = action["functionName"]
        if name not in self.app.orchestrators:
            raise OrchestrationError(
                f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator "
                f"function. Known orchestrators: {sorted(self.app.orchestrators)}")
        inst = self.inst
        child_id = action.get("instanceId") or uuid.uuid5(
            uuid.NAMESPACE_URL, f"{inst.instance_id}/{inst.execution_id}/{task_id}").hex
        # The extension refuses a child id equal (ignoring case) to the caller's or its parent's
        # id with an ArgumentException (DurableOrchestrationContext.CallDurableTaskFunctionAsync),
        # so the child never replaces its parent, whatever overridableExistingInstanceStates
        # says. On the host the shim's ProcessAsyncActionsV2 swallows that faulted task and a
        # Python parent then waits forever; devhost fails it with the extension's message, as it
        # does for an unknown function, rather than leave it stuck.
        if any(child_id.casefold() == own.casefold()
               for own in (inst.instance_id, inst.parent_instance_id) if own is not None):
            raise OrchestrationError(
                "The instance ID of a sub-orchestration must be different than the instance ID "
                "of a parent orchestration.")
        text = action.get("input")
        stored_input = None if text is None else dumps(text)
        self._record(h.event(EventType.SUB_ORCHESTRATION_CREATED, self.at, task_id, Name=name,
                             InstanceId=child_id, Input=stored_input))
        # Whether the id is free is decided when the commit is applied, against the child's
        # row as it is then (another parent or a client may be creating it meanwhile).
        execution_id = h.new_execution_id()
        started = h.execution_started(
            name, child_id, execution_id, stored_input, self.at,
            parent=(inst.name, inst.instance_id, inst.execution_id, task_id))
        self.children.append(ChildStart(
            NewInstance(child_id, execution_id, name, stored_input, self.at, started,
                        inst.instance_id, inst.execution_id, task_id),
            self.app.overridable,
            functools.partial(_refused_child, inst.instance_id, inst.execution_id, task_id,
                              child_id, self.at)))

    def _attempt(self, node: _Retry) -> None:
        self._retrying[self._schedule(node.action, node.task_kind)] = node

    def _retry_step(self, node: _Retry, task_id: int, at: int) -> None:
        """Go on with a retried call whose awaited task completed at position ``at``, as DTFx's
        ``RetryInterceptor.Invoke`` does: the retry timer (and then the next attempt) is created
        when the failure (the timer) is played, so its id follows whatever took ids before."""
        if node.phase == "timer":
            node.attempt += 1
            node.phase = "attempt"
            self._attempt(node)
            return
        if node.phase == "last":
            node.done(at)  # the call fails with the last attempt's failure
            return
        result = self.facts.results[task_id]
        if node.first_at is None:
            node.first_at = h.parse_timestamp(result["Timestamp"])
        if result["EventType"] in (EventType.TASK_COMPLETED,
                                   EventType.SUB_ORCHESTRATION_COMPLETED):
            node.done(at)
            return
        options = node.action.get("retryOptions") or {}
        if node.attempt + 1 >= max(int(options.get("maxNumberOfAttempts", 1)), 1):
            # After the last attempt DTFx still awaits a timer (older versions waited a full
            # interval there, and the SDK's RetryAbleTask counts on that timer), but since
            # Azure/durabletask#661 (DurableTask.Core 2.7; the extension references 2.17) it
            # is due at once: RetryInterceptor's "Dummy timer for back-compat".
            node.phase = "last"
            fire_at = self.at
        else:
            delay = retry_delay(options, node.attempt, node.first_at,
                                h.parse_timestamp(result["Timestamp"]))
            if delay <= 0:
                node.done(at)
                return
            node.phase = "timer"
            fire_at = self.at + delay
        self._retrying[self._timer(h.format_timestamp(fire_at), False)] = node

    def _invoke(self, action: dict[str, Any]) -> _Node:
        """Invoke one action as the shim does (``InvokeAPIFromAction``): take its ids, schedule
        what history lacks, register its event waiters."""
        kind = action["actionType"]
        if kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_SUB_ORCHESTRATOR):
            task_kind = "activity" if kind == ActionType.CALL_ACTIVITY else "sub-orchestration"
            return _Node(kind, self.facts.result_at.get(self._schedule(action, task_kind)))
        if kind in (ActionType.CALL_ACTIVITY_WITH_RETRY,
                    ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY):
            retry = _Retry(kind, action=action, task_kind=(
                "activity" if kind == ActionType.CALL_ACTIVITY_WITH_RETRY
                else "sub-orchestration"))
            self._attempt(retry)
            return retry
        if kind == ActionType.CREATE_TIMER:
            canceled = bool(action.get("isCanceled"))
            task_id = self._timer(action["fireAt"], canceled)
            return _Node(kind, _NO_EVENT if canceled else self.facts.result_at.get(task_id))
        if kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            # The extension keeps a stack of waiters per name and hands a raised event to the
            # newest; an event no waiter took is queued and goes to the next waiter created
            # (DurableOrchestrationContext.WaitForExternalEvent/RaiseEvent). The SDK agrees:
            # TaskOrchestrationExecutor.set_task_value takes ``task_list.pop()``.
            name = action["externalEventName"].lower()
            node = _Node(kind)
            buffered = self._buffered.get(name)
            if buffered:
                node.at = buffered.popleft()
            else:
                self._waiters[name].append(node)
            return node
        if kind in (ActionType.WHEN_ANY, ActionType.WHEN_ALL):
            return _Node.compound(kind, [self._invoke(child)
                                         for child in action["compoundActions"]])
        if kind == ActionType.CONTINUE_AS_NEW:
            return _Node(kind, _NO_EVENT)
        what = {ActionType.CALL_ENTITY: "entity calls",
                ActionType.CALL_HTTP: "durable HTTP calls (call_http)",
                ActionType.SIGNAL_ENTITY: "entity signals"}
        raise OrchestrationError(f"devhost does not support {what.get(kind, f'action {kind}')}")

    def _next_event(self) -> int | None:
        """The position of the next event that changes anything: a raised event, or the result
        of a task a retried call waits for."""
        due = [self.facts.result_at[t] for t in self._retrying if t in self.facts.result_at]
        if self._next_raised < len(self.facts.raised):
            due.append(self.facts.raised[self._next_raised][0])
        return min(due, default=None)

    def _play(self, at: int) -> None:
        """Play the event(s) at position ``at``."""
        self.cursor = max(self.cursor, at)
        raised = self.facts.raised
        if self._next_raised < len(raised) and raised[self._next_raised][0] == at:
            name = raised[self._next_raised][1]
            self._next_raised += 1
            waiters = self._waiters.get(name)
            if waiters:
                waiters.pop().done(at)
            else:
                self._buffered[name].append(at)
        for task_id in [t for t, _ in self._retrying.items()
                        if self.facts.result_at.get(t) == at]:
            self._retry_step(self._retrying.pop(task_id), task_id, at)

    def run(self, action: dict[str, Any]) -> Position:
        """Invoke one top-level action and play events until it completes; the position by
        which it did, or None if the history ends first."""
        node = self._invoke(action)
        while True:
            done = node.at
            due = self._next_event()
            if done is not None and (due is None or done < due):
                self.cursor = max(self.cursor, done)
                return self.cursor
            if due is None:
                return None
            self._play(due)

    def finish(self) -> None:
        """Play the events left after the last action: retried calls the orchestrator no
        longer awaits (a lost task_any) go on, and take ids, as on the host."""
        due = self._next_event()
        while due is not None:
            self._play(due)
            due = self._next_event()


def _played(events: list[dict[str, Any]]) -> list[str]:
    return [dumps({**ev, "IsPlayed": True}) for ev in events]


def _parent_notice(inst: Instance, at: float, output: str | None = None,
                   failed: bool = False, reason: str | None = None) -> list[NewMessage]:
    """The completion message for the parent of a sub-orchestration (none for a root):
    SubOrchestrationInstanceCompleted with ``output``, or with ``failed``
    SubOrchestrationInstanceFailed with ``reason``. DTFx sends the Failed one for a Failed and
    for a Terminated child alike, the reason being the failure message or the terminate reason
    (``TaskOrchestrationDispatcher.ProcessWorkflowCompletedTaskDecision``)."""
    if inst.parent_instance_id is None:
        return []
    if not failed:
        ev = h.event(EventType.SUB_ORCHESTRATION_COMPLETED, at, -1,
                     TaskScheduledId=inst.parent_task_id, Result=output)
    else:
        ev = h.event(EventType.SUB_ORCHESTRATION_FAILED, at, -1,
                     TaskScheduledId=inst.parent_task_id, Reason=reason, Details=None)
    return [NewMessage(inst.parent_instance_id, "task", ev, at, inst.parent_execution_id,
                       inst.parent_task_id)]


def _base_commit(snap: Snapshot, status: RuntimeStatus, consumed: list[int]) -> EpisodeCommit:
    inst = snap.instance
    return EpisodeCommit(inst.instance_id, inst.execution_id, status, snap.at,
                         len(snap.history.texts), expected_status=inst.status, consumed=consumed)


def compute(app: LoadedApp, snap: Snapshot) -> Outcome:
    """The episode of ``snap``: one commit and the history it appends (see module docstring).

    Pure apart from advancing ``snap.history.facts`` (owned by the engine's cache, which drops
    the entry unless the commit succeeds) and drawing new execution ids. It writes no log line:
    what the orchestrator logs is held in :attr:`Outcome.run` for the engine to write.
    """
    inst, at = snap.instance, snap.at
    if snap.history.facts is None:
        snap.history.facts = Facts.of(snap.history.texts)
    current: list[Message] = []
    stale: list[int] = []
    for m in snap.messages:  # one pass: an inbox may hold thousands of messages
        if m.execution_id is None or m.execution_id == inst.execution_id:
            current.append(m)
        else:
            stale.append(m.msg_id)
    if inst.status in TERMINAL:
        return Outcome(_base_commit(snap, inst.status, [m.msg_id for m in snap.messages]), [])
    terminate = next((m for m in current if m.kind == "terminate"), None)
    if terminate is not None:
        return _terminate(snap, terminate)
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
            status = RuntimeStatus.RUNNING if snap.history.texts else RuntimeStatus.PENDING
        control_events.append(h.event(
            EventType.EXECUTION_SUSPENDED if suspend else EventType.EXECUTION_RESUMED,
            at, -1, Reason=m.payload.get("reason")))
    # ExecutionStarted first: after continue-as-new, events kept for the new execution are
    # older in the inbox than its start message.
    # Then in arrival order, as a queue delivers them: a timer message arrives when it is
    # due, so an event raised before that precedes the TimerFired in the same episode.
    deliver = sorted((m for m in current if m.kind not in _CONTROL),
                     key=lambda m: (m.kind != "start", m.visible_at))
    if status == RuntimeStatus.SUSPENDED or not deliver:
        # Suspended: everything but control messages waits in the inbox for a resume.
        texts = _played(control_events) if snap.history.texts else []
        commit = _base_commit(snap, status, consumed)
        commit.new_events = texts
        return Outcome(commit, texts)
    return _replay(app, snap, deliver, consumed, control_events)


def _terminate(snap: Snapshot, message: Message) -> Outcome:
    inst, at = snap.instance, snap.at
    reason = message.payload.get("reason")
    commit = _base_commit(snap, RuntimeStatus.TERMINATED, [m.msg_id for m in snap.messages])
    commit.new_events = _played([h.event(EventType.EXECUTION_TERMINATED, at, -1,
                                         Input=dumps(reason))])
    commit.output, commit.set_output = dumps(reason), True
    commit.dead_execution = inst.execution_id
    # The parent's call fails with the terminate reason (the text the client sent; devhost
    # keeps it parsed, so a JSON reason goes back to its compact text).
    commit.messages = _parent_notice(inst, at, failed=True, reason=reason if isinstance(
        reason, str) or reason is None else dumps(reason))
    return Outcome(commit, None)


def fail_commit(inst: Instance, history_length: int, messages: list[Message], at: float,
                reason: str) -> EpisodeCommit:
    """The commit that fails ``inst`` for a host-side reason without replaying it (the engine
    gave up on it): every visible message consumed, its execution's work and timers dropped,
    its parent told."""
    message = f"Orchestrator function '{inst.name}' failed: {reason}"
    commit = EpisodeCommit(
        inst.instance_id, inst.execution_id, RuntimeStatus.FAILED, at, history_length,
        expected_status=inst.status, consumed=[m.msg_id for m in messages],
        new_events=_played([h.event(EventType.EXECUTION_FAILED, at, -1, OrchestrationStatus=3,
                                    Result=dumps(message))]),
        output=dumps(message), set_output=True, dead_execution=inst.execution_id,
        messages=_parent_notice(inst, at, failed=True, reason=message))
    return commit


def _request(snap: Snapshot, new_texts: list[str]) -> str:
    """The orchestration trigger's JSON context, as the extension sends it."""
    inst, played = snap.instance, snap.history.texts
    return "".join((
        '{"history":[', ",".join(played + new_texts),
        '],"input":', inst.input if inst.input is not None else "null",
        ',"instanceId":', dumps(inst.instance_id),
        ',"isReplaying":', "true" if played else "false",
        ',"parentInstanceId":', dumps(inst.parent_instance_id), _CONTEXT_TAIL))


def _invoke(app: LoadedApp, inst: Instance, request: str
            ) -> tuple[dict[str, Any] | None, str | None, BaseException | None]:
    """Run the orchestrator through the SDK's entry point: (its state, its error if it failed,
    the user's exception if it raised one).

    Raises: OrchestrationError when the orchestrator function does not exist.
    """
    orchestrator = app.orchestrators.get(inst.name)
    if orchestrator is None:
        raise OrchestrationError(
            f"The function '{inst.name}' doesn't exist, is disabled, or is not an "
            f"orchestrator function.")
    state: dict[str, Any] | None = None
    try:
        state = json.loads(orchestrator.user_function(context=func.OrchestrationContext(request)))
    except Exception as exc:  # the user's orchestrator failed: OOProc error schema
        user_exc = exc.__cause__ or exc  # the SDK re-raises the user's exception "from" it
        head, sep, tail = str(exc).partition(_OOPROC_MARKER)
        if sep:
            try:
                state = json.loads(tail)
            except ValueError:
                state = None
        return state, (state or {}).get("error") or head or type(exc).__name__, user_exc
    return state, state.get("error") or None, None


def _walk(walk: _Walk, state: dict[str, Any]) -> tuple[dict[str, Any] | None, Position]:
    """Walk the actions; (the continue_as_new action if reached, the position by which every
    top-level action was complete). Raises: NonDeterminism, OrchestrationError."""
    can: dict[str, Any] | None = None
    done_at: Position = _NO_EVENT
    reached = _NO_EVENT
    for action in (state.get("actions") or [[]])[0]:
        if action.get("actionType") == ActionType.CONTINUE_AS_NEW:
            can = action
        at = walk.run(action)
        if at is None:
            done_at = None
            break
        reached = done_at = max(reached, at)
    walk.finish()
    # Run as far as the history allows, deterministic code reproduces at least every task an
    # earlier episode scheduled (the walk goes at least as far as it did then).
    walk.check_all_replayed()
    return can, done_at


def _replay(app: LoadedApp, snap: Snapshot, deliver: list[Message], consumed: list[int],
            control_events: list[dict[str, Any]]) -> Outcome:
    inst, at = snap.instance, snap.at
    facts = snap.history.facts
    assert facts is not None
    # ExecutionStarted must stay history[1], so control events go after the delivered ones.
    new_events = [h.event(EventType.ORCHESTRATOR_STARTED, at)]
    new_texts = [dumps(new_events[0])]
    facts.add(new_events[0])
    delivered_at: dict[int, int] = {}
    for m in deliver:
        new_events.append(m.payload)
        new_texts.append(m.text or dumps(m.payload))
        delivered_at[m.msg_id] = facts.add(m.payload)
    for ev in control_events:
        new_events.append(ev)
        new_texts.append(dumps(ev))
        facts.add(ev)
    walk = _Walk(app, inst, facts, at)
    state, error, user_exc = None, None, None
    can, done_at = None, None
    walked = False  # the walk invoked every action it reached without raising
    # Holds what the orchestrator logs (on this thread) until the engine writes the lines.
    invocation = hostlog.Invocation(inst.name, hostlog.DURABLE_REASON, inst.instance_id,
                                    defer=True)
    try:
        try:
            state, error, user_exc = _invoke(app, inst, _request(snap, new_texts))
        finally:
            invocation.detach()
        refusal = custom_status_refusal((state or {}).get("customStatus"))
        if refusal is not None:  # the status is not stored, the episode fails at once
            assert state is not None
            state = {k: v for k, v in state.items() if k != "customStatus"}
            error, user_exc, done_at = refusal, None, _NO_EVENT
        elif state is not None:
            # Also with an error: the extension invokes and awaits every action before it
            # fails the orchestration (OutOfProcOrchestrationShim.ScheduleDurableTaskEvents).
            can, done_at = _walk(walk, state)
            walked = True
    except (OrchestrationError, NonDeterminism) as exc:
        error, done_at = str(exc), _NO_EVENT
    run = Run(invocation, error, user_exc)

    commit = _base_commit(snap, RuntimeStatus.RUNNING, consumed + list(delivered_at))
    commit.new_work, commit.cancel_timers = walk.work, walk.cancel
    commit.messages, commit.children = walk.timers, walk.children
    if state is not None and "customStatus" in state:
        commit.custom_status, commit.set_custom_status = dumps(state["customStatus"]), True
    extra = walk.events
    done = state is not None and error is None and bool(state.get("isDone"))
    if done_at is None and state is not None:
        # The extension awaits the actions in order (Task.WhenAll waits for every child, also
        # after one failed) and only then fails, completes or continues the orchestration as
        # new: while one is incomplete the instance keeps running.
        error, done = None, False
    if error is not None or (done and can is None):
        if error is not None:
            message = f"Orchestrator function '{inst.name}' failed: {error}"
            commit.status = RuntimeStatus.FAILED
            commit.output = dumps(message)
            extra = extra + [h.event(EventType.EXECUTION_FAILED, at, -1, OrchestrationStatus=3,
                                     Result=commit.output)]
            commit.messages = _parent_notice(inst, at, failed=True, reason=message)
        else:
            assert state is not None
            commit.status = RuntimeStatus.COMPLETED
            commit.output = dumps(state.get("output"))
            extra = extra + [h.event(EventType.EXECUTION_COMPLETED, at, -1,
                                     OrchestrationStatus=1, Result=commit.output)]
            commit.messages = _parent_notice(inst, at, output=commit.output)
        commit.set_output = True
        commit.cancel_timers = []
        if not walked:
            commit.new_work, commit.children = [], []
        # Else what this last episode scheduled still happens: DTFx carries out every action of
        # the episode that completes or fails the orchestration (TaskOrchestrationDispatcher
        # sends its activity and sub-orchestration messages too; a timer would only reach a
        # finished instance). Their results find the instance finished.
        commit.dead_execution = inst.execution_id
    elif done and can is not None:
        return Outcome(_continue_as_new(snap, commit, can, deliver, delivered_at, done_at),
                       None, replayed=True, run=run)
    texts = [_as_played(t) for t in new_texts] + _played(
        extra + [h.event(EventType.ORCHESTRATOR_COMPLETED, at)])
    commit.new_events = texts
    return Outcome(commit, None if commit.dead_execution else texts, replayed=True, run=run)


def _continue_as_new(snap: Snapshot, commit: EpisodeCommit, can: dict[str, Any],
                     deliver: list[Message], delivered_at: dict[int, int],
                     done_at: Position) -> EpisodeCommit:
    inst, at = snap.instance, snap.at
    execution_id = h.new_execution_id()
    stored_input = None if can.get("input") is None else dumps(can["input"])
    commit.status = RuntimeStatus.CONTINUED_AS_NEW
    commit.reset_history = True
    commit.new_execution_id, commit.new_input = execution_id, stored_input
    commit.messages = [NewMessage(inst.instance_id, "start", h.execution_started(
        inst.name, inst.instance_id, execution_id, stored_input, at), at, execution_id)]
    # DTFx sends no activity or timer message of the episode that continues as new, but does
    # start the sub-orchestrations it created (TaskOrchestrationDispatcher passes
    # ``continuedAsNew ? null : messagesToSend`` and always ``subOrchestrationMessages``);
    # their results find the next execution and are dropped.
    commit.new_work, commit.cancel_timers = [], []
    commit.dead_execution = inst.execution_id
    # Raised events that arrived after the generation had finished are the next one's: they
    # stay in the inbox (DTFx carries them over); the ones it had a chance to see are dropped.
    finished_at = _NO_EVENT if done_at is None else done_at
    carried = {m.msg_id for m in deliver
               if m.kind == "event" and delivered_at[m.msg_id] > finished_at}
    commit.consumed = [m for m in commit.consumed if m not in carried]
    return commit
