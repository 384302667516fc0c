"""Episode rules copied from the host (issue 15, items 1-6), in-process on a fake clock, with one
worker and, where a race with another worker matters, with two on one file.

Each test names the host rule it proves; the rule's source is cited where devhost implements it
(``devhost/episode.py``). Where the rule decides what the SDK sees, the recorded history is
replayed through the real SDK to check that it agrees.
"""
from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from pathlib import Path
from typing import Any, AsyncIterator

import azure.durable_functions as df
import azure.functions as func
import pytest

from devhost.loader import index_app
from devhost.status import overridable_states
from devhost.store import lock_database
from tests.devhost.harness import FakeClock, Harness

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
    h = Harness(tmp_path / "one.sqlite3", FakeClock(T0), LOADED)
    yield h
    await h.close()


@pytest.fixture
async def two(tmp_path: Path) -> AsyncIterator[tuple[Harness, Harness]]:
    """Two workers' engines on one file."""
    path = tmp_path / "shared.sqlite3"
    lock = lock_database(str(path))
    a = Harness(path, FakeClock(T0), LOADED, shared=True)
    b = Harness(path, FakeClock(T0), LOADED, shared=True)
    yield a, b
    await a.close()
    await b.close()
    lock.close()


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


# Indexed once every function above is registered (``get_functions`` may run only once).
LOADED = index_app(app, str(Path(__file__).parent),
                   {"extensions": {"durableTask": {"hubName": "RulesHub"}}})
