"""Episode guarantees (issue 8), in-process on a fake clock, in one- and two-worker modes.

Races are forced, not hoped for: an orchestrator here runs the test's ``HOOKS`` while it is being
replayed, i.e. after its episode read its snapshot and before that episode commits, so "the
other worker acted meanwhile" happens on every run.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import AsyncIterator, Callable

import azure.durable_functions as df
import azure.functions as func
import pytest

from devhost.app.loader import index_app
from devhost.core import engine as engine_module, hold
from tests.devhost.harness import FakeClock, Harness, one_worker, two_workers

T0 = 1_748_779_200.0  # 2025-06-01T12:00:00Z
HOUR = 3600.0

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
#: Run (and removed) by the hooked orchestrators while their episode is being computed.
HOOKS: list[Callable[[], None]] = []
#: Which code path ``fickle`` takes: a test changes it between episodes (a code change).
BRANCH = {"value": "timer"}


#: The test's event loop, where the hooks run (the other worker acts on its own loop).
LOOP: list[asyncio.AbstractEventLoop] = []


def _run_hooks() -> None:
    """Run the hooks on the test's loop while this episode waits on its orchestrator thread
    (the engine lets the episode run on alone and serves the loop meanwhile)."""
    if not HOOKS:
        return
    if threading.current_thread() is threading.main_thread():
        while HOOKS:
            HOOKS.pop(0)()
        return
    done = threading.Event()

    def run() -> None:
        try:
            while HOOKS:
                HOOKS.pop(0)()
        finally:
            done.set()

    LOOP[0].call_soon_threadsafe(run)
    assert done.wait(timeout=10), "the loop never ran the hooks"


@app.activity_trigger(input_name="value")
def echo(value: int) -> int:
    return value


@app.orchestration_trigger(context_name="context")
def generations(context: df.DurableOrchestrationContext):
    left = context.get_input()
    if left > 0:
        context.continue_as_new(left - 1)  # no await in this generation
        return None
    value = yield context.wait_for_external_event("E")
    return value


@app.orchestration_trigger(context_name="context")
def racer(context: df.DurableOrchestrationContext):
    generation = context.get_input()
    event = context.wait_for_external_event("E")
    timer = context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    winner = yield context.task_any([event, timer])
    if winner == timer:
        context.continue_as_new(generation + 1)
        return None
    timer.cancel()
    return {"generation": generation, "value": event.result}


@app.orchestration_trigger(context_name="context")
def cycle(context: df.DurableOrchestrationContext):
    _run_hooks()
    yield context.wait_for_external_event("Next")
    context.continue_as_new(None)


@app.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext):
    _run_hooks()
    value = yield context.wait_for_external_event("Go")
    return value


@app.orchestration_trigger(context_name="context")
def nap(context: df.DurableOrchestrationContext):
    yield context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    return "rested"


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    try:
        result = yield context.call_sub_orchestrator("nap", None, context.get_input())
    except Exception as exc:
        return {"refused": str(exc)}
    return {"child": result}


@app.orchestration_trigger(context_name="context")
def fickle(context: df.DurableOrchestrationContext):
    branch = BRANCH["value"]  # deliberately non-deterministic: the test "edits the code"
    if branch == "timer":
        yield context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    elif branch == "activity":
        yield context.call_activity("echo", 1)
    elif branch == "sub-orchestration":
        yield context.call_sub_orchestrator("nap", None)
    yield context.wait_for_external_event("Go")
    return "the new branch"


@app.orchestration_trigger(context_name="context")
def reminder(context: df.DurableOrchestrationContext):
    go = context.wait_for_external_event("Go")
    timer = context.create_timer(context.current_utc_datetime + timedelta(days=1))
    winner = yield context.task_any([go, timer])
    if winner == go:
        timer.cancel()
    return "done"


#: ``slow_replay`` announces it is being replayed, then holds until the test lets it go.
REPLAYING, RELEASE = threading.Event(), threading.Event()


@app.orchestration_trigger(context_name="context")
def slow_replay(context: df.DurableOrchestrationContext):
    REPLAYING.set()
    RELEASE.wait(timeout=10)
    yield context.wait_for_external_event("Never")


LOADED = index_app(app, str(Path(__file__).parent),
                   {"extensions": {"durableTask": {"hubName": "EpisodeHub"}}})


@pytest.fixture(autouse=True)
async def _reset() -> None:
    LOOP[:] = [asyncio.get_running_loop()]
    HOOKS.clear()
    BRANCH["value"] = "timer"
    REPLAYING.clear()
    RELEASE.clear()


@pytest.fixture
async def one(tmp_path: Path) -> AsyncIterator[Harness]:
    async with one_worker(tmp_path / "one.sqlite3", LOADED, T0) as h:
        yield h


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[Harness, Harness]]:
    """Two workers' engines on one file."""
    async with two_workers(tmp_path / "shared.sqlite3", LOADED, T0) as pair:
        yield pair


async def _settle(*hs: Harness) -> None:
    for _ in range(4):
        for h in hs:
            await h.settle()


# ---- 1. continue_as_new carries events raised after it -----------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
async def test_event_raised_during_continue_as_new_generations_is_delivered(
        one: Harness, two: tuple[Harness, Harness], workers: int) -> None:
    a, b = (one, one) if workers == 1 else two
    a.begin("generations", 3, "g")
    b.raise_event("g", "E", "hello")  # lands in the same episode as a generation's start
    await _settle(a, b)
    status = a.status("g")
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == "hello"


@pytest.mark.parametrize("workers", [1, 2])
async def test_event_landing_with_the_timer_that_continued_as_new_reaches_the_next_generation(
        one: Harness, two: tuple[Harness, Harness], workers: int) -> None:
    a, b = (one, one) if workers == 1 else two
    await a.start("racer", 0, "r")
    for h in {a, b}:
        h.clock.advance(HOUR + 1)
    # Raised after the timer fell due and before any episode ran: the two share one episode,
    # the TimerFired first (arrival order), so generation 0 continues as new and the event
    # must reach generation 1.
    b.raise_event("r", "E", "late")
    a.engine.poll()
    await _settle(a, b)
    status = a.status("r")
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {"generation": 1, "value": "late"}


async def test_events_a_generation_had_buffered_die_with_it(one: Harness) -> None:
    await one.start("racer", 0, "r")
    one.raise_event("r", "Other", 1)  # buffered by generation 0, never waited for
    await one.settle()
    await one.tick(HOUR)  # generation 0 continues as new
    assert one.status("r")["runtimeStatus"] in ("Running", "Pending")
    assert [ev for ev in one.history("r") if ev["EventType"] == 15] == []
    assert ("event", None) not in one.inbox("r")


# ---- 2. control messages survive an episode that continues as new ------------------------------

@pytest.mark.parametrize("operation,outcome", [("terminate", "Terminated"),
                                               ("suspend", "Suspended")])
async def test_control_committed_by_the_other_worker_during_continue_as_new_is_kept(
        two: tuple[Harness, Harness], operation: str, outcome: str) -> None:
    a, b = two
    await a.start("cycle", None, "c")
    deferred: list[str] = []

    def other_worker_acts() -> None:
        # B commits its control message while A computes; B's own episode waits until A has
        # committed (A's episode runs on a thread and the loop is free, so an immediate drain of
        # B would settle the instance first and no race would be left to test).
        wake = b.engine.wake
        b.engine.wake = lambda instance_id, at=None: deferred.append(instance_id)  # type: ignore[method-assign]
        try:
            assert b.call("POST", f"/instances/c/{operation}")[0] == 202
        finally:
            b.engine.wake = wake  # type: ignore[method-assign]

    HOOKS.append(other_worker_acts)
    a.raise_event("c", "Next")  # A's episode continues as new; B's operation lands meanwhile
    await _settle(a, b)
    assert not HOOKS and deferred == ["c"]
    b.engine.wake("c")  # whichever worker runs the next episode, the message must be there
    await _settle(a, b)
    assert a.status("c")["runtimeStatus"] == outcome


# ---- 3. the optimistic check covers the status ---------------------------------------------

async def test_suspend_committed_by_the_other_worker_before_the_first_episode_is_kept(
        two: tuple[Harness, Harness]) -> None:
    a, b = two

    def other_worker_suspends() -> None:
        assert b.call("POST", "/instances/s/suspend")[0] == 202
        b.engine.step("s")  # B's episode commits Suspended (no history event yet)

    HOOKS.append(other_worker_suspends)
    await a.start("waiter", None, "s")  # A's first episode was computed from Pending
    await _settle(a, b)
    assert not HOOKS
    assert a.status("s")["runtimeStatus"] == "Suspended"
    assert a.call("POST", "/instances/s/resume")[0] == 202
    await _settle(a, b)
    assert a.status("s")["runtimeStatus"] == "Running"
    a.raise_event("s", "Go", 7)
    await _settle(a, b)
    assert a.status("s")["output"] == 7


# ---- 4. one explicit sub-orchestration id, two creators ------------------------------------

@pytest.mark.parametrize("workers", [1, 2])
async def test_two_parents_racing_for_one_child_id_one_gets_it_the_other_already_exists(
        one: Harness, two: tuple[Harness, Harness], workers: int) -> None:
    a, b = (one, one) if workers == 1 else two
    a.begin("parent", "kid", "p1")
    b.begin("parent", "kid", "p2")  # one worker: both first episodes run in one drain
    await _settle(a, b)
    for h in {a, b}:
        h.clock.advance(HOUR)
        h.engine.poll()
    await _settle(a, b)
    winner = a.store.get("kid").parent_instance_id
    loser = {"p1": "p2", "p2": "p1"}[winner]
    won, lost = a.status(winner), a.status(loser)
    assert won["runtimeStatus"] == lost["runtimeStatus"] == "Completed", (won, lost)
    assert won["output"] == {"child": "rested"}
    assert "already exists" in lost["output"]["refused"]
    if workers == 1:
        assert winner == "p1"  # the first commit of the drain


async def test_sub_orchestration_never_replaces_a_client_started_running_instance(
        two: tuple[Harness, Harness]) -> None:
    a, b = two
    # One drain of A: the parent's episode, then another one whose replay lets B's client
    # start "kid": after the parent's episode read its snapshot, before the drain commits.
    HOOKS.append(lambda: b.begin("waiter", None, "kid"))
    a.begin("parent", "kid", "p")
    a.begin("waiter", None, "w")
    await _settle(a, b)
    assert not HOOKS
    kid = a.store.get("kid")
    assert kid is not None and kid.name == "waiter" and kid.parent_instance_id is None
    assert "already exists" in a.status("p")["output"]["refused"]
    b.raise_event("kid", "Go", "mine")
    await _settle(a, b)
    assert a.status("kid")["output"] == "mine"


# ---- 5. non-determinism -----------------------------------------------------------------------

@pytest.mark.parametrize("branch", ["timer", "activity", "sub-orchestration"])
async def test_replay_that_no_longer_schedules_a_recorded_task_fails_as_non_deterministic(
        one: Harness, branch: str) -> None:
    BRANCH["value"] = branch
    await one.start("fickle", None, "f")
    scheduled = [ev for ev in one.history("f") if ev["EventType"] in (4, 7, 10)]
    assert [ev["EventId"] for ev in scheduled] == [0]
    BRANCH["value"] = "none"  # the code changed while the instance was running
    one.raise_event("f", "Go")
    await one.settle()
    status = one.status("f")
    assert status["runtimeStatus"] == "Failed", status
    assert "Non-Deterministic workflow detected" in status["output"]
    assert f"scheduled a {branch} task with sequence ID 0" in status["output"]


async def test_replay_that_schedules_another_kind_under_a_recorded_id_is_non_deterministic(
        one: Harness) -> None:
    await one.start("fickle", None, "f")  # a timer under id 0
    BRANCH["value"] = "activity"
    await one.tick(HOUR)
    status = one.status("f")
    assert status["runtimeStatus"] == "Failed", status
    assert "Non-Deterministic workflow detected" in status["output"]


# ---- purge and failing episodes ---------------------------------------------------------------

async def test_purging_a_parent_while_its_child_runs_leaves_no_orphan_message(
        one: Harness) -> None:
    await one.start("parent", "orphan-kid", "p")
    assert one.call("DELETE", "/instances/p")[0] == 200
    await one.tick(HOUR)  # the child completes and reports to its purged parent
    await one.settle()
    assert one.status("orphan-kid")["runtimeStatus"] == "Completed"
    assert one.inbox("p") == []
    assert one.store.wake_times() == []  # nothing to re-wake on the next start


async def test_an_episode_that_keeps_failing_fails_the_instance_after_bounded_tries(
        one: Harness, caplog: pytest.LogCaptureFixture) -> None:
    await one.start("waiter", None, "w")
    with sqlite3.connect(one.path) as db:  # a corrupt row: every replay of "w" raises
        db.execute("UPDATE history SET event='{' WHERE instance_id='w' AND seq=1")
    one.engine.forget("w")
    one.raise_event("w", "Go", 1)
    await one.settle()
    with caplog.at_level(logging.ERROR, logger="devhost.engine"):
        for _ in range(engine_module.MAX_ATTEMPTS - 1):  # the first try already failed
            assert one.status("w")["runtimeStatus"] == "Running"
            await one.tick(engine_module.RETRY_SECONDS)
    status = one.status("w")
    assert status["runtimeStatus"] == "Failed", status
    assert "could not run this instance" in status["output"]
    assert "JSONDecodeError" in status["output"]
    assert one.inbox("w") == []
    assert any("failing the instance" in r.getMessage() for r in caplog.records)
    await one.tick(60 * engine_module.RETRY_SECONDS)
    assert one.status("w")["runtimeStatus"] == "Failed"  # no retries after giving up


# ---- memory bounds ---------------------------------------------------------------------------

async def test_cancelled_timers_do_not_accumulate_in_the_wakeup_heap(tmp_path: Path) -> None:
    h = Harness(tmp_path / "heap.sqlite3", FakeClock(T0), LOADED, wakeup_floor=16)
    try:
        for i in range(120):
            await h.start("reminder", None, f"r{i}")
            h.raise_event(f"r{i}", "Go")
            await h.settle()
            assert h.engine.pending_wakeups <= 32
        assert all(h.status(f"r{i}")["runtimeStatus"] == "Completed" for i in range(120))
        assert h.store.wake_times() == []
    finally:
        await h.close()


async def test_history_cache_is_bounded_by_bytes(tmp_path: Path) -> None:
    limit = 1_000_000
    h = Harness(tmp_path / "cache.sqlite3", FakeClock(T0), LOADED, cache_bytes=limit)
    try:
        big = "x" * 400_000
        for i in range(4):
            await h.start("waiter", big, f"big{i}")
            assert h.engine.cached_bytes <= limit
        for i in range(4):
            h.raise_event(f"big{i}", "Go", i)
            await h.settle()
            assert h.engine.cached_bytes <= limit
        assert [h.status(f"big{i}")["output"] for i in range(4)] == [0, 1, 2, 3]
    finally:
        await h.close()


# ---- replay off the HTTP loop, and the test-only hold ----------------------------------------

async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (real time, bounded) until ``condition`` holds; fail with a clear message."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


async def test_the_loop_keeps_serving_requests_while_a_long_history_replays(
        tmp_path: Path) -> None:
    h = Harness(tmp_path / "aside.sqlite3", FakeClock(T0), LOADED, offload_events=0)
    try:
        await h.start("waiter", None, "idle")
        await _until(lambda: h.status("idle")["runtimeStatus"] == "Running")
        h.begin("slow_replay", None, "slow")
        await _until(REPLAYING.is_set)  # the replay is under way, and held there
        # Were the replay on the loop thread, the loop could not run this line until it ended.
        assert h.status("idle")["runtimeStatus"] == "Running"
        assert h.status("slow")["runtimeStatus"] == "Pending"
        h.raise_event("idle", "Go", "served meanwhile")
        RELEASE.set()
        await _until(lambda: h.status("slow")["runtimeStatus"] == "Running")
        await _until(lambda: h.status("idle")["runtimeStatus"] == "Completed")
        assert h.status("idle")["output"] == "served meanwhile"
    finally:
        RELEASE.set()
        await h.close()


async def test_the_hold_delivers_nothing_until_its_file_is_removed(
        one: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    held = tmp_path / "hold"
    held.touch()
    monkeypatch.setenv(hold.ENV, str(held))
    one.begin("waiter", None, "w")
    one.raise_event("w", "Go", "both in one episode")
    await one.settle()
    await asyncio.sleep(5 * hold.RECHECK_SECONDS)
    assert one.status("w")["runtimeStatus"] == "Pending"  # held: no episode ran
    held.unlink()
    await _until(lambda: one.status("w")["runtimeStatus"] == "Completed")
    assert one.status("w")["output"] == "both in one episode"
    starts = [ev for ev in one.history("w") if ev["EventType"] == 12]
    assert len(starts) == 1  # start and event were delivered by one episode
