"""The engine in-process, on a fake clock: what cannot be waited for in real time.

The engine is built directly (``Store`` + ``index_app`` + ``Engine(clock=...)`` +
``ManagementApi``); the app is a DFApp defined here (``load_app`` would import a module named
``function_app`` and chdir, clobbering the product app's tests in this process). Time only moves
when a test advances the clock and calls :meth:`Engine.poll`; episodes run on the test's loop.
"""
from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import azure.durable_functions as df
import azure.functions as func
import pytest

from devhost.app.loader import index_app
from devhost.core import engine, store
from devhost.core.history import parse_timestamp
from devhost.core.store import lock_database
from tests.devhost.harness import FakeClock
from tests.devhost.harness import Harness as BaseHarness

DAY = 86400.0
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc).timestamp()
ORIGIN = "http://127.0.0.1:7071"

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def long_nap(context: df.DurableOrchestrationContext):
    began = context.current_utc_datetime
    yield context.create_timer(began + timedelta(days=context.get_input()))
    return (context.current_utc_datetime - began).total_seconds()


@app.orchestration_trigger(context_name="context")
def ticks(context: df.DurableOrchestrationContext):
    seen = []
    for _ in range(context.get_input()):
        yield context.wait_for_external_event("Tick")
        seen.append(context.current_utc_datetime.isoformat())
    return seen


@app.orchestration_trigger(context_name="context")
def collect(context: df.DurableOrchestrationContext):
    seen = []
    for _ in range(context.get_input()):
        seen.append((yield context.wait_for_external_event("E")))
    return seen


@app.orchestration_trigger(context_name="context")
def deadline(context: df.DurableOrchestrationContext):
    yield context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    return "due"


@app.orchestration_trigger(context_name="context")
def echo(context: df.DurableOrchestrationContext):
    return context.get_input()


@app.orchestration_trigger(context_name="context")
def napper(context: df.DurableOrchestrationContext):
    time.sleep(context.get_input())  # blocks its thread, as a careless orchestrator does
    return "rested"


LOADED = index_app(app, str(Path(__file__).parent),
                   {"extensions": {"durableTask": {"hubName": "EngineHub"}}})


def Harness(path: Path, clock: FakeClock, shared: bool = False) -> BaseHarness:
    """An in-process store + engine + management API of this module's app."""
    return BaseHarness(path, clock, LOADED, shared=shared)


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path / "engine.sqlite3", FakeClock(T0))
    yield h
    await h.close()


def _timer_fire_times(history: list[dict[str, Any]]) -> list[float]:
    return [parse_timestamp(ev["FireAt"]) - T0 for ev in history if ev["EventType"] == 10]


async def test_ten_day_timer_is_split_into_3_day_timers_and_fires_only_after_10_days(
        harness: Harness) -> None:
    await harness.start("long_nap", 10, "nap")
    assert harness.status("nap")["runtimeStatus"] == "Running"
    assert _timer_fire_times(harness.history("nap")) == [3 * DAY]

    await harness.tick(3 * DAY)
    await harness.tick(3 * DAY)
    assert _timer_fire_times(harness.history("nap")) == [3 * DAY, 6 * DAY, 10 * DAY]
    await harness.tick(4 * DAY - 1)
    assert harness.status("nap")["runtimeStatus"] == "Running"  # one second early

    await harness.tick(1)
    status = harness.status("nap")
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == 10 * DAY


async def test_long_timer_is_rearmed_after_the_store_is_closed_and_reopened(
        harness: Harness) -> None:
    await harness.start("long_nap", 10, "nap")
    await harness.tick(3 * DAY)
    await harness.restart()
    assert harness.status("nap")["runtimeStatus"] == "Running"

    harness.clock.advance(3 * DAY)
    await harness.restart()  # down while the second 3-day timer came due: fires on recovery
    assert _timer_fire_times(harness.history("nap")) == [3 * DAY, 6 * DAY, 10 * DAY]
    await harness.tick(4 * DAY)
    assert harness.status("nap")["output"] == 10 * DAY


async def test_timer_does_not_fire_before_its_due_time(harness: Harness) -> None:
    await harness.start("deadline", None, "d")
    await harness.tick(3600 - 0.001)
    assert harness.status("d")["runtimeStatus"] == "Running"
    await harness.tick(0.001)
    assert harness.status("d")["output"] == "due"


async def test_orchestrator_started_timestamps_never_decrease_even_if_the_clock_does(
        harness: Harness) -> None:
    await harness.start("ticks", 3, "t")
    harness.clock.advance(-3600)  # wall clock stepped back (NTP, VM resume)
    assert harness.call("POST", "/instances/t/raiseEvent/Tick", 1)[0] == 202
    await harness.settle()
    harness.clock.advance(-3600)
    await harness.restart()  # a fresh engine must not forget how late it already was
    assert harness.call("POST", "/instances/t/raiseEvent/Tick", 2)[0] == 202
    await harness.settle()
    await harness.tick(10)
    assert harness.call("POST", "/instances/t/raiseEvent/Tick", 3)[0] == 202
    await harness.settle()

    status = harness.status("t")
    assert status["runtimeStatus"] == "Completed"
    started = [parse_timestamp(ev["Timestamp"]) for ev in harness.history("t")
               if ev["EventType"] == 12]
    assert len(started) == 4
    assert started == sorted(started)
    seen = [datetime.fromisoformat(s).timestamp() for s in status["output"]]
    assert seen == sorted(seen)


# ---- shared mode: two workers' engines on one database ----------------------------------------

@pytest.fixture
async def workers(tmp_path: Path) -> AsyncIterator[tuple[Harness, Harness]]:
    """Two engines on one file, as the two processes of ``devhost --workers 2`` run them (here on
    one loop, each with its own store connection, cache and clock)."""
    path = tmp_path / "shared.sqlite3"
    lock = lock_database(str(path))
    a, b = Harness(path, FakeClock(T0), shared=True), Harness(path, FakeClock(T0), shared=True)
    yield a, b
    await a.close()
    await b.close()
    lock.close()


async def test_workers_deliver_each_event_once_whichever_worker_raised_it(
        workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    await a.start("ticks", 3, "t")  # A runs the first episode and caches the history
    assert b.call("POST", "/instances/t/raiseEvent/Tick", 1)[0] == 202
    await b.settle()  # B runs the second episode: A's cached history is now stale
    assert a.call("POST", "/instances/t/raiseEvent/Tick", 2)[0] == 202
    await a.settle()
    assert b.call("POST", "/instances/t/raiseEvent/Tick", 3)[0] == 202
    await b.settle()

    status = a.status("t")
    assert status["runtimeStatus"] == "Completed", status
    assert len(status["output"]) == 3
    kinds = [ev["EventType"] for ev in a.history("t")]
    assert kinds.count(15) == 3  # EventRaised, each once
    assert kinds.count(1) == 1  # ExecutionCompleted, once


async def test_workers_never_write_decreasing_episode_times_when_their_clocks_disagree(
        workers: tuple[Harness, Harness]) -> None:
    a, b = workers
    a.clock.advance(120)  # worker A's clock reads two minutes later than B's
    await a.start("ticks", 2, "t")
    assert b.call("POST", "/instances/t/raiseEvent/Tick", 1)[0] == 202
    await b.settle()
    assert b.call("POST", "/instances/t/raiseEvent/Tick", 2)[0] == 202
    await b.settle()

    assert b.status("t")["runtimeStatus"] == "Completed"
    started = [parse_timestamp(ev["Timestamp"]) for ev in b.history("t")
               if ev["EventType"] == 12]
    assert len(started) == 3
    assert started == sorted(started)


async def test_raises_to_a_suspended_instance_cost_the_same_each_and_all_arrive_in_order(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15 item 9: each raise to a Suspended instance used to read (and scan) every
    message already waiting, so 1,000 raises cost 30 ms each. The measure is deterministic:
    inbox rows the engine reads while the instance is suspended, per raise."""
    raises = 10_000
    rows_read = 0

    class CountedMessage(store.Message):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            nonlocal rows_read
            rows_read += 1
            super().__init__(*args, **kwargs)

    await harness.start("collect", raises, "s")
    assert harness.call("POST", "/instances/s/suspend")[0] == 202
    await harness.settle()
    assert harness.status("s")["runtimeStatus"] == "Suspended"

    monkeypatch.setattr(store, "Message", CountedMessage)
    per_thousand: list[int] = []
    for i in range(raises):
        harness.raise_event("s", "E", i)
        await harness.settle(2)  # an episode per raise, as when raises come one by one
        if (i + 1) % 100 == 0:  # checked as it goes: the quadratic version fails at once
            assert rows_read <= 2 * (i + 1), f"{rows_read} inbox rows read for {i + 1} raises"
        if (i + 1) % 1000 == 0:
            per_thousand.append(rows_read - sum(per_thousand))
    # The 10th thousand costs what the first did (no growth with the number waiting).
    assert per_thousand[-1] <= max(2 * per_thousand[0], 100), per_thousand
    monkeypatch.undo()

    assert harness.status("s")["runtimeStatus"] == "Suspended"
    assert harness.call("POST", "/instances/s/resume")[0] == 202
    await harness.settle()
    status = harness.status("s")
    assert status["runtimeStatus"] == "Completed", status["runtimeStatus"]
    assert status["output"] == list(range(raises))  # each once, in the order raised


async def test_ready_episodes_are_computed_with_one_thread_hop_per_batch(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread hop (two thread wake-ups) per episode cost a sixth of a lifecycle's CPU: the
    episodes ready together go to an orchestrator thread together."""
    monkeypatch.setattr(engine, "YIELD_SECONDS", 60.0)  # this machine's speed must not matter
    hops = 0
    submit = harness.engine._orchestrators.submit

    def counted(*args: Any) -> Any:
        nonlocal hops
        hops += 1
        return submit(*args)

    monkeypatch.setattr(harness.engine._orchestrators, "submit", counted)
    for i in range(20):
        harness.begin("echo", i, f"e{i}")
    await harness.settle()
    assert [harness.status(f"e{i}")["output"] for i in range(20)] == list(range(20))
    assert hops == 1


async def test_an_episode_that_blocks_in_a_batch_holds_back_none_of_the_episodes_after_it(
        harness: Harness) -> None:
    harness.begin("echo", "before", "first")
    harness.begin("napper", 3, "sleepy")  # its thread sleeps 3 s
    for i in range(5):
        harness.begin("echo", i, f"after{i}")
    began = time.monotonic()
    while time.monotonic() - began < 2.5:
        await asyncio.sleep(0.02)
        if all(harness.status(f"after{i}")["runtimeStatus"] == "Completed" for i in range(5)):
            break
    assert [harness.status(f"after{i}")["output"] for i in range(5)] == list(range(5))
    assert harness.status("first")["output"] == "before"
    # Still asleep on its thread: its first episode is not committed yet.
    assert harness.status("sleepy")["runtimeStatus"] == "Pending"
    await harness.settle(timeout=10)
    assert harness.status("sleepy")["output"] == "rested"


async def test_with_every_orchestrator_thread_held_the_loop_serves_and_the_rest_run_later(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "ORCHESTRATOR_THREADS", 1)
    harness = Harness(tmp_path / "one-thread.sqlite3", FakeClock(T0))
    try:
        harness.begin("napper", 1.5, "sleepy")  # holds the only orchestrator thread
        await asyncio.sleep(0.1)
        for i in range(3):
            harness.begin("echo", i, f"queued{i}")
        longest, began = 0.0, time.monotonic()
        while time.monotonic() - began < 1.0:  # the napper still holds the thread
            tick = time.monotonic()
            await asyncio.sleep(0.005)
            longest = max(longest, time.monotonic() - tick)
            assert harness.status("queued0")["runtimeStatus"] == "Pending"
        assert longest < 0.5, f"the loop was held {longest:.3f} s"
        await harness.settle(timeout=10)
        await asyncio.sleep(0.1)
        await harness.settle(timeout=10)
        assert [harness.status(f"queued{i}")["output"] for i in range(3)] == [0, 1, 2]
        assert harness.status("sleepy")["output"] == "rested"
    finally:
        await harness.close()
