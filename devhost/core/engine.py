"""Runs orchestrations by replay and activities, the way the Durable extension does.

An *episode* delivers every visible inbox message of one instance: the engine reads a
:class:`~devhost.core.episode.Snapshot` (instance row, history, messages) in one consistent view,
:func:`devhost.core.episode.compute` turns it into one commit (a pure function: the SDK replay and the
action walk), and a *drain* applies the commits of up to ``BATCH`` episodes in one transaction.

Guarantees:
- Orchestrator code never runs on the HTTP loop: every episode is computed on an orchestrator
  thread (:meth:`Engine._on_thread`), the ready ones one after another on one thread (one
  thread hop per batch, :class:`_Batch`); the loop waits for them, blocked, while the running
  one has taken less than ``SYNC_SECONDS`` (not at all for a long history, ``offload_events``
  events or more), then serves requests while it runs, and past ``DETACH_SECONDS`` lets it run
  on alone (committed when it ends) and goes on with the episodes after it. A drain yields to
  the loop after every ``YIELD_SECONDS`` of episode work and after every batch (an instance
  that continues as new forever takes turns with requests). Commits and all store
  access stay on the loop thread. Two episodes of one instance never overlap.
- ``functionTimeout`` (host.json, :mod:`devhost.app.invocations`) ends a stuck episode as the host
  does: nothing of it is committed, its thread is interrupted, and it runs again once that
  thread has ended (a thread that never ends is abandoned; shutdown never waits for it).
- A Suspended instance's episode reads only its control messages: each raise to it costs the
  same however many wait.
- Activities are at least once: a work row lives until its result is committed, and every row
  left by a crash or cut by the shutdown grace period is dispatched again on start.
- Every orchestrator episode and activity call logs the host's ``Executing``/``Executed`` lines
  (:mod:`devhost.app.hostlog`). An episode's lines are written once its commit is durable, on the
  loop thread, with what the orchestrator logged between them; an episode whose commit did not
  apply (a conflict, a failed commit) logs nothing, since it is computed again.
- Timers, inbox messages and work survive restarts; :meth:`Engine.recover` re-arms them.
- Optimistic concurrency (other workers of ``--workers N``, or HTTP calls while an episode is
  computed): a commit applies only if the instance still has the execution, status and history
  length the episode read and its messages are still there; otherwise nothing is written and the
  episode is rerun at once from the current state (an event is never delivered twice or lost).
- An episode or commit that keeps failing (a devhost bug, a corrupt row) is retried
  ``MAX_ATTEMPTS`` times, a second apart, then the instance is failed with the reason (logged).
- Memory is bounded by bytes: cached histories by ``cache_bytes``; the timer heap holds about
  twice the number of instances with a pending timer (cancelled timers' entries are compacted away).
"""
from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import heapq
import logging
import math
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from devhost.app import failures, hostlog, invocations
from devhost.app.loader import LoadedApp
from devhost.app.status import TERMINAL, RuntimeStatus
from devhost.core import episode, hold, history as h
from devhost.core.episode import History, Outcome, Snapshot
from devhost.core.history import EventType
from devhost.core.store import EpisodeCommit, EpisodeConflict, Instance, NewMessage, Store, WorkItem

log = logging.getLogger("devhost.engine")

#: Episodes computed per drain before their commits are applied together.
BATCH = 64
#: A drain yields to the event loop after this much episode work.
YIELD_SECONDS = 0.005
#: Histories this long (events) are replayed without the loop waiting for them at all.
OFFLOAD_EVENTS = 400
#: How long the loop waits, blocked, for an episode's thread before it lets the episode run
#: on alone and goes back to serving (see Engine._compute_short).
SYNC_SECONDS = 0.005
#: How long a drain awaits an episode (serving requests meanwhile) before it lets the episode
#: run on alone and goes on with the next ones: long replays are awaited one at a time (two at
#: once would only contend for the GIL), a blocked orchestrator holds the others this long.
DETACH_SECONDS = 0.5
#: The GIL switch interval while an episode runs off the loop (see Engine._slow_changed).
REPLAY_SWITCH_INTERVAL = 0.0005
#: Threads running orchestrator episodes (the Python worker's sync thread pool is as large).
ORCHESTRATOR_THREADS = 32
#: An episode still running after this long is logged as stuck (once).
STUCK_SECONDS = 10.0
#: Cached history bytes (least recently used histories are dropped beyond it).
CACHE_BYTES = 64 * 1024 * 1024
#: Failed tries of one instance's episode or commit before it is failed for good.
MAX_ATTEMPTS = 5
RETRY_SECONDS = 1.0
#: The timer heap is compacted when it grows past twice its live size, and never below this.
WAKEUP_FLOOR = 1024


def _pure_replay(inst: Instance, commit: EpisodeCommit) -> bool:
    """The episode only replayed: it leaves the instance Running and waiting as before (nothing
    scheduled, cancelled or sent, the same custom status). Its log lines go to Debug."""
    return (inst.status == RuntimeStatus.RUNNING and commit.status == RuntimeStatus.RUNNING
            and not (commit.new_work or commit.messages or commit.children
                     or commit.cancel_timers or commit.reset_history)
            and (not commit.set_custom_status or commit.custom_status == inst.custom_status))


class _Episode:
    """One orchestrator episode computed on a thread of the engine's pool: which thread runs
    it (to interrupt it at ``functionTimeout``), when it began, whether it was abandoned, and
    once ``finished`` its ``outcome`` or ``error``. Plain fields, not a future each (futures
    were a twentieth of a lifecycle's CPU): the loop reads them once ``finished`` is set, and
    asks for a ``waiter`` future only for an episode it awaits (:meth:`Engine._await_alone`)."""

    __slots__ = ("snap", "thread", "lock", "abandoned", "began", "timers", "finished",
                 "outcome", "error", "waiter")

    def __init__(self, snap: Snapshot) -> None:
        self.snap = snap
        self.thread: int | None = None
        self.lock = threading.Lock()
        self.abandoned = False
        self.began = time.monotonic()
        self.timers: list[asyncio.TimerHandle] = []
        self.finished = False
        self.outcome: Outcome | None = None
        self.error: BaseException | None = None
        self.waiter: concurrent.futures.Future[None] | None = None

    def run(self, app: LoadedApp) -> None:
        """Compute the episode on the calling thread and record how it ended."""
        with self.lock:
            self.thread = threading.get_ident()
        outcome: Outcome | None = None
        error: BaseException | None = None
        try:
            outcome = episode.compute(app, self.snap)
        except BaseException as exc:  # an interrupt at functionTimeout too: the loop decides
            error = exc
        while True:
            try:
                self.finish(outcome, error)
                return
            except BaseException as exc:  # an interrupt that landed late: delivered now
                error = error or exc

    def finish(self, outcome: Outcome | None, error: BaseException | None) -> None:
        """Record the end (the first one given) and wake the loop if it awaits this episode.
        Safe to call again (after an interrupt that landed in here)."""
        with self.lock:
            if not self.finished:
                self.thread = None
                self.outcome, self.error, self.finished = outcome, error, True
            waiter = self.waiter
        if waiter is not None and not waiter.done():
            try:
                waiter.set_result(None)
            except concurrent.futures.InvalidStateError:
                pass  # set meanwhile: the loop is woken either way


class _Batch:
    """Episodes computed one after another on one orchestrator thread: a batch costs one
    thread hop, not one per episode (the hop, two thread wake-ups, was about a sixth of a
    lifecycle's CPU). The thread starts no further episode once ``stop`` is set or once it
    has worked ``budget`` seconds (the loop then takes a turn before the rest); ``started``
    counts the episodes it took, in order, and ``current`` is the one it runs now."""

    __slots__ = ("jobs", "budget", "lock", "stop", "started", "current")

    def __init__(self, jobs: list[_Episode], budget: float) -> None:
        self.jobs, self.budget = jobs, budget
        self.lock = threading.Lock()
        self.stop = False
        self.started = 0
        self.current: _Episode | None = None

    def run(self, app: LoadedApp) -> None:
        began = time.perf_counter()
        for job in self.jobs:
            with self.lock:
                if self.stop or (self.started and time.perf_counter() - began > self.budget):
                    return
                self.started += 1
                self.current = job
                job.began = time.monotonic()
            job.run(app)
            with self.lock:
                self.current = None


class Engine:
    """Drives every instance of one store (see module docstring for guarantees)."""

    def __init__(self, store: Store, app: LoadedApp, *, clock: Callable[[], float] = h.now,
                 max_activities: int = 32, cache_bytes: int = CACHE_BYTES,
                 offload_events: int = OFFLOAD_EVENTS, wakeup_floor: int = WAKEUP_FLOOR) -> None:
        self.store, self.app, self._clock = store, app, clock
        self.shared = store.shared
        # Start from the latest time already recorded, not 0: if the wall clock stepped back
        # while devhost was down, new OrchestratorStarted events must still not precede the
        # ones in the histories (the SDK needs them non-decreasing).
        self._last_time = store.latest_time()
        self._cache: collections.OrderedDict[str, History] = collections.OrderedDict()
        self._cache_limit, self._cache_bytes = cache_bytes, 0
        self._offload_events = offload_events
        self._ready: dict[str, None] = {}
        self._drain_scheduled = False
        self._wakeups: list[tuple[float, str]] = []
        self._wakeup_floor = self._wakeup_limit = wakeup_floor
        self._wake_handle: asyncio.TimerHandle | None = None
        self._failures: dict[str, int] = {}
        self._inflight: dict[int, WorkItem] = {}  # activity calls running now
        self._activity_tasks: set[asyncio.Task] = set()
        self._stopping = False  # shutting down: no new activity is dispatched
        self._tasks: set[asyncio.Task] = set()
        self._slots = asyncio.Semaphore(max_activities)
        self._pool = ThreadPoolExecutor(max_workers=max_activities,
                                        thread_name_prefix="devhost-activity")
        # Orchestrator code runs here, never on the loop: a blocking or endless orchestrator
        # holds its thread, not the host. Usually one thread is busy (the loop waits for it);
        # more only while episodes run on alone.
        self._orchestrators = ThreadPoolExecutor(max_workers=ORCHESTRATOR_THREADS,
                                                 thread_name_prefix="devhost-orchestrator")
        self._function_timeout = app.function_timeout
        #: Episodes running on alone (past SYNC_SECONDS), by instance.
        self._slow: dict[str, _Episode] = {}
        self._switch_interval: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
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

    @property
    def pending_wakeups(self) -> int:
        """Entries in the timer heap (bounded: see module docstring)."""
        return len(self._wakeups)

    @property
    def episodes_running_alone(self) -> int:
        """Episodes computed on past ``SYNC_SECONDS`` while the loop serves (see _await_alone)."""
        return len(self._slow)

    @property
    def cached_bytes(self) -> int:
        """Bytes of history text held in the cache (at most ``cache_bytes`` between drains)."""
        return self._cache_bytes

    def wake(self, instance_id: str, at: float | None = None) -> None:
        """Make sure ``instance_id`` runs an episode once ``at`` (default: now) has passed.
        Callers wake an instance after committing a message for it."""
        if at is None or at <= self.now():
            self._ready[instance_id] = None
            self._schedule_drain()
            return
        heapq.heappush(self._wakeups, (at, instance_id))
        if len(self._wakeups) > self._wakeup_limit:
            self._compact_wakeups()
        if self._wakeups and self._wakeups[0] == (at, instance_id):
            self._arm()

    def forget(self, instance_id: str) -> None:
        """Drop cached history: the instance was replaced or purged outside an episode."""
        cached = self._cache.pop(instance_id, None)
        if cached is not None:
            self._cache_bytes -= cached.size

    def _compact_wakeups(self) -> None:
        """Rebuild the heap from the inbox: entries of cancelled timers and finished instances
        go, those due now or retrying a failure stay."""
        now = self.now()
        keep = [w for w in self._wakeups if w[0] <= now or w[1] in self._failures]
        self._wakeups = keep + self.store.wakes_after(now)
        heapq.heapify(self._wakeups)
        self._wakeup_limit = max(self._wakeup_floor, 2 * len(self._wakeups))

    def _arm(self) -> None:
        if self._wake_handle is not None:
            self._wake_handle.cancel()
        if self._wakeups:
            delay = max(0.0, self._wakeups[0][0] - self.now())
            self._wake_handle = self.loop.call_later(min(delay, 3600.0), self.poll)

    def idle(self) -> bool:
        """Nothing to do until a wake-up falls due: no instance ready, no drain on its way (an
        episode being computed or committed), no activity running. A caller on a virtual clock
        (:mod:`devhost.testing`) moves the clock only when this holds."""
        return not (self._ready or self._drain_scheduled or self._inflight)

    def next_wakeup(self) -> float | None:
        """The clock time of the earliest armed wake-up (a timer, a retry), or None. It may
        belong to a timer cancelled since: waking then finds nothing to deliver."""
        return self._wakeups[0][0] if self._wakeups else None

    def poll(self) -> None:
        """Move every wake-up whose time has come to the ready queue (also for fake clocks)."""
        now = self.now()
        while self._wakeups and self._wakeups[0][0] <= now:
            _, iid = heapq.heappop(self._wakeups)
            self.wake(iid)
        self._wake_handle = None
        self._arm()

    def _schedule_drain(self) -> None:
        """Start a drain task unless one is on its way. Its first step runs in the loop's next
        turn, as a plain callback would: callers that yield once (``asyncio.sleep(0)``) after
        committing a message find its episode done, when nothing else is queued before it."""
        if self._drain_scheduled or self._closed:
            return
        self._drain_scheduled = True
        task = self.loop.create_task(self._drain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        """Compute and commit episodes while instances are ready, ``BATCH`` per transaction.
        While the test-only hold (:mod:`devhost.core.hold`) is engaged nothing is computed or
        committed; the drain looks again every ``hold.RECHECK_SECONDS``."""
        try:
            while self._ready and not self._closed:
                if hold.engaged():
                    await asyncio.sleep(hold.RECHECK_SECONDS)
                    continue
                await self._drain_batch()
                # Every batch gives the loop a turn: an instance that is always ready again
                # (continue_as_new without an await) must not starve requests or other workers.
                await asyncio.sleep(0)
        finally:
            self._drain_scheduled = False
            if self._ready and not self._closed:
                self._schedule_drain()

    async def _drain_batch(self) -> None:
        """Compute up to ``BATCH`` episodes, then commit them in one transaction (each one a
        savepoint): one WAL write for the batch, and shared workers hold the write lock only for
        the SQL, never through a replay. What an episode did takes effect (activities
        dispatched, instances woken, cache updated) only after that COMMIT, so nothing is
        observed before it is durable. An instance woken again meanwhile waits for the next
        batch: its next episode must start from this one's commit."""
        done: list[tuple[Snapshot, Outcome]] = []
        taken: set[str] = set()
        deferred: list[str] = []
        budget = BATCH
        short: list[Snapshot] = []
        long: list[Snapshot] = []
        while self._ready and budget:
            iid = next(iter(self._ready))
            del self._ready[iid]
            if iid in taken:
                deferred.append(iid)
                continue
            if iid in self._slow:
                continue  # woken again when its running episode ends
            budget -= 1
            taken.add(iid)
            try:
                snap = self._read(iid)
            except Exception as exc:
                self._failed(iid, exc, "episode")
                continue
            if snap is not None:
                (short if len(snap.history.texts) < self._offload_events else long).append(snap)
        await self._compute_short(short, done)
        for snap in long:  # replayed one at a time while the loop serves requests
            job = _Episode(snap)
            self._on_thread(job.run)
            if await self._await_alone(job):
                self._collect(job, done)
        for iid in deferred:
            self._ready[iid] = None
        self._apply(done)

    async def _compute_short(self, snaps: list[Snapshot],
                             done: list[tuple[Snapshot, Outcome]]) -> None:
        """Compute ``snaps`` on orchestrator threads and add what they give to ``done``, in
        order. They run in batches (:class:`_Batch`); the loop waits for a batch, blocked
        (nothing else would run meanwhile), while its current episode has run less than
        ``SYNC_SECONDS``, and takes a turn after every ``YIELD_SECONDS`` of work. An episode
        still running past ``SYNC_SECONDS`` (or one no thread took in that time: every
        orchestrator thread is held by a stuck orchestrator) is awaited while the loop serves
        requests (:meth:`_await_alone`), and the batch goes on without it."""
        jobs = [_Episode(snap) for snap in snaps]
        while jobs:
            batch = _Batch(jobs, YIELD_SECONDS)
            ran = self._on_thread(batch.run)
            self._wait_blocked(batch, ran)
            with batch.lock:
                batch.stop = True
                started = batch.started
            alone: _Episode | None = None
            for job in jobs[:started]:
                if not job.finished and ran.done():
                    # The batch's thread died outside the episode (an interrupt landing
                    # between two): the episode is retried as failed.
                    job.finish(None, ran.exception() or RuntimeError("the batch ended"))
                if job.finished:
                    self._collect(job, done)
                else:
                    alone = job  # the batch's thread still runs it (at most one)
            if started == 0:
                alone, started = jobs[0], 1
                self._on_thread(alone.run)  # in the pool's queue, behind the stuck ones
            if alone is not None and await self._await_alone(alone):
                self._collect(alone, done)
            jobs = jobs[started:]
            if jobs:
                await asyncio.sleep(0)  # let HTTP requests in between batches

    def _on_thread(self, run: Callable[[LoadedApp], None]) -> concurrent.futures.Future[None]:
        """Run orchestrator code (``run``: an episode or a batch) on an orchestrator thread,
        never on the loop."""
        return self._orchestrators.submit(run, self.app)

    def _wait_blocked(self, batch: _Batch, ran: concurrent.futures.Future[None]) -> None:
        """Block until the batch's thread ends it, until its current episode has run
        ``SYNC_SECONDS``, or until it has waited that long for a thread to take it."""
        submitted = time.monotonic()
        timeout = SYNC_SECONDS
        while True:
            try:
                ran.result(timeout=timeout)
                return
            except concurrent.futures.TimeoutError:
                pass
            except BaseException:
                return  # the batch's own error: see _compute_short
            now = time.monotonic()
            with batch.lock:
                job = batch.current
                # Between two episodes the thread is about to start the next one.
                since = job.began if job is not None else submitted if not batch.started else now
            waited = now - since
            if waited >= SYNC_SECONDS:
                return
            timeout = SYNC_SECONDS - waited

    def _collect(self, job: _Episode, done: list[tuple[Snapshot, Outcome]]) -> None:
        """Add a finished episode's outcome to ``done``, or fail its try (its error, a devhost
        bug: the instance is retried)."""
        if job.error is not None or job.outcome is None:
            self._failed(job.snap.instance.instance_id,
                         job.error or RuntimeError("the episode gave no outcome"), "episode")
        else:
            done.append((job.snap, job.outcome))

    async def _await_alone(self, job: _Episode) -> bool:
        """Await an episode (a long history's, or one that ran past ``SYNC_SECONDS``) while the
        loop serves requests, up to ``DETACH_SECONDS``: True once it has finished. One still
        running then runs on alone while the drain goes on: False is returned and its commit
        is applied when it ends (:meth:`_ended`). At ``functionTimeout`` it is abandoned
        (:meth:`_timed_out`)."""
        with job.lock:
            if job.finished:
                return True
            waiter = job.waiter = concurrent.futures.Future()
        iid = job.snap.instance.instance_id
        self._slow[iid] = job
        self._slow_changed()
        await asyncio.wait([asyncio.wrap_future(waiter)], timeout=DETACH_SECONDS)
        if waiter.done():  # set once finished
            del self._slow[iid]
            self._slow_changed()
            return True
        loop = self.loop
        job.timers.append(loop.call_later(STUCK_SECONDS, self._stuck, job))
        if self._function_timeout is not None:
            job.timers.append(loop.call_later(self._function_timeout, self._timed_out, job))
        waiter.add_done_callback(
            lambda _: loop.call_soon_threadsafe(self._ended, job) if not loop.is_closed()
            else None)
        return False

    def _slow_changed(self) -> None:
        """While an episode runs on alone, shorten the GIL switch interval. Its thread holds
        the GIL most of the time; the loop gets it back only when that thread is asked to drop
        it, after the interval (5 ms by default), and every request crosses several GIL
        releases (socket reads and writes, SQLite calls): a status read then waits a few
        tenths of a millisecond per crossing instead of 5 ms."""
        if self._slow and self._switch_interval is None:
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(REPLAY_SWITCH_INTERVAL)
        elif not self._slow and self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None

    def _ended(self, job: _Episode) -> None:
        """An episode that ran on alone ended: commit it (unless abandoned), then look at the
        instance again (messages that came meanwhile)."""
        iid = job.snap.instance.instance_id
        if self._slow.get(iid) is job:
            del self._slow[iid]
            self._slow_changed()
        for timer in job.timers:
            timer.cancel()
        if self._closed:
            return
        if job.abandoned:
            # The host retries an orchestrator invocation that timed out (below); devhost
            # retries it once the abandoned thread has ended, so a stuck one never piles up.
            log.warning("the timed-out episode of %s has ended on its thread; running it "
                        "again", iid)
            self.forget(iid)
            self.wake(iid)
            return
        done: list[tuple[Snapshot, Outcome]] = []
        self._collect(job, done)
        if done:
            self._apply(done)
            self.wake(iid)

    def _stuck(self, job: _Episode) -> None:
        inst = job.snap.instance
        limit = ("no functionTimeout" if self._function_timeout is None else
                 f"functionTimeout {invocations.format_timespan(self._function_timeout)}")
        hostlog.function_logger(inst.name).warning(
            "Orchestrator '%s' (instance '%s') has been running one episode for %.0f s and "
            "holds an orchestrator thread (%s); orchestrator code must not block or loop "
            "without yielding", inst.name, inst.instance_id, time.monotonic() - job.began, limit)

    def _timed_out(self, job: _Episode) -> None:
        """``functionTimeout`` passed. The extension aborts a timed-out orchestrator
        invocation and retries it: nothing of it is committed and its messages go back to the
        queue (azure-functions-durable-extension ``DurableTaskExtension.OrchestrationMiddleware``
        treats ``FunctionTimeoutError`` like a runtime error: ``SessionAbortedException``, since
        PR #2156), and the host restarts the worker process running it. devhost interrupts the
        thread (:func:`devhost.app.invocations.interrupt`), drops its result and reruns the
        episode once the thread has ended; a thread that never ends keeps the instance
        Running, and a restart of devhost runs it again."""
        with job.lock:
            thread = job.thread
            if thread is None:
                return  # it has just ended: its result is on its way
            job.abandoned = True
            interrupted = invocations.interrupt(thread)
        inst = job.snap.instance
        assert self._function_timeout is not None
        hostlog.function_logger(inst.name).error(
            "Timeout value of %s exceeded by function 'Functions.%s' (instance '%s'). "
            "Initiating cancellation.", invocations.format_timespan(self._function_timeout),
            inst.name, inst.instance_id)
        log.warning("the episode of %s was aborted at functionTimeout and will run again once "
                    "its thread ends%s", inst.instance_id,
                    "" if interrupted else " (the thread could not be interrupted)")

    def step(self, instance_id: str) -> None:
        """Run one episode of ``instance_id`` now, on the calling thread, and commit it: the
        unit of work of a drain, for tests that interleave workers by hand."""
        snap = self._read(instance_id)
        if snap is not None:
            self._apply([(snap, episode.compute(self.app, snap))])

    def _read(self, instance_id: str) -> Snapshot | None:
        """The instance's episode snapshot, or None when there is nothing to deliver (then a
        later message re-arms it). Messages of a purged instance are dropped here: nobody will
        ever take them (e.g. a child's result after its parent was purged)."""
        with self.store.snapshot():
            inst = self.store.get(instance_id)
            if inst is None:
                orphans = [m.msg_id for m in self.store.visible_messages(instance_id, math.inf)]
            else:
                # Never before the instance's last episode (another worker's clock may be
                # later than ours): OrchestratorStarted times must not decrease.
                at = max(self.now(), inst.updated_at)
                if inst.status == RuntimeStatus.SUSPENDED:
                    # Everything but a control message waits in the inbox until a resume:
                    # look for those only, so each message raised meanwhile costs the same
                    # whatever number already waits (the episode of a resume or terminate
                    # reads them all).
                    control = self.store.visible_control(instance_id, at)
                    if not any(m.kind != "suspend" for m in control):
                        return Snapshot(inst, at, control, self._history(inst)) \
                            if control else None
                messages = self.store.visible_messages(instance_id, at)
                if messages:
                    return Snapshot(inst, at, messages, self._history(inst))
                nxt = self.store.next_wake(instance_id)
        if inst is None:
            if orphans:
                log.info("dropping %d message(s) for %s, which no longer exists",
                         len(orphans), instance_id)
                self.store.drop_messages(orphans)
        elif nxt is not None:
            self.wake(instance_id, nxt)
        return None

    def _history(self, inst: Instance) -> History:
        """The instance's history (cached). A shared engine first checks that no other worker
        appended to it, inside the snapshot the episode reads."""
        iid = inst.instance_id
        cached = self._cache.get(iid)
        if cached is not None and (cached.execution_id != inst.execution_id or (
                self.shared and len(cached.texts) != self.store.history_length(iid))):
            self.forget(iid)
            cached = None
        if cached is None:
            cached = History(inst.execution_id, self.store.history(iid))
            self._cache[iid] = cached
            self._cache_bytes += cached.size
            self._evict()
        else:
            self._cache.move_to_end(iid)
        return cached

    def _evict(self) -> None:
        while self._cache_bytes > self._cache_limit and self._cache:
            _, old = self._cache.popitem(last=False)
            self._cache_bytes -= old.size

    def _apply(self, done: list[tuple[Snapshot, Outcome]]) -> None:
        """Commit the outcomes in one transaction, then carry out what each one did."""
        if not done:
            return  # a drain that found nothing to deliver opens no transaction
        results: list[tuple[Snapshot, Outcome, list[WorkItem] | Exception]] = []
        try:
            with self.store.batch():
                for snap, outcome in done:
                    try:
                        results.append((snap, outcome, self.store.commit_episode(outcome.commit)))
                    except Exception as exc:  # that savepoint alone was rolled back
                        results.append((snap, outcome, exc))
        except Exception as exc:
            for snap, _ in done:
                self._failed(snap.instance.instance_id, exc, "commit")
            return
        for snap, outcome, result in results:
            iid = snap.instance.instance_id
            if isinstance(result, EpisodeConflict):
                # Another worker (or an HTTP call meanwhile) moved the instance on: rerun.
                self.forget(iid)
                self.wake(iid)
            elif isinstance(result, Exception):
                self._failed(iid, result, "commit")
            else:
                self._after(snap, outcome, result)

    def _after(self, snap: Snapshot, outcome: Outcome, scheduled: list[WorkItem]) -> None:
        iid, commit = snap.instance.instance_id, outcome.commit
        self._failures.pop(iid, None)
        run = outcome.run
        if run is not None:
            if run.error is not None:
                run.invocation.failed(run.user_exc, None if run.user_exc else run.error)
            else:
                run.invocation.succeeded(quiet=_pure_replay(snap.instance, commit))
        if outcome.replayed:
            self.episodes += 1
        if outcome.appended is None:
            self.forget(iid)
        elif self._cache.get(iid) is snap.history and outcome.appended:
            snap.history.texts.extend(outcome.appended)
            grown = sum(len(t) for t in outcome.appended)
            snap.history.size += grown
            self._cache_bytes += grown
            self._evict()
        for item in scheduled:
            self.dispatch(item)
        for m in commit.messages:
            self.wake(m.instance_id, m.visible_at)
        if commit.children:
            self.wake(iid)  # a refused child is answered by a message to this instance
            for start in commit.children:
                self.wake(start.child.instance_id)

    def _failed(self, instance_id: str, exc: BaseException, what: str) -> None:
        """An episode or commit of the instance raised: retry a second later, or after
        ``MAX_ATTEMPTS`` tries fail the instance with the reason."""
        self.forget(instance_id)
        attempts = self._failures.get(instance_id, 0) + 1
        reason = f"{type(exc).__name__}: {exc}"
        if attempts < MAX_ATTEMPTS:
            self._failures[instance_id] = attempts
            log.error("%s of %s failed (try %d of %d), retrying in %.0f s:\n%s", what,
                      instance_id, attempts, MAX_ATTEMPTS, RETRY_SECONDS,
                      "".join(traceback.format_exception(exc)))
            self.wake(instance_id, self.now() + RETRY_SECONDS)
            return
        self._failures.pop(instance_id, None)
        log.error("%s of %s failed %d times; failing the instance: %s", what, instance_id,
                  attempts, reason)
        self._give_up(instance_id, f"devhost could not run this instance ({what} failed "
                                   f"{attempts} times): {reason}")

    def _give_up(self, instance_id: str, reason: str) -> None:
        try:
            with self.store.snapshot():
                inst = self.store.get(instance_id)
                messages = self.store.visible_messages(instance_id, math.inf)
                length = self.store.history_length(instance_id)
            if inst is None or inst.status in TERMINAL:
                self.store.drop_messages([m.msg_id for m in messages])
                return
            commit = episode.fail_commit(inst, length, messages,
                                         max(self.now(), inst.updated_at), reason)
            self.store.commit_episode(commit)
        except Exception:
            log.exception("could not fail %s either; it is left as it is", instance_id)
            return
        for m in commit.messages:
            self.wake(m.instance_id, m.visible_at)

    def recover(self, work_through: int | None = None) -> tuple[int, int]:
        """Re-arm every instance with messages and re-dispatch every pending activity (only
        those with ``work_id`` up to ``work_through`` when given: the rows left before this
        devhost started, as later ones belong to the live worker that scheduled them).

        Returns: (instances woken, activities dispatched).
        """
        wakes = self.store.wake_times()
        for iid, at in wakes:
            self.wake(iid, at)
        work = self.store.pending_work(work_through)
        for item in work:
            self.dispatch(item)
        return len(wakes), len(work)

    def running_activities(self) -> list[WorkItem]:
        """The activity calls running now (a result not yet committed)."""
        return list(self._inflight.values())

    async def close(self, grace: float = 0.0) -> list[WorkItem]:
        """Dispatch no new activity, give the running ones up to ``grace`` seconds (a result
        that arrives is committed, and episodes keep running meanwhile), then stop timers,
        drains and the activities left: their work rows stay, so they run again at the next
        start. A drain is stopped between two commits (an episode computed but not committed
        is simply computed again at the next start).

        Returns: the activity calls that were cancelled (will run again).
        """
        self._stopping = True
        if grace > 0 and self._activity_tasks:
            await asyncio.wait(list(self._activity_tasks), timeout=grace)
        self._closed = True
        if self._wake_handle is not None:
            self._wake_handle.cancel()
        unfinished = self.running_activities()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._pool.shutdown(wait=False, cancel_futures=True)
        # Never wait for an orchestrator thread: a stuck one would hold the shutdown forever.
        self._orchestrators.shutdown(wait=False, cancel_futures=True)
        for job in self._slow.values():
            for timer in job.timers:
                timer.cancel()
        self._slow.clear()
        self._slow_changed()
        return unfinished

    # ---- activities ----------------------------------------------------------------------------

    def dispatch(self, item: WorkItem) -> None:
        """Run an activity in the background; its result is committed, then its instance woken."""
        if item.work_id in self._inflight or self._stopping:
            return  # stopping: the work row stays and runs at the next start
        self._inflight[item.work_id] = item
        task = self.loop.create_task(self._run_activity(item))
        self._tasks.add(task)
        self._activity_tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._activity_tasks.discard)

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

    async def _within_timeout(self, activity: Any, kwargs: dict[str, Any]) -> Any:
        """Call an activity (a sync one on the activity pool); past ``functionTimeout`` raise
        :class:`~devhost.app.invocations.FunctionTimeoutException`, which the extension records as
        the activity's failure (``TaskActivityShim``: ``FunctionTimeoutError`` is handled as a
        user code error). An async one is cancelled, a sync one's thread interrupted (see
        :func:`devhost.app.invocations.interrupt`); its result, if any comes, is dropped."""
        tracked = None
        if activity.is_async:
            call = asyncio.ensure_future(activity.user_function(**kwargs))
        else:
            tracked = invocations.Tracked(functools.partial(activity.user_function, **kwargs))
            call = asyncio.ensure_future(self.loop.run_in_executor(
                self._pool, hostlog.in_context(tracked)))
        try:
            done, _ = await asyncio.wait([call], timeout=self._function_timeout)
        except asyncio.CancelledError:
            call.cancel()
            raise
        if not done:
            call.cancel()
            if tracked is not None:
                tracked.interrupt()
            assert self._function_timeout is not None
            raise invocations.FunctionTimeoutException(activity.name, self._function_timeout)
        return call.result()

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
            result = await self._within_timeout(activity, kwargs)
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
