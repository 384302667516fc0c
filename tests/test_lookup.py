"""lookup: the one adapter over DurableOrchestrationClient.

Every test runs through two doors onto the same in-memory host: the hand-written
``FakeDurableClient`` and the *real* SDK client over ``FakeHostTransport``. Passing both proves
the fake's quirks are the SDK's.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from tests.app_index import WITH_A_STEP_AFTER_THE_EVENT
from tests.fakes import FakeDurableClient, FakeHostTransport, df_dumps
from workflow import lookup
from workflow.errors import (
    AlreadyFinished,
    AlreadyRunning,
    BackendError,
    BackendUnavailable,
    NotFound,
    StopConflict,
)
from workflow.inputs import parse_key
from workflow.settings import EVENT_NAME, ORCHESTRATOR_NAME, Settings

KEY = parse_key("aaron")
ACTIVE = ["Pending", "Running", "Suspended", "ContinuedAsNew"]
FINISHED = ["Completed", "Failed", "Terminated", "Canceled"]


@dataclass
class Door:
    client: Any
    host: FakeDurableClient


@pytest.fixture(params=["fake-client", "sdk-client"])
def door(request: pytest.FixtureRequest) -> Door:
    host = FakeDurableClient()
    if request.param == "fake-client":
        return Door(client=host, host=host)
    return Door(client=FakeHostTransport(host).client(), host=host)


async def test_sdk_reports_unknown_instance_as_falsy_status_not_none(door: Door) -> None:
    status = await door.client.get_status(KEY.instance_id)
    assert status is not None and not status


async def test_find_unknown_key_returns_none(door: Door) -> None:
    assert await lookup.find(door.client, KEY) is None
    assert door.host.calls == [("get_status", "workflow-aaron")]


async def test_find_is_a_point_read_of_the_derived_instance_id(door: Door) -> None:
    door.host.seed("workflow-other", "Running")
    door.host.seed("workflow-aaron", "Running", custom_status={"waitingFor": "Workflow"})
    found = await lookup.find(door.client, KEY)
    assert found is not None
    assert found.to_json() == {
        "input": "aaron",
        "instanceId": "workflow-aaron",
        "runtimeStatus": "Running",
        "createdTime": "2025-06-01T12:00:00Z",
        "lastUpdatedTime": "2025-06-01T12:00:00Z",
        "customStatus": {"waitingFor": "Workflow"},
        "output": None,
    }
    assert door.host.calls == [("get_status", "workflow-aaron")]


async def test_start_creates_instance_with_key_and_timeout_as_input(door: Door) -> None:
    started = await lookup.start(door.client, KEY, Settings(timeout_seconds=30))
    assert (started.instance_id, started.runtime_status) == ("workflow-aaron", "Pending")
    instance = door.host.instances["workflow-aaron"]
    assert instance.name == ORCHESTRATOR_NAME
    sent = json.loads(instance.input_text)
    assert instance.input_text == df_dumps(sent)
    assert sent == {"key": "aaron", "timeoutSeconds": 30, "runId": sent["runId"]}
    assert re.fullmatch(r"[0-9a-f]{32}", sent["runId"])


async def test_start_without_timeout_passes_null(door: Door) -> None:
    await lookup.start(door.client, KEY, Settings())
    assert json.loads(door.host.instances["workflow-aaron"].input_text)["timeoutSeconds"] is None


async def test_every_run_gets_its_own_run_id(door: Door) -> None:
    await lookup.start(door.client, KEY, Settings())
    first = await lookup.find(door.client, KEY)
    door.host.finish("workflow-aaron")
    await lookup.start(door.client, KEY, Settings())
    second = await lookup.find(door.client, KEY)
    assert first.run_id and second.run_id and first.run_id != second.run_id


async def test_stop_whose_run_is_replaced_by_a_new_run_conflicts_without_waiting(
        door: Door) -> None:
    await lookup.start(door.client, KEY, Settings())
    door.host.process_events = False  # the event lands in run 1, which another stop ends
    pending = asyncio.create_task(
        lookup.stop(door.client, KEY, None, Settings(stop_confirm_seconds=20)))
    # Until the stop has seen run 1 live.
    await door.host.wait_until(lambda: ("get_status", "workflow-aaron") in door.host.calls)
    door.host.finish("workflow-aaron", output={"outcome": "stopped", "event": "other"})
    await lookup.start(door.client, KEY, Settings())  # run 2 of the same key
    started = time.monotonic()
    with pytest.raises(StopConflict):
        await pending
    assert time.monotonic() - started < 5
    assert door.host.instances["workflow-aaron"].runtime_status == "Pending"  # run 2 untouched


@pytest.mark.parametrize("runtime_status", ACTIVE)
async def test_start_never_creates_a_second_active_instance(door: Door, runtime_status: str) -> None:
    live = door.host.seed("workflow-aaron", runtime_status)
    with pytest.raises(AlreadyRunning) as caught:
        await lookup.start(door.client, KEY, Settings())
    assert caught.value.status.runtime_status == runtime_status
    assert door.host.instances["workflow-aaron"] is live  # the host refused to replace it


@pytest.mark.parametrize("runtime_status", FINISHED)
async def test_start_after_a_finished_run_starts_a_fresh_run(door: Door, runtime_status: str) -> None:
    door.host.seed("workflow-aaron", runtime_status, output={"outcome": "stopped"})
    started = await lookup.start(door.client, KEY, Settings())
    assert started.runtime_status == "Pending"
    assert door.host.instances["workflow-aaron"].runtime_status == "Pending"
    assert door.host.instances["workflow-aaron"].output is None


async def test_start_that_loses_a_race_reports_conflict(door: Door) -> None:
    # Another request starts the same key just before our start_new reaches the host.
    door.host.before_start_new = lambda: door.host.seed("workflow-aaron", "Running")
    with pytest.raises(AlreadyRunning) as caught:
        await lookup.start(door.client, KEY, Settings())
    assert caught.value.status.runtime_status == "Running"
    assert [op for op, _ in door.host.calls] == ["start_new", "get_status"]


async def test_start_of_a_new_key_is_one_host_call(door: Door) -> None:
    await lookup.start(door.client, KEY, Settings())
    assert [op for op, _ in door.host.calls] == ["start_new"]


async def test_start_refused_for_another_reason_is_a_backend_error(door: Door) -> None:
    door.host.reject_next_start = (
        400,
        {"Message": "x", "ExceptionMessage": "The function 'workflow_orchestrator' doesn't exist.",
         "ExceptionType": "System.ArgumentException", "StackTrace": "at ..."},
    )
    with pytest.raises(BackendError, match="doesn't exist"):
        await lookup.start(door.client, KEY, Settings())


async def test_start_failure_message_drops_the_host_stack_trace(door: Door) -> None:
    door.host.reject_next_start = (
        500,
        {"Message": "An error has occurred.", "ExceptionMessage": "storage is down",
         "ExceptionType": "X", "StackTrace": "   at Secret.Internals()"},
    )
    with pytest.raises(BackendError) as caught:
        await lookup.start(door.client, KEY, Settings())
    assert "storage is down" in str(caught.value)
    assert "Secret.Internals" not in str(caught.value)


def raised_events(door: Door) -> list[tuple[str, Any]]:
    """The events the host stored, decoded back to the data the client passed."""
    return [(name, json.loads(json.loads(text)))
            for name, text in door.host.instances["workflow-aaron"].events]


async def test_stop_delivers_payload_double_encoded_like_the_sdk(door: Door) -> None:
    door.host.seed("workflow-aaron", "Running")
    await lookup.stop(door.client, KEY, {"approved": True}, Settings())
    [(name, data)] = raised_events(door)
    assert name == EVENT_NAME
    assert data["payload"] == {"approved": True}
    assert door.host.calls[0] == ("raise_event", "workflow-aaron")
    assert all(call == ("get_status", "workflow-aaron") for call in door.host.calls[1:])


async def test_stop_without_payload_sends_null(door: Door) -> None:
    door.host.seed("workflow-aaron", "Running")
    await lookup.stop(door.client, KEY, None, Settings())
    [(_, data)] = raised_events(door)
    assert data["payload"] is None


async def test_stop_returns_the_finished_run_when_its_event_ended_it(door: Door) -> None:
    door.host.seed("workflow-aaron", "Running")
    finished = await lookup.stop(door.client, KEY, {"n": 1}, Settings())
    assert finished is not None
    assert finished.runtime_status == "Completed"
    assert finished.output == {"outcome": "stopped", "event": {"n": 1}}
    [(_, data)] = raised_events(door)
    assert finished.custom_status["stoppedBy"] == data["stopId"]


async def test_of_two_concurrent_stops_exactly_one_wins_and_the_other_conflicts(door: Door) -> None:
    door.host.seed("workflow-aaron", "Running")
    door.host.process_events = False  # both events arrive before the orchestrator runs
    first = asyncio.create_task(lookup.stop(door.client, KEY, {"n": 1}, Settings()))
    second = asyncio.create_task(lookup.stop(door.client, KEY, {"n": 2}, Settings()))
    await door.host.wait_until(lambda: len(door.host.instances["workflow-aaron"].events) == 2)
    door.host._process(door.host.instances["workflow-aaron"])
    results = await asyncio.gather(first, second, return_exceptions=True)
    winners = [r for r in results if isinstance(r, lookup.WorkflowStatus)]
    losers = [r for r in results if isinstance(r, StopConflict)]
    assert len(winners) == 1 and len(losers) == 1
    assert winners[0].output == {"outcome": "stopped", "event": {"n": 1}}


async def test_stop_is_confirmed_while_a_step_after_the_event_still_runs(door: Door) -> None:
    """The verdict needs the run to have taken the event, not to have finished: the stop answers
    from the record the episode that took the event wrote, with the run still Running."""
    door.host.orchestrator = WITH_A_STEP_AFTER_THE_EVENT
    door.host.run_activities = False  # the step after the event is in flight
    door.host.seed("workflow-aaron", "Running")
    started = time.monotonic()
    decided = await lookup.stop(door.client, KEY, {"n": 1}, Settings(stop_confirm_seconds=5))
    assert time.monotonic() - started < 2.5  # not the 5 s window: confirmed from the record
    assert decided is not None
    [(_, data)] = raised_events(door)
    assert decided.runtime_status == "Running" and decided.output is None
    assert decided.custom_status == {"waitingFor": None, "outcome": "stopped",
                                     "stoppedBy": data["stopId"]}


async def test_a_later_stop_loses_at_once_while_the_winners_later_steps_run(door: Door) -> None:
    door.host.orchestrator = WITH_A_STEP_AFTER_THE_EVENT
    door.host.run_activities = False  # the step after the event is in flight
    door.host.seed("workflow-aaron", "Running")
    assert await lookup.stop(door.client, KEY, "first", Settings()) is not None
    with pytest.raises(StopConflict) as caught:
        await lookup.stop(door.client, KEY, "second", Settings(stop_confirm_seconds=5))
    assert caught.value.status.runtime_status == "Running"
    assert door.host.instances["workflow-aaron"].runtime_status == "Running"


async def test_stop_after_the_timeout_ended_the_wait_is_gone_while_later_steps_run(
        door: Door) -> None:
    door.host.seed("workflow-aaron", "Running",
                   custom_status={"waitingFor": None, "outcome": "timed_out"})
    door.host.process_events = False  # the run no longer waits: the event changes nothing
    with pytest.raises(AlreadyFinished) as caught:
        await lookup.stop(door.client, KEY, None, Settings(stop_confirm_seconds=5))
    assert caught.value.status.runtime_status == "Running"
    assert "no longer waits for the event: its timeout ended the wait first" in str(caught.value)


async def test_stop_waits_while_the_run_only_waits(door: Door) -> None:
    """A live run whose custom status is the wait's (or not yet written) has taken no event."""
    door.host.seed("workflow-aaron", "Running",
                   custom_status={"waitingFor": "Workflow", "until": None})
    door.host.process_events = False
    assert await lookup.stop(door.client, KEY, None, Settings(stop_confirm_seconds=0.05)) is None


@pytest.mark.parametrize(("runtime_status", "custom_status", "decided"), [
    ("Pending", None, False),
    ("Running", {"waitingFor": "Workflow", "until": None}, False),
    ("Running", {"waitingFor": None, "outcome": "stopped", "stoppedBy": None}, True),
    ("Running", {"waitingFor": None, "outcome": "timed_out"}, True),
    ("Running", "a user's own text status", False),
    ("Suspended", {"waitingFor": None, "outcome": "stopped", "stoppedBy": "a" * 32}, True),
    ("Completed", None, True),
    ("Failed", {"waitingFor": "Workflow", "until": None}, True),
    ("Terminated", None, True),
])
def test_a_run_is_decided_once_its_wait_has_an_outcome_or_it_ended(
        runtime_status: str, custom_status: Any, decided: bool) -> None:
    status = lookup.WorkflowStatus(key=KEY, instance_id=KEY.instance_id,
                                   runtime_status=runtime_status, custom_status=custom_status)
    assert lookup.is_decided(status) is decided


async def test_stop_that_loses_to_the_timeout_is_gone_with_the_outcome(door: Door) -> None:
    door.host.seed("workflow-aaron", "Running")
    door.host.process_events = False
    pending = asyncio.create_task(lookup.stop(door.client, KEY, None, Settings()))
    await door.host.wait_until(lambda: bool(door.host.instances["workflow-aaron"].events))
    door.host.instances["workflow-aaron"].custom_status = {"waitingFor": None, "outcome": "timed_out"}
    door.host.finish("workflow-aaron", output={"outcome": "timed_out"})
    with pytest.raises(AlreadyFinished) as caught:
        await pending
    assert caught.value.status is not None
    assert caught.value.status.output == {"outcome": "timed_out"}


async def test_stop_not_processed_within_the_confirm_window_is_unconfirmed(door: Door) -> None:
    door.host.seed("workflow-aaron", "Running")
    door.host.process_events = False
    assert await lookup.stop(door.client, KEY, None, Settings(stop_confirm_seconds=0.05)) is None
    assert len(door.host.instances["workflow-aaron"].events) == 1


@pytest.mark.parametrize("runtime_status", ["Pending", "Suspended"])
async def test_stop_is_accepted_before_the_orchestrator_runs_or_while_suspended(
    door: Door, runtime_status: str
) -> None:
    door.host.seed("workflow-aaron", runtime_status)
    await lookup.stop(door.client, KEY, "x", Settings())
    assert len(door.host.instances["workflow-aaron"].events) == 1


async def test_stop_unknown_key_is_not_found(door: Door) -> None:
    with pytest.raises(NotFound):
        await lookup.stop(door.client, KEY, None, Settings())


@pytest.mark.parametrize("runtime_status", FINISHED)
async def test_stop_finished_run_is_gone(door: Door, runtime_status: str) -> None:
    door.host.seed("workflow-aaron", runtime_status)
    with pytest.raises(AlreadyFinished):
        await lookup.stop(door.client, KEY, None, Settings())


@pytest.mark.parametrize(
    "failure",
    [
        aiohttp.ClientConnectionError("Cannot connect to host 127.0.0.1:17071"),
        aiohttp.ServerDisconnectedError(),
        ConnectionRefusedError(111, "Connect call failed"),
        TimeoutError(),
    ],
    ids=["client-connection", "server-disconnected", "refused", "timeout"],
)
@pytest.mark.parametrize("operation", ["find", "start", "stop"])
async def test_unreachable_backend_is_reported_as_unavailable(
    door: Door, failure: BaseException, operation: str
) -> None:
    door.host.fail_next(failure)
    calls = {
        "find": lambda: lookup.find(door.client, KEY),
        "start": lambda: lookup.start(door.client, KEY, Settings()),
        "stop": lambda: lookup.stop(door.client, KEY, None, Settings()),
    }
    with pytest.raises(BackendUnavailable, match="durable backend unavailable"):
        await calls[operation]()


async def test_unexpected_backend_answer_is_a_backend_error(door: Door) -> None:
    door.host.fail_next(Exception("Webhook returned unrecognized status code 503"))
    with pytest.raises(BackendError, match="unrecognized status code 503"):
        await lookup.stop(door.client, KEY, None, Settings())


async def test_other_instances_not_found_message_is_not_mistaken_for_ours(door: Door) -> None:
    # Only the exact text for *our* instance id means 404; anything else is unexpected.
    door.host.fail_next(Exception("No instance with ID workflow-someone-else found."))
    with pytest.raises(BackendError):
        await lookup.stop(door.client, KEY, None, Settings())


@pytest.mark.parametrize("runtime_status", ["Completed", "Running"])
@pytest.mark.parametrize(("custom_status", "outcome"), [
    ({"stoppedBy": "a" * 32}, "won"),
    ({"stoppedBy": "b" * 32}, StopConflict),
    ({"outcome": "timed_out"}, AlreadyFinished),
    (None, AlreadyFinished),  # failed or terminated: no custom status names a stop
])
def test_verdict_names_the_stop_that_ended_the_wait(
        custom_status: Any, outcome: Any, runtime_status: str) -> None:
    finished = lookup.WorkflowStatus(key=KEY, instance_id=KEY.instance_id,
                                     runtime_status=runtime_status, custom_status=custom_status)
    if outcome == "won":
        assert lookup.verdict(finished, "a" * 32) is finished
    else:
        with pytest.raises(outcome) as caught:
            lookup.verdict(finished, "a" * 32)
        assert caught.value.status is finished


@pytest.mark.parametrize(("exc", "summary"), [
    (Exception({"Message": "An error has occurred.", "ExceptionMessage": "  the\n real   cause ",
                "StackTrace": "at X"}), "the real cause"),
    (Exception({"Message": "only a message"}), "only a message"),
    (Exception({"Other": 1}), "{'Other': 1}"),
    (Exception("a", "b"), "('a', 'b')"),
    (Exception(), "Exception"),
    (ValueError("x" * 301), "x" * 297 + "..."),
    (ValueError("x" * 300), "x" * 300),
], ids=repr)
def test_backend_failures_are_summarised_on_one_bounded_line(exc: Exception, summary: str) -> None:
    assert lookup._describe(exc) == summary


async def test_a_failed_status_read_is_a_backend_error_naming_the_cause(door: Door) -> None:
    door.host.fail_next(Exception("boom"))
    with pytest.raises(BackendError, match=r"^durable backend error while reading status: boom$"):
        await lookup.find(door.client, KEY)


async def test_stop_whose_run_is_purged_while_it_waits_is_not_found(door: Door) -> None:
    door.host.seed("workflow-aaron", "Running")
    door.host.process_events = False
    pending = asyncio.create_task(lookup.stop(door.client, KEY, None, Settings()))
    await door.host.wait_until(lambda: bool(door.host.instances["workflow-aaron"].events))
    del door.host.instances["workflow-aaron"]
    with pytest.raises(NotFound) as caught:
        await pending
    assert caught.value.key == KEY
