"""The reference: a direct interpreter of a fuzz program and its schedule under the host's rules.

It does not replay anything and imports neither devhost nor the SDK: it runs each orchestration
forward once on a virtual timeline (a queue of messages ordered by the time they become
visible) and applies, at each message, the rule the real host (the Durable extension over DTFx,
with the Python SDK as the out-of-process orchestrator) documents for it. Each rule names its
source. The programs are those of ``tests/fuzz/app/function_app.py`` (see its docstring).

What it returns (:class:`Outcome`) is what a client sees at the end: the root instance's runtime
status, output and custom status, plus how many results each activity call produced.

Two messages for one instance that become visible at the same instant, when at least one of them
was due at a time decided earlier (a timer, an activity's duration, the schedule), have no
order the host promises; the reference reports such a program as ``ambiguous`` and the runner
does not compare it.
"""
from __future__ import annotations

import heapq
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Iterator

#: Long timers: the SDK splits a timer longer than ``maximumShortTimerDuration`` (6 days, sent
#: by the extension) into ``longRunningTimerIntervalDuration`` (3 days) pieces
#: (azure-functions-durable-python ``LongTimerTask``): the first piece is inside the yielded
#: action, each later one is created when the previous fires and appended as a new top-level
#: action (``add_new_child`` -> ``_add_to_actions``), so the extension awaits it only after
#: the actions yielded before it.
#: Custom status cap: the extension fails the orchestration when the serialized custom status
#: exceeds ``MaxCustomStatusPayloadSizeInKB`` (16 KB, counted in UTF-16 bytes)
#: (azure-functions-durable-extension ``DurableOrchestrationContext.SetCustomStatus``).
MAX_CUSTOM_STATUS_BYTES = 16 * 1024
MAX_SHORT_TIMER = 6 * 86400.0
LONG_TIMER_INTERVAL = 3 * 86400.0
TERMINAL = ("Completed", "Failed", "Terminated")


@dataclass
class Outcome:
    status: str
    output: Any
    custom_status: Any
    #: Results committed per activity call key (instance/k): each call's attempts.
    results: dict[str, int]
    ambiguous: str | None = None


class Ambiguous(Exception):
    """Two messages with no promised order reached one instance at the same instant."""


class Unmodelled(Ambiguous):
    """The SDK and DTFx numbered the orchestration's tasks differently: no result is defined.

    The SDK numbers a task when the orchestrator yields it (a long timer's next piece when the
    previous one fires); DTFx numbers it when the extension invokes the action, after awaiting
    the ones before it; both number a retry's timer and re-attempt when the failure or timer is
    processed. When the orchestrator has moved past an action the extension still awaits (a
    caught ``task_all`` failure, a lost ``task_any``) and a retry inside it takes numbers
    meanwhile, the two sequences differ and the SDK matches results to the wrong tasks, on the
    host as on devhost."""


@dataclass
class Task:
    """One task of an orchestration: a leaf (act, timer, wait, sub) or a composite (any, all)."""

    x: dict[str, Any]
    parent: Task | None = None
    children: list[Task] = field(default_factory=list)
    done: bool = False
    ok: bool = True
    value: Any = None
    attempt: int = 0  # retries: attempts made so far
    created: float = 0.0  # the orchestrator's clock when it created the task
    host_done: bool = False  # waits: the extension's own waiter received an event
    reached: bool = False  # the extension invoked this top-level action
    pieces: list[Task] = field(default_factory=list)  # a long timer's pieces
    owner: Task | None = None  # a piece's long timer

    @property
    def kind(self) -> str:
        return self.x["e"]


@dataclass(order=True)
class Message:
    at: float
    seq: int
    iid: str = field(compare=False)
    kind: str = field(compare=False)
    data: dict[str, Any] = field(compare=False)
    #: Due at a time decided before it was sent (timer, activity duration, schedule): may race.
    racy: bool = field(default=False, compare=False)
    origin: int = field(default=0, compare=False)


@dataclass
class Instance:
    iid: str
    program: dict[str, Any]
    parent: tuple[str, int, Task] | None  # (parent id, parent execution, its task)
    status: str = "Pending"
    gen: int = 0
    execution: int = 0
    acc: list[Any] = field(default_factory=list)
    output: Any = None
    custom: Any = None
    runner: Iterator[Task] | None = None
    awaiting: Task | None = None
    waiters: dict[str, list[Task]] = field(default_factory=dict)
    buffered: dict[str, Any] = field(default_factory=dict)
    held: list[Message] = field(default_factory=list)
    #: The extension's side: top-level actions (one per yield) in order, how many it has
    #: awaited to completion, its own event waiters (a stack per name) and buffered events (a
    #: queue per name), and how the orchestrator ended once every action is awaited.
    actions: list[Task] = field(default_factory=list)
    reached: int = 0
    host_waiters: dict[str, list[Task]] = field(default_factory=dict)
    host_buffered: dict[str, list[Any]] = field(default_factory=dict)
    ending: tuple[str, Any] | None = None
    #: The custom status the SDK reports at the end of each episode (if it set one).
    sdk_custom: Any = None
    sdk_custom_set: bool = False
    #: What the SDK and DTFx each numbered, in order (see :class:`Unmodelled`).
    sdk_ids: list[tuple] = field(default_factory=list)
    host_ids: list[tuple] = field(default_factory=list)


class Reference:
    """Interprets one case: ``{"prog": program, "sched": [[t, verb, ...], ...]}``."""

    def __init__(self, case: dict[str, Any], root: str = "fz") -> None:
        self.case, self.root = case, root
        self.queue: list[Message] = []
        self.seq = itertools.count()
        self.origins = itertools.count(1)
        self.instances: dict[str, Instance] = {}
        self.attempts: dict[str, int] = {}
        self._made: dict[str, int] = {}  # attempts started per activity call key
        self.now = 0.0
        self.origin = 0  # the causal step now running (an episode, a schedule entry)

    # ---- the timeline --------------------------------------------------------------------------

    def send(self, at: float, iid: str, kind: str, racy: bool = False, **data: Any) -> None:
        # An activity's result arrives when the activity is done, whatever sent it: each one
        # is its own origin (two finishing at one instant have no order).
        origin = next(self.origins) if kind == "act" else self.origin
        heapq.heappush(self.queue, Message(max(at, self.now), next(self.seq), iid, kind, data,
                                           racy and (at > self.now or kind == "act"), origin))

    def run(self, horizon: float = 40 * 86400.0) -> Outcome:
        self.instances[self.root] = Instance(self.root, self.case["prog"], None)
        self.send(0.0, self.root, "start")
        for entry in self.case.get("sched", []):
            at, verb, *args = entry
            target = args[0] if verb in ("suspend", "resume", "terminate") and args else None
            if verb == "raise":
                target = args[2] if len(args) > 2 else self.root
                self.send(at, target, "event", racy=True, name=args[0], payload=args[1])
            else:
                self.send(at, target or self.root, verb, racy=True,
                          reason=f"fuzz {verb} at {at}")
            self.origin = next(self.origins)
        try:
            while self.queue and self.queue[0].at <= horizon:
                m = heapq.heappop(self.queue)
                self._check_tie(m)
                self.now = m.at
                self.origin = next(self.origins)
                self._receive(m)
            for inst in self.instances.values():
                self._check_numbers(inst)
        except Ambiguous as exc:
            return Outcome("", None, None, {}, ambiguous=str(exc))
        root = self.instances[self.root]
        return Outcome(root.status, root.output, root.custom, dict(self.attempts))

    def _check_tie(self, m: Message) -> None:
        for other in self.queue:
            if (other.at == m.at and other.iid == m.iid and other.origin != m.origin
                    and (other.racy or m.racy)):
                raise Ambiguous(f"{m.kind} and {other.kind} reach {m.iid} at t={m.at}")

    # ---- host rules per message ----------------------------------------------------------------

    def _receive(self, m: Message) -> None:
        inst = self.instances.get(m.iid)
        if inst is None:
            return  # a control request for an instance not (yet) created: 404, nothing queued
        if inst.status in TERMINAL:
            # Messages to a completed, failed or terminated instance are discarded (DTFx
            # TaskOrchestrationDispatcher: no runtime state is loaded for a finished instance).
            return
        if m.kind == "terminate":
            # Terminate ends a running or suspended instance at once; its output is the reason
            # (DTFx ExecutionTerminatedEvent; extension TerminateAsync). Children keep running.
            self._finish(inst, "Terminated", m.data["reason"], failed=None, terminated=True)
            return
        if m.kind == "suspend":
            # Suspend: the status is Suspended and every other message waits until a resume
            # (DTFx ExecutionSuspendedEvent; TaskOrchestrationDispatcher keeps them unprocessed).
            if inst.status in ("Running", "Pending"):
                inst.status = "Suspended"
            return
        if m.kind == "resume":
            if inst.status == "Suspended":
                inst.status = "Running"
                held, inst.held = inst.held, []
                # Delivered in the order they arrived (the queue's order).
                for h in held:
                    if inst.status in TERMINAL or inst.status == "Suspended":
                        inst.held.append(h)
                        continue
                    self._deliver(inst, h)
                    self._advance_host(inst)
            return
        if inst.status == "Suspended":
            inst.held.append(m)
            return
        self._deliver(inst, m)
        self._advance_host(inst)

    def _deliver(self, inst: Instance, m: Message) -> None:
        if m.kind == "start":
            self._start_generation(inst)
            return
        if m.kind == "event":
            self._event(inst, m.data["name"], m.data["payload"])
            return
        if m.data.get("execution") != inst.execution:
            return  # addressed to an execution that continued as new: dropped (DTFx)
        task: Task = m.data["task"]
        if m.kind == "act":
            self.attempts[m.data["key"]] = self.attempts.get(m.data["key"], 0) + 1
            self._attempt_done(inst, task, m.data["ok"], m.data["value"])
        elif m.kind == "child":
            self._attempt_done(inst, task, m.data["ok"], m.data["value"])
        elif m.kind == "timer" and task.owner is not None:
            task.done = True
            self._piece_fired(inst, task.owner)
        elif m.kind == "timer":
            self._complete(inst, task, True, "t")
        elif m.kind == "retry":
            self._number(inst, ("again", id(task), task.attempt))
            self._attempt(inst, task)
        elif m.kind == "giveup":
            self._complete(inst, task, False, task.value)

    def _number(self, inst: Instance, key: tuple) -> None:
        """A retry's timer or re-attempt: DTFx numbers it as the failure or timer is processed,
        and so does the SDK while it still reads history."""
        inst.host_ids.append(key)
        if inst.ending is None:
            inst.sdk_ids.append(key)

    @staticmethod
    def _check_numbers(inst: Instance) -> None:
        n = min(len(inst.sdk_ids), len(inst.host_ids))
        if inst.sdk_ids[:n] != inst.host_ids[:n]:
            raise Unmodelled(f"unmodelled: the SDK and DTFx number the tasks of {inst.iid} "
                             f"differently (a retry runs in an action the orchestrator left)")

    def _piece_fired(self, inst: Instance, timer: Task) -> None:
        """SDK LongTimerTask.try_set_value: the next piece (3 days on, or the final instant
        once it is no more than 6 days away) is a new top-level action; after the final
        instant the timer is done. Nothing once the orchestrator has returned."""
        if inst.ending is not None:
            return
        fire_at = timer.created + timer.x["d"]
        if fire_at > self.now:
            at = self.now + LONG_TIMER_INTERVAL if fire_at - self.now > MAX_SHORT_TIMER \
                else fire_at
            piece = Task({"e": "piece", "at": at}, owner=timer, created=self.now)
            timer.pieces.append(piece)
            inst.actions.append(piece)
            inst.sdk_ids.append(("task", id(piece)))
        else:
            self._complete(inst, timer, True, "t")

    def _event(self, inst: Instance, name: str, payload: Any) -> None:
        # The newest open waiter of the name gets the event: the SDK keeps waiters of one name
        # in a list and takes ``task_list.pop()`` (azure-functions-durable-python
        # TaskOrchestrationExecutor.set_task_value). With no waiter the SDK defers it under
        # its name: a later event of that name replaces it, and it is never removed, so every
        # later waiter of the name receives it at once (DurableOrchestrationContext.
        # _add_to_open_tasks applies ``deferred_tasks[name]``).
        # The extension matches it to its own waiters for the await of its replay: the newest
        # open one (a stack), else it queues the event and the next waiter dequeues it, first
        # in first out (extension DurableOrchestrationContext.RaiseEvent /
        # WaitForExternalEvent: pendingExternalEvents, bufferedExternalEvents).
        host_stack = inst.host_waiters.get(name)
        if host_stack:
            host_stack.pop().host_done = True
        else:
            inst.host_buffered.setdefault(name, []).append(payload)
        self._sdk_event(inst, name, payload)

    def _sdk_event(self, inst: Instance, name: str, payload: Any) -> None:
        stack = inst.waiters.get(name)
        if stack:
            self._complete(inst, stack.pop(), True, payload)
        else:
            inst.buffered[name] = payload

    # ---- tasks ---------------------------------------------------------------------------------

    def _build(self, inst: Instance, x: dict[str, Any], parent: Task | None = None) -> Task:
        task = Task(x, parent)
        if x["e"] in ("any", "all"):
            task.children = [self._build(inst, c, task) for c in x["of"]]
        return task

    def _open(self, inst: Instance, task: Task) -> None:
        """The SDK side of a yield: its waiters join the SDK's open tasks, depth first in order
        (DurableOrchestrationContext._add_to_open_tasks); the task is the next action."""
        if task.children:
            for child in task.children:
                self._open(inst, child)
            return
        task.created = self.now
        if task.kind != "wait":
            inst.sdk_ids.append(("task", id(task)))
        if task.kind == "wait":
            inst.waiters.setdefault(task.x["n"], []).append(task)
            if task.x["n"] in inst.buffered:
                self._sdk_event(inst, task.x["n"], inst.buffered[task.x["n"]])

    def _reach(self, inst: Instance, task: Task) -> None:
        """The extension invokes a top-level action: schedules its leaves, depth first."""
        if task.children:
            for child in task.children:
                self._reach(inst, child)
            return
        kind = task.kind
        if kind != "wait":
            inst.host_ids.append(("task", id(task)))
        if kind == "timer" and task.x["d"] > MAX_SHORT_TIMER:
            piece = Task({"e": "piece", "at": task.created + LONG_TIMER_INTERVAL},
                         owner=task, created=task.created)
            task.pieces.append(piece)
            self.send(piece.x["at"], inst.iid, "timer", racy=True, execution=inst.execution,
                      task=piece)
        elif kind == "piece":
            self.send(task.x["at"], inst.iid, "timer", racy=True, execution=inst.execution,
                      task=task)
        elif kind == "timer":
            # Fires at the time the orchestrator asked for (its clock when it created the
            # timer, plus the length); one in the past fires at once (DTFx timer message).
            self.send(task.created + task.x["d"], inst.iid, "timer", racy=True,
                      execution=inst.execution, task=task)
        elif kind == "wait":
            queue = inst.host_buffered.get(task.x["n"])
            if queue:
                queue.pop(0)
                task.host_done = True
            else:
                inst.host_waiters.setdefault(task.x["n"], []).append(task)
        elif kind == "sub" and task.x["id"] == "=":
            # A sub-orchestration with its caller's own id: the extension throws
            # ArgumentException as the action is invoked, which fails the caller
            # (DurableOrchestrationContext.CallDurableTaskFunctionAsync; the shim lets what
            # InvokeAPIFromAction throws surface).
            self._finish(inst, "Failed", None, failed="unmarked")
        else:
            self._attempt(inst, task)

    def _host_done(self, task: Task) -> bool:
        """Whether the extension's await of the action is over: Task.WhenAny needs one child,
        Task.WhenAll every child, failed or not."""
        if task.kind == "any":
            return any(self._host_done(c) for c in task.children)
        if task.kind == "all":
            return all(self._host_done(c) for c in task.children)
        if task.pieces:
            return task.pieces[0].done
        return task.host_done if task.kind == "wait" else task.done

    def _advance_host(self, inst: Instance) -> None:
        """The extension's replay of the actions: it invokes the top-level actions in order and
        awaits each one before invoking the next (OutOfProcOrchestrationShim.
        ProcessAsyncActionsV2, exceptions swallowed); only once every action is awaited does it
        fail the orchestration with the SDK's error, complete it with the SDK's output or
        continue it as new (ScheduleDurableTaskEvents)."""
        if inst.sdk_custom_set and inst.status not in TERMINAL:
            # First the custom status the SDK reports for the episode (its last value): one
            # over the cap fails the orchestration before any action is invoked, and is not
            # stored (ScheduleDurableTaskEvents calls SetCustomStatus first).
            if 2 * len(json.dumps(inst.sdk_custom)) > MAX_CUSTOM_STATUS_BYTES:
                self._finish(inst, "Failed", None, failed="unmarked")
                return
            inst.custom = inst.sdk_custom
        while inst.reached < len(inst.actions) and inst.status not in TERMINAL:
            action = inst.actions[inst.reached]
            if not action.reached:
                action.reached = True
                self._reach(inst, action)
            if not self._host_done(action):
                return
            inst.reached += 1
        if inst.ending is not None and inst.status not in TERMINAL:
            how, value = inst.ending
            inst.ending = None
            if how == "can":
                self._continue_as_new(inst)
            elif how == "Failed":
                self._finish(inst, "Failed", None, failed=value)
            else:
                self._finish(inst, "Completed", value, failed=None)

    def _attempt(self, inst: Instance, task: Task) -> None:
        """Schedule one attempt of an activity or sub-orchestration."""
        x = task.x
        if x["e"] == "act":
            key = f"{inst.iid}/{x['k']}"
            made = self._made.get(key, 0)
            self._made[key] = made + 1
            fails = x["f"][min(made, len(x["f"]) - 1)]
            value = f"boom[{x['k']}#{made}]" if fails else {"k": x["k"], "n": made, "v": x["v"]}
            self.send(self.now + x["d"], inst.iid, "act", racy=True, execution=inst.execution,
                      task=task, key=key, ok=not fails, value=value)
        else:
            child_id = (f"{inst.iid}-{x['id']}" if x["id"] is not None
                        else f"{inst.iid}:{x['k']}:{task.attempt}")
            self.instances[child_id] = Instance(child_id, x["p"],
                                                (inst.iid, inst.execution, task))
            self.send(self.now, child_id, "start")

    def _attempt_done(self, inst: Instance, task: Task, ok: bool, value: Any) -> None:
        retry = task.x.get("r")
        if ok or not retry:
            self._complete(inst, task, ok, value)
            return
        task.attempt += 1
        self._number(inst, ("timer", id(task), task.attempt))
        first_ms, max_attempts = retry
        if task.attempt >= max_attempts:
            # The last attempt failed: the failure surfaces now. DTFx RetryInterceptor (since
            # Azure/durabletask#661) creates no delay after the last attempt; the SDK's
            # RetryAbleTask still waits for that (zero-length) timer before failing.
            task.value = value
            self.send(self.now, inst.iid, "giveup", execution=inst.execution, task=task)
            return
        # DTFx RetryInterceptor: the retry timer is created when the failure is processed,
        # firing after firstRetryInterval * backoffCoefficient^(attempt-1) (the Python SDK's
        # RetryOptions has coefficient 1).
        self.send(self.now + first_ms / 1000.0, inst.iid, "retry", racy=True,
                  execution=inst.execution, task=task)

    def _complete(self, inst: Instance, task: Task, ok: bool, value: Any) -> None:
        if task.done:
            return
        task.done, task.ok, task.value = True, ok, value
        parent = task.parent
        if parent is not None and parent.done and parent.kind == "all" and not parent.ok \
                and ok and parent.parent is not None and all(c.done for c in parent.children) \
                and inst.ending is None:
            # SDK quirk: a task_all that failed sets its value again when its last child
            # succeeds, and tells its own parent (a task_any/task_all) a second time, which
            # raises "Parent Task ... completed twice": the orchestrator fails
            # (azure-functions-durable-python WhenAllTask.try_set_value, CompoundTask.
            # handle_completion). Not once the orchestrator has returned or raised: the SDK stops
            # reading history there (TaskOrchestrationExecutor.execute).
            # The exception escapes the SDK without the orchestrator's state, so the
            # extension fails the orchestration at once, without awaiting its actions
            # (TaskOrchestrationShim: no $OutOfProcData$ in the failure).
            self._finish(inst, "Failed", None, failed="unmarked")
            return
        if parent is not None and not parent.done:
            if parent.kind == "any":
                # task_any completes with the first child to complete, failed or not (SDK
                # WhenAnyTask.try_set_value).
                self._complete(inst, parent, True, task)
            elif not ok:
                # task_all fails with the first child's failure (SDK WhenAllTask.try_set_value).
                self._complete(inst, parent, False, value)
            elif all(c.done for c in parent.children):
                self._complete(inst, parent, True, None)
        if task is inst.awaiting:
            inst.awaiting = None
            self._advance(inst)

    # ---- the orchestrator ----------------------------------------------------------------------

    def _start_generation(self, inst: Instance) -> None:
        if inst.status == "Pending":
            inst.status = "Running"
        inst.runner = self._interpret(inst, inst.gen)
        self._advance(inst)

    def _advance(self, inst: Instance) -> None:
        """Run the orchestrator until it waits for an incomplete task or ends."""
        runner = inst.runner
        while runner is not None and inst.runner is runner:
            try:
                task = next(runner)
            except StopIteration:
                return
            self._open(inst, task)
            inst.actions.append(task)
            if not task.done:
                inst.awaiting = task
                return

    def _interpret(self, inst: Instance, gen: int) -> Iterator[Task]:
        for st in inst.program["gens"][gen]:
            kind = st["t"]
            if kind == "cs":
                inst.sdk_custom, inst.sdk_custom_set = st["v"], True
                inst.acc.append("cs")
            elif kind == "raise":
                inst.ending = ("Failed", f"boom[{st['k']}]")
                return
            elif kind == "can":
                inst.ending = ("can", None)
                return
            else:
                task = self._build(inst, st["x"])
                yield task
                if not task.ok:
                    if not st["catch"]:
                        inst.ending = ("Failed", _marker(task.value))
                        return
                    inst.acc.append(["err", _marker(task.value)])
                    continue
                inst.acc.append(_value(task))
        inst.ending = ("Completed", inst.acc)

    def _continue_as_new(self, inst: Instance) -> None:
        # A new execution starts with the carried input; events it had buffered die with the
        # old one (the extension's shim continues with preserveUnprocessedEvents=false), events
        # arriving later reach the new execution (DTFx BehaviorOnContinueAsNew.Carryover), and
        # results addressed to the old execution are dropped.
        self._check_numbers(inst)
        inst.sdk_ids, inst.host_ids = [], []
        inst.gen += 1
        inst.execution += 1
        inst.waiters, inst.buffered, inst.awaiting = {}, {}, None
        inst.actions, inst.reached, inst.host_waiters, inst.host_buffered = [], 0, {}, {}
        inst.sdk_custom, inst.sdk_custom_set = None, False
        inst.runner = None
        self.send(self.now, inst.iid, "start")

    def _finish(self, inst: Instance, status: str, output: Any, failed: str | None,
                terminated: bool = False) -> None:
        inst.status = status
        inst.output = failed if failed is not None else output
        inst.runner, inst.awaiting, inst.held = None, None, []
        if inst.parent is not None:
            # The parent hears of a completed, failed or terminated child; a terminated one
            # fails the parent's call as a failed one does (DTFx sends
            # SubOrchestrationInstanceFailed for a Terminated child).
            parent_id, execution, task = inst.parent
            ok = status == "Completed"
            value = output if ok else (failed or "unmarked")
            self.send(self.now, parent_id, "child", execution=execution, task=task, ok=ok,
                      value=value)


def _marker(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    start = text.find("boom[")
    return text[start:text.index("]", start) + 1] if start >= 0 else "unmarked"


def _value(task: Task) -> Any:
    """The trace value the app appends for a completed task (see the app's ``_value``)."""
    if not task.ok:
        return ["err", _marker(task.value)]
    if task.kind == "any":
        winner: Task = task.value
        return ["any", task.children.index(winner), _value(winner)]
    if task.kind == "all":
        return [_value(c) for c in task.children]
    if task.kind == "timer":
        return "t"
    return task.value


def interpret(case: dict[str, Any], root: str = "fz", horizon: float = 40 * 86400.0
              ) -> Outcome:
    """The outcome the host's rules give for ``case`` once ``horizon`` seconds have passed (see
    module docstring)."""
    return Reference(case, root).run(horizon)
