"""Episode rules copied from the host (issue 15, items 1-6), in-process on a fake clock, with one
worker and, where a race with another worker matters, with two on one file.

Each test names the host rule it proves; the rule's source is cited where devhost implements it
(``devhost/core/episode.py``). Where the rule decides what the SDK sees, the recorded history is
replayed through the real SDK to check that it agrees.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import azure.durable_functions as df
import azure.functions as func
import pytest

from devhost.app.loader import index_app
from devhost.app.status import overridable_states
from devhost.core.history import parse_timestamp
from tests.devhost.harness import FakeClock, Harness, one_worker, two_workers

T0 = 1_748_779_200.0  # 2025-06-01T12:00:00Z
HOUR = 3600.0

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.activity_trigger(input_name="value")
def echo(value: Any) -> Any:
    return value


@app.orchestration_trigger(context_name="context")
def holder(context: df.DurableOrchestrationContext):
    value = yield context.wait_for_external_event("Go")
    return value


@app.orchestration_trigger(context_name="context")
def guardian(context: df.DurableOrchestrationContext):
    try:
        result = yield context.call_sub_orchestrator("holder", None, context.get_input())
    except Exception as exc:
        return {"failed": str(exc)}
    return {"child": result}


@pytest.fixture
async def one(tmp_path: Path) -> AsyncIterator[Harness]:
    async with one_worker(tmp_path / "one.sqlite3", LOADED, T0) as h:
        yield h


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[Harness, Harness]]:
    """Two workers' engines on one file."""
    async with two_workers(tmp_path / "shared.sqlite3", LOADED, T0) as pair:
        yield pair


def _workers(one: Harness, two: tuple[Harness, Harness], workers: int) -> tuple[Harness, Harness]:
    return (one, one) if workers == 1 else two


async def _settle(*hs: Harness) -> None:
    for _ in range(4):
        for h in hs:
            await h.settle()


async def _tick(seconds: float, *hs: Harness) -> None:
    for h in set(hs):
        h.clock.advance(seconds)
        h.engine.poll()
    await _settle(*hs)


async def _until(condition: Callable[[], bool], *hs: Harness, timeout: float = 10.0) -> None:
    """Settle the workers until ``condition`` holds: activities run on a thread pool, so this
    waits real time (bounded) for them."""
    deadline = time.monotonic() + timeout
    while True:
        await _settle(*hs)
        if condition():
            return
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def _sdk_replay(h: Harness, instance_id: str) -> dict[str, Any]:
    """The recorded history replayed through the SDK's own orchestrator entry point, as the host
    would send it: the orchestrator's state (actions, isDone, output, error)."""
    inst = h.store.get(instance_id)
    assert inst is not None
    context = {"history": h.history(instance_id),
               "input": None if inst.input is None else json.loads(inst.input),
               "instanceId": instance_id, "isReplaying": True,
               "parentInstanceId": inst.parent_instance_id,
               "upperSchemaVersion": 1, "upperSchemaVersionNew": 2,
               "longRunningTimerIntervalDuration": "3.00:00:00",
               "maximumShortTimerDuration": "6.00:00:00"}
    handle = LOADED.orchestrators[inst.name].user_function
    return json.loads(handle(context=func.OrchestrationContext(json.dumps(context))))


def _ids(h: Harness, instance_id: str, event_type: int) -> list[int]:
    return [ev["EventId"] for ev in h.history(instance_id) if ev["EventType"] == event_type]


def _terminate(h: Harness, instance_id: str, reason: str) -> None:
    reply = h.api.handle("POST", f"/instances/{instance_id}/terminate", {"reason": reason},
                         {}, b"", "http://127.0.0.1:7071")
    assert reply.status == 202, reply.body


# ---- 4. a terminated sub-orchestration fails its parent's call ---------------------------------

@pytest.mark.parametrize("workers", [1, 2])
async def test_terminating_a_sub_orchestration_fails_the_parents_call_with_the_reason(
        one: Harness, two: tuple[Harness, Harness], workers: int) -> None:
    a, b = _workers(one, two, workers)
    a.begin("guardian", "kid", "p")
    await _settle(a, b)
    assert a.status("kid")["runtimeStatus"] == "Running"
    _terminate(b, "kid", "no longer needed")
    await _settle(a, b)
    assert a.status("kid")["runtimeStatus"] == "Terminated"
    status = a.status("p")
    assert status["runtimeStatus"] == "Completed", status
    assert "no longer needed" in status["output"]["failed"]


# ---- 5. a sub-orchestration never takes its parent's id -----------------------------------------

@app.orchestration_trigger(context_name="context")
def selfish(context: df.DurableOrchestrationContext):
    try:
        yield context.call_sub_orchestrator("holder", None, context.instance_id.upper())
    except Exception as exc:  # a catchable failure would be a departure from the host
        return {"caught": str(exc)}
    return "never"


@app.orchestration_trigger(context_name="context")
def grandparent(context: df.DurableOrchestrationContext):
    result = yield context.call_sub_orchestrator("naughty", None, "naughty-child")
    return result


@app.orchestration_trigger(context_name="context")
def naughty(context: df.DurableOrchestrationContext):
    yield context.call_sub_orchestrator("holder", None, context.parent_instance_id)
    return "never"


@pytest.mark.parametrize("states", ["NonRunningStates", "AnyState"])
async def test_a_sub_orchestration_with_the_parents_own_id_fails_the_parent_and_keeps_its_history(
        tmp_path: Path, states: str) -> None:
    loaded = dataclasses.replace(LOADED, overridable=overridable_states(states))
    h = Harness(tmp_path / "self.sqlite3", FakeClock(T0), loaded)
    try:
        await h.start("selfish", None, "me")
        status = h.status("me")
        assert status["name"] == "selfish"
        assert status["runtimeStatus"] == "Failed", status
        assert status["output"] == (
            "Orchestrator function 'selfish' failed: The instance ID of a sub-orchestration "
            "must be different than the instance ID of a parent orchestration.")
        started = [ev for ev in h.history("me") if ev["EventType"] == 0]
        assert [ev["Name"] for ev in started] == ["selfish"]
        assert not [ev for ev in h.history("me") if ev["EventType"] == 7]
        assert h.store.get("ME") is None
    finally:
        await h.close()


async def test_a_sub_orchestration_with_its_grandparents_id_fails_the_caller(
        one: Harness) -> None:
    await one.start("grandparent", None, "gp")
    await one.settle()
    assert one.status("naughty-child")["runtimeStatus"] == "Failed"
    assert "must be different than the instance ID of a parent" in \
        one.status("naughty-child")["output"]
    status = one.status("gp")
    assert status["name"] == "grandparent" and status["runtimeStatus"] == "Failed", status
    assert "must be different than the instance ID of a parent" in status["output"]


# ---- 6. custom status is capped at 16 KB of UTF-16 ----------------------------------------------

@app.orchestration_trigger(context_name="context")
def chatty(context: df.DurableOrchestrationContext):
    context.set_custom_status("small")
    size = yield context.wait_for_external_event("Size")
    context.set_custom_status("x" * size)
    yield context.call_activity("echo", size)
    value = yield context.wait_for_external_event("Go")
    return value


#: The custom status is the JSON string ``"x...x"``: 2 bytes per character in UTF-16, quotes
#: included. 17 KB - 1 byte is still "16 KB" to the extension (it truncates to whole KB).
LARGEST = (17 * 1024 - 2) // 2 - 2


@pytest.mark.parametrize("workers", [1, 2])
async def test_custom_status_up_to_16_kb_of_utf16_is_kept(
        one: Harness, two: tuple[Harness, Harness], workers: int) -> None:
    a, b = _workers(one, two, workers)
    a.begin("chatty", None, "c")
    await _settle(a, b)
    b.raise_event("c", "Size", LARGEST)
    await _settle(a, b)
    status = a.status("c")
    assert status["runtimeStatus"] == "Running", status
    assert status["customStatus"] == "x" * LARGEST


@pytest.mark.parametrize("workers", [1, 2])
async def test_custom_status_over_16_kb_of_utf16_fails_the_orchestration_as_the_host_does(
        one: Harness, two: tuple[Harness, Harness], workers: int) -> None:
    a, b = _workers(one, two, workers)
    a.begin("chatty", None, "c")
    await _settle(a, b)
    b.raise_event("c", "Size", LARGEST + 1)
    await _settle(a, b)
    status = a.status("c")
    assert status["runtimeStatus"] == "Failed", status
    assert status["output"] == (
        "Orchestrator function 'chatty' failed: The UTF-16 size of the JSON-serialized payload "
        "must not exceed 16 KB. The current payload size is 17 KB.")
    assert status["customStatus"] == "small"  # the refused status was never stored
    assert not [ev for ev in a.history("c") if ev["EventType"] == 4]  # nothing scheduled


# ---- 1. a raised event goes to the newest open waiter of its name -------------------------------

@app.orchestration_trigger(context_name="context")
def two_waiters(context: df.DurableOrchestrationContext):
    first_a = context.wait_for_external_event("A")
    b = context.wait_for_external_event("B")
    yield context.task_any([first_a, b])  # B wins; the first A waiter stays open, abandoned
    value = yield context.wait_for_external_event("A")
    result = yield context.call_activity("echo", value)
    return result


@pytest.mark.parametrize("workers", [1, 2])
async def test_raised_event_goes_to_the_newest_waiter_of_its_name(
        one: Harness, two: tuple[Harness, Harness], workers: int) -> None:
    a, b = _workers(one, two, workers)
    a.begin("two_waiters", None, "w")
    await _settle(a, b)
    b.raise_event("w", "B", "b")
    await _settle(a, b)
    a.raise_event("w", "A", "second")
    await _until(lambda: a.status("w")["runtimeStatus"] != "Running", a, b)
    status = a.status("w")
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == "second"
    replayed = _sdk_replay(a, "w")
    assert replayed["isDone"] and replayed["output"] == "second"


REMINDER = timedelta(seconds=5)


@app.orchestration_trigger(context_name="context")
def approval_loop(context: df.DurableOrchestrationContext):
    reminders = 0
    while True:  # each round waits anew: the previous round's waiter stays open, abandoned
        approval = context.wait_for_external_event("Approval")
        reminder = context.create_timer(context.current_utc_datetime + REMINDER)
        winner = yield context.task_any([approval, reminder])
        if winner == approval:
            break  # the reminder is left running (a common omission; harmless on the host)
        reminders += 1
    result = yield context.call_activity("echo", approval.result)
    return {"approved": result, "reminders": reminders}


@pytest.mark.parametrize("workers", [1, 2])
async def test_approval_in_a_reminder_loop_is_acted_on_when_it_is_raised(
        one: Harness, two: tuple[Harness, Harness], workers: int) -> None:
    a, b = _workers(one, two, workers)
    a.begin("approval_loop", None, "ap")
    await _settle(a, b)
    await _tick(REMINDER.total_seconds(), a, b)  # the first reminder fires: round two
    await _tick(2, a, b)
    b.raise_event("ap", "Approval", "yes")  # 3 s before the second reminder is due
    await _until(lambda: a.status("ap")["runtimeStatus"] != "Running", a, b)
    status = a.status("ap")
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == {"approved": "yes", "reminders": 1}
    replayed = _sdk_replay(a, "ap")
    assert replayed["isDone"] and replayed["output"] == status["output"]


# ---- 2. retried calls inside task_all / task_any take ids in event order ----------------------

#: Attempts made per activity input, so a flaky activity fails its first try only.
ATTEMPTS: dict[str, int] = {}


@app.activity_trigger(input_name="key")
def flaky(key: str) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] == 1 or key.startswith("never"):
        raise RuntimeError(f"{key} failed attempt {ATTEMPTS[key]}")
    return f"{key} ok on attempt {ATTEMPTS[key]}"


RETRY = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=3)


@app.orchestration_trigger(context_name="context")
def retry_all(context: df.DurableOrchestrationContext):
    prefix = context.get_input()
    results = yield context.task_all([
        context.call_activity_with_retry("flaky", RETRY, f"{prefix}-a"),
        context.call_activity_with_retry("flaky", RETRY, f"{prefix}-b")])
    return results


@app.orchestration_trigger(context_name="context")
def retry_any(context: df.DurableOrchestrationContext):
    call = context.call_activity_with_retry("flaky", RETRY, context.get_input())
    deadline = context.create_timer(context.current_utc_datetime + timedelta(hours=1))
    winner = yield context.task_any([call, deadline])
    if winner == deadline:
        return "deadline"
    deadline.cancel()
    return call.result


@pytest.fixture(autouse=True)
def _reset() -> None:
    ATTEMPTS.clear()


@pytest.mark.parametrize("workers", [1, 2])
async def test_retried_calls_inside_task_all_take_ids_in_event_order(
        one: Harness, two: tuple[Harness, Harness], workers: int) -> None:
    a, b = _workers(one, two, workers)
    prefix = f"all{workers}"
    a.begin("retry_all", prefix, "ra")
    await _until(lambda: len(_ids(a, "ra", 10)) == 2, a, b)  # both first attempts failed
    await _tick(1, a, b)
    await _until(lambda: a.status("ra")["runtimeStatus"] != "Running", a, b)
    status = a.status("ra")
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == [f"{prefix}-a ok on attempt 2", f"{prefix}-b ok on attempt 2"]
    # Attempts 0 and 1, their retry timers 2 and 3 (made as the failures were played), the
    # second attempts 4 and 5: the layout the SDK's RetryAbleTask expects.
    assert _ids(a, "ra", 4) == [0, 1, 4, 5]
    assert _ids(a, "ra", 10) == [2, 3]
    replayed = _sdk_replay(a, "ra")
    assert replayed["isDone"] and replayed["output"] == status["output"]


@pytest.mark.parametrize("workers", [1, 2])
async def test_retried_call_racing_a_deadline_in_task_any_takes_ids_in_event_order(
        one: Harness, two: tuple[Harness, Harness], workers: int) -> None:
    a, b = _workers(one, two, workers)
    a.begin("retry_any", f"any{workers}", "rn")
    await _until(lambda: len(_ids(a, "rn", 10)) == 2, a, b)  # deadline 1, retry timer 2
    await _tick(1, a, b)
    await _until(lambda: a.status("rn")["runtimeStatus"] != "Running", a, b)
    status = a.status("rn")
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == f"any{workers} ok on attempt 2"
    assert _ids(a, "rn", 4) == [0, 3] and _ids(a, "rn", 10) == [1, 2]
    replayed = _sdk_replay(a, "rn")
    assert replayed["isDone"] and replayed["output"] == status["output"]


ABANDONED = df.RetryOptions(first_retry_interval_in_milliseconds=2000, max_number_of_attempts=2)


@app.orchestration_trigger(context_name="context")
def outrun(context: df.DurableOrchestrationContext):
    call = context.call_activity_with_retry("flaky", ABANDONED, context.get_input())
    deadline = context.create_timer(context.current_utc_datetime + timedelta(seconds=1))
    winner = yield context.task_any([call, deadline])
    yield context.wait_for_external_event("Go")
    after = yield context.call_activity("echo", "after")
    return ["call" if winner == call else "deadline", after]


@app.orchestration_trigger(context_name="context")
def retry_children(context: df.DurableOrchestrationContext):
    prefix = context.get_input()
    results = yield context.task_all([
        context.call_sub_orchestrator_with_retry("flaky_child", RETRY, f"{prefix}-a"),
        context.call_sub_orchestrator_with_retry("flaky_child", RETRY, f"{prefix}-b")])
    return results


@app.orchestration_trigger(context_name="context")
def flaky_child(context: df.DurableOrchestrationContext):
    result = yield context.call_activity("flaky", context.get_input())
    return result


async def test_a_retried_call_that_lost_its_task_any_keeps_retrying_and_taking_ids(
        one: Harness) -> None:
    one.begin("outrun", "never-outrun", "o")
    await _until(lambda: len(_ids(one, "o", 10)) == 2, one)  # deadline 1, retry timer 2
    await _tick(1, one)  # the deadline wins; the orchestrator waits for Go
    await _tick(1, one)  # the lost call's retry timer fires: its second (last) attempt runs
    await _until(lambda: len(_ids(one, "o", 10)) == 3, one)  # and its back-compat timer
    one.raise_event("o", "Go")
    await _until(lambda: one.status("o")["runtimeStatus"] != "Running", one)
    status = one.status("o")
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == ["deadline", "after"]
    # The lost call's second attempt (3) and last timer (4) took ids before the activity (5)
    # the orchestrator scheduled after Go: the SDK's RetryAbleTask goes on the same way.
    assert _ids(one, "o", 4) == [0, 3, 5] and _ids(one, "o", 10) == [1, 2, 4]
    replayed = _sdk_replay(one, "o")
    assert replayed["isDone"] and replayed["output"] == status["output"]


@pytest.mark.parametrize("workers", [1, 2])
async def test_retried_sub_orchestrations_inside_task_all_take_ids_in_event_order(
        one: Harness, two: tuple[Harness, Harness], workers: int) -> None:
    a, b = _workers(one, two, workers)
    prefix = f"kids{workers}"
    a.begin("retry_children", prefix, "rc")
    await _until(lambda: len(_ids(a, "rc", 10)) == 2, a, b)  # both first children failed
    await _tick(1, a, b)
    await _until(lambda: a.status("rc")["runtimeStatus"] != "Running", a, b)
    status = a.status("rc")
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == [f"{prefix}-a ok on attempt 2", f"{prefix}-b ok on attempt 2"]
    assert _ids(a, "rc", 7) == [0, 1, 4, 5] and _ids(a, "rc", 10) == [2, 3]
    replayed = _sdk_replay(a, "rc")
    assert replayed["isDone"] and replayed["output"] == status["output"]


# ---- 3. the last failed attempt surfaces at once ---------------------------------------------

LAST = df.RetryOptions(first_retry_interval_in_milliseconds=3000, max_number_of_attempts=2)


@app.orchestration_trigger(context_name="context")
def doomed(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity_with_retry("flaky", LAST, context.get_input())
    except Exception as exc:
        return {"gave up": str(exc), "at": context.current_utc_datetime.timestamp() - T0}
    return "never"


@pytest.mark.parametrize("workers", [1, 2])
async def test_the_last_failed_attempt_surfaces_without_another_retry_interval(
        one: Harness, two: tuple[Harness, Harness], workers: int) -> None:
    a, b = _workers(one, two, workers)
    a.begin("doomed", f"never{workers}", "d")
    await _until(lambda: len(_ids(a, "d", 10)) == 1, a, b)  # the first attempt failed
    await _tick(3, a, b)  # the one retry interval passes: the second (last) attempt runs
    await _until(lambda: a.status("d")["runtimeStatus"] != "Running", a, b)
    status = a.status("d")
    assert status["runtimeStatus"] == "Completed", status
    assert "failed attempt 2" in status["output"]["gave up"]
    assert status["output"]["at"] == pytest.approx(3, abs=0.5)
    # DTFx's back-compat timer after the last attempt: due when it is created.
    timers = [ev for ev in a.history("d") if ev["EventType"] == 10]
    assert [ev["EventId"] for ev in timers] == [1, 3]
    assert parse_timestamp(timers[1]["FireAt"]) == pytest.approx(
        parse_timestamp(timers[1]["Timestamp"]))
    replayed = _sdk_replay(a, "d")
    assert replayed["isDone"] and replayed["output"] == status["output"]


# Indexed once every function above is registered (``get_functions`` may run only once).
LOADED = index_app(app, str(Path(__file__).parent),
                   {"extensions": {"durableTask": {"hubName": "RulesHub"}}})
