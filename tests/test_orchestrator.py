"""The orchestrator, replayed through the SDK's real entry point with hand-built histories.

The wait's guarantees (outcome, payload, timer, one winner, the record the stop answers from)
are proven on ``wait_for_stop`` alone (``replay_wait``): they hold whatever steps a customised
workflow puts around it. The app's own orchestrator is replayed where the test is about it as a
whole (input validation, determinism, logs); its exact steps are pinned by tests/template.
"""

from __future__ import annotations

import copy
import json
import logging
from datetime import datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

from tests.app_index import replay, replay_wait
from tests.histories import T0, History, after, fire_at
from workflow.orchestrator import WorkflowInput, normalize_event_payload, stop_event, wait_for_stop

HOUR = {"key": "aaron", "timeoutSeconds": 3600}
FOREVER = {"key": "aaron", "timeoutSeconds": None}
TEN_DAYS = {"key": "aaron", "timeoutSeconds": 10 * 24 * 3600}
SIX_DAYS = timedelta(days=6)

WAIT_ACTION = {"actionType": 6, "externalEventName": "Workflow", "reason": "ExternalEvent"}

pytestmark = pytest.mark.filterwarnings(
    # The SDK warns when it buffers an event that arrived before the wait ("Potential duplicate
    # Task completion"); that buffering is exactly what some tests rely on.
    "ignore:Potential duplicate Task completion:UserWarning"
)


def waiting_for_hour() -> History:
    """Episode 1 of a one-hour run, committed: the timer (id 0) exists."""
    return History(HOUR).end_episode().timer_created(0, after(T0, hours=1))


def all_timer_actions(actions: list[Any]) -> list[dict[str, Any]]:
    found = []
    for action in actions:
        if action["actionType"] == 5:
            found.append(action)
        found.extend(all_timer_actions(action.get("compoundActions", [])))
    return found


def test_first_run_without_timeout_only_waits_for_the_event() -> None:
    response = replay_wait(History(FOREVER).context())
    assert response == {
        "isDone": False,
        "schemaVersion": 2,
        "actions": [[WAIT_ACTION]],
        "customStatus": {"waitingFor": "Workflow", "until": None},
    }


def test_zero_timeout_in_input_also_waits_forever() -> None:
    response = replay_wait(History({"key": "aaron", "timeoutSeconds": 0}).context())
    assert response["actions"] == [[WAIT_ACTION]]


def test_first_run_with_timeout_races_event_against_timer_at_deadline() -> None:
    response = replay_wait(History(HOUR).context())
    assert response == {
        "isDone": False,
        "schemaVersion": 2,
        "actions": [[{
            "actionType": 11,
            "compoundActions": [
                WAIT_ACTION,
                {"actionType": 5, "fireAt": fire_at(after(T0, hours=1)), "isCanceled": False},
            ],
        }]],
        "customStatus": {"waitingFor": "Workflow", "until": "2025-06-01T13:00:00.123456Z"},
    }


def test_event_completes_the_run_with_the_payload() -> None:
    history = History(FOREVER).end_episode()
    history.start_episode(after(T0, minutes=5)).event_from_client({"approved": True})
    response = replay_wait(history.context())
    assert response["isDone"] is True
    assert response["output"] == {"outcome": "stopped", "event": {"approved": True}}
    assert response["customStatus"] == {"waitingFor": None, "outcome": "stopped", "stoppedBy": None}


def test_stop_event_from_the_app_names_the_winning_request_and_unwraps_the_payload() -> None:
    stop_id = "0123456789abcdef0123456789abcdef"
    history = waiting_for_hour().start_episode(after(T0, minutes=5))
    history.event_from_client(stop_event(stop_id, {"approved": True}))
    history.event_from_client(stop_event("f" * 32, {"approved": False}))
    response = replay_wait(history.context())
    assert response["output"] == {"outcome": "stopped", "event": {"approved": True}}
    assert response["customStatus"]["stoppedBy"] == stop_id


@pytest.mark.parametrize("data", [
    {"stopId": "not-hex", "payload": 1},
    {"stopId": "0123456789abcdef0123456789abcdef", "payload": 1, "extra": 2},
    {"stopId": 5, "payload": 1},
])
def test_event_that_only_resembles_a_stop_event_is_delivered_whole(data: Any) -> None:
    history = waiting_for_hour().start_episode(after(T0, minutes=5)).event_from_webhook(data)
    response = replay_wait(history.context())
    assert response["output"] == {"outcome": "stopped", "event": data}
    assert response["customStatus"]["stoppedBy"] is None


def test_event_wins_and_cancels_the_timer() -> None:
    history = waiting_for_hour().start_episode(after(T0, minutes=5)).event_from_client("done")
    response = replay_wait(history.context())
    assert response["output"] == {"outcome": "stopped", "event": "done"}
    [timer] = all_timer_actions(response["actions"][0])
    assert timer["isCanceled"] is True


def test_timer_fired_completes_the_run_as_timed_out() -> None:
    history = waiting_for_hour().start_episode(after(T0, hours=1)).timer_fired(0, after(T0, hours=1))
    response = replay_wait(history.context())
    assert response["isDone"] is True
    assert response["output"] == {"outcome": "timed_out"}
    assert response["customStatus"] == {"waitingFor": None, "outcome": "timed_out"}
    [timer] = all_timer_actions(response["actions"][0])
    assert timer["isCanceled"] is False


@pytest.mark.parametrize("timeout", [FOREVER, HOUR])
def test_stop_before_orchestrator_waits_is_not_lost(timeout: dict[str, Any]) -> None:
    # The event is already in the first episode, next to ExecutionStarted: the SDK buffers it
    # until the wait is yielded.
    history = History(timeout).event_from_client({"early": True})
    response = replay_wait(history.context())
    assert response["isDone"] is True
    assert response["output"] == {"outcome": "stopped", "event": {"early": True}}


@pytest.mark.parametrize(
    ("first", "outcome"),
    [("event", "stopped"), ("timer", "timed_out")],
)
def test_event_and_timer_in_one_episode_yield_exactly_one_outcome(first: str, outcome: str) -> None:
    history = waiting_for_hour().start_episode(after(T0, hours=1))
    if first == "event":
        history.event_from_client("x").timer_fired(0, after(T0, hours=1))
    else:
        history.timer_fired(0, after(T0, hours=1)).event_from_client("x")
    response = replay_wait(history.context())
    assert response["isDone"] is True
    assert response["output"]["outcome"] == outcome
    assert len([a for a in response["actions"][0] if a["actionType"] == 11]) == 1


@pytest.mark.parametrize(
    "payload",
    [
        {"approved": True, "by": "ops"}, [1, 2], "text", 42, 1.5, True, None, "42", '{"a":1}',
        # Looks like the SDK's custom-object envelope; must stay plain data, not a class lookup.
        {"__class__": "Path", "__module__": "pathlib", "__data__": "/etc"},
    ],
    ids=repr,
)
def test_payload_from_python_client_arrives_as_posted(payload: Any) -> None:
    # DurableOrchestrationClient.raise_event double-encodes: Input = json.dumps(json.dumps(x)).
    history = waiting_for_hour().start_episode(after(T0, minutes=1)).event_from_client(payload)
    assert replay_wait(history.context())["output"]["event"] == payload


@pytest.mark.parametrize("payload", [{"approved": True}, [1, 2], "plain text", 42, None], ids=repr)
def test_payload_from_raw_webhook_post_arrives_as_posted(payload: Any) -> None:
    # A raw HTTP post to sendEventPostUri: Input = json.dumps(x), no extra encoding.
    history = waiting_for_hour().start_episode(after(T0, minutes=1)).event_from_webhook(payload)
    assert replay_wait(history.context())["output"]["event"] == payload


def test_normalize_keeps_non_json_strings() -> None:
    assert normalize_event_payload("not json {") == "not json {"
    assert normalize_event_payload('{"a": 1}') == {"a": 1}
    assert normalize_event_payload({"a": 1}) == {"a": 1}


def test_event_with_another_name_does_not_stop_the_run() -> None:
    history = History(FOREVER).end_episode()
    history.start_episode(after(T0, minutes=1)).event_from_client("x", name="workflow")
    response = replay_wait(history.context())
    assert response["isDone"] is False


def test_second_event_after_completion_changes_nothing() -> None:
    history = History(FOREVER).event_from_client("first").event_from_client("second")
    assert replay_wait(history.context())["output"] == {"outcome": "stopped", "event": "first"}


def test_ten_day_timeout_is_split_into_timers_the_backend_accepts() -> None:
    history = History(TEN_DAYS)
    timeline = []
    # Drive the run like the host: commit each new timer, then fire it at its fireAt.
    for timer_id in range(10):
        response = replay_wait(history.context())
        if response["isDone"]:
            break
        timers = all_timer_actions(response["actions"][0])
        assert len(timers) == timer_id + 1, "one new timer per episode"
        newest = timers[-1]["fireAt"]
        timeline.append(newest)
        episode_start = history.now
        fire_time = datetime.strptime(newest, "%Y-%m-%dT%H:%M:%S.%f%z")
        assert fire_time - episode_start <= SIX_DAYS, "no single timer beyond the 6-day limit"
        history.end_episode().timer_created(timer_id, fire_time)
        history.start_episode(fire_time).timer_fired(timer_id, fire_time)
    assert response["output"] == {"outcome": "timed_out"}
    assert timeline == [fire_at(after(T0, days=d)) for d in (3, 6, 10)]
    assert response["customStatus"]["outcome"] == "timed_out"


def test_ten_day_timeout_without_long_timer_settings_would_be_one_timer() -> None:
    # Documents why the host's V3 settings matter: without them the SDK emits one 10-day
    # timer, which Azure Storage rejects.
    response = replay_wait(History(TEN_DAYS).context(long_timers=False))
    [timer] = all_timer_actions(response["actions"][0])
    assert timer["fireAt"] == fire_at(after(T0, days=10))


def test_event_during_a_long_timeout_stops_the_run() -> None:
    history = History(TEN_DAYS).end_episode().timer_created(0, after(T0, days=3))
    history.start_episode(after(T0, days=3)).timer_fired(0, after(T0, days=3))
    history.end_episode().timer_created(1, after(T0, days=6))
    history.start_episode(after(T0, days=4)).event_from_client({"late": True})
    response = replay_wait(history.context())
    assert response["output"] == {"outcome": "stopped", "event": {"late": True}}


def test_replay_emits_no_log_records(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="workflow.orchestrator")
    first = History(HOUR)
    replay(first.context())
    assert [r.getMessage() for r in caplog.records] == [
        "workflow aaron waiting for Workflow until 2025-06-01T13:00:00.123456Z"
    ]
    caplog.clear()
    second = waiting_for_hour().start_episode(after(T0, minutes=5)).event_from_client("x")
    replay(second.context())
    assert not any("waiting for" in r.getMessage() for r in caplog.records)


def test_same_history_replays_to_the_same_response() -> None:
    history = waiting_for_hour().start_episode(after(T0, minutes=5)).event_from_client({"a": 1})
    assert replay(copy.deepcopy(history).context()) == replay(history.context())


def test_malformed_input_fails_the_run_with_a_clear_message() -> None:
    with pytest.raises(Exception, match="orchestration input must be"):
        replay(History({"nokey": 1}).context())


@pytest.mark.parametrize(("posted", "arrives"), [
    ("42", 42),  # a JSON string holding JSON text is parsed: the Python client's encoding
    ({"stopId": "a" * 32, "payload": [1]}, [1]),  # the app's own envelope is opened
], ids=repr)
def test_raw_webhook_post_arrives_as_posted_except_the_two_documented_shapes(
        posted: Any, arrives: Any) -> None:
    """The README's exceptions to 'as posted', for events that bypass the app's stop endpoint."""
    history = waiting_for_hour().start_episode(after(T0, minutes=1)).event_from_webhook(posted)
    assert replay_wait(history.context())["output"]["event"] == arrives


def test_malformed_input_names_the_field_and_the_rule() -> None:
    from workflow.orchestrator import WorkflowInput
    with pytest.raises(ValueError, match=r"^timeoutSeconds must be a whole number of seconds"):
        WorkflowInput.from_json({"key": "aaron", "timeoutSeconds": -1})


def _wait_then_notify(context: df.DurableOrchestrationContext) -> Any:
    """A customised workflow: the wait, then one step after the event."""
    output = yield from wait_for_stop(context, WorkflowInput.from_json(context.get_input()))
    yield context.call_activity("notify", output)
    return output


def replay_customised(history: History) -> dict[str, Any]:
    handle = df.Orchestrator.create(_wait_then_notify)
    return json.loads(handle(context=func.OrchestrationContext(json.dumps(history.context()))))


@pytest.mark.parametrize(("outcome", "expected_status"), [
    ("event", {"waitingFor": None, "outcome": "stopped", "stoppedBy": "0123456789abcdef" * 2}),
    ("timer", {"waitingFor": None, "outcome": "timed_out"}),
])
def test_the_episode_that_ends_the_wait_records_its_outcome_before_a_later_step(
        outcome: str, expected_status: dict[str, Any]) -> None:
    """The stop answers from this record, so it must ride on the episode that takes the event
    (or the timer), next to the later step's action, not wait for the run's last episode."""
    history = waiting_for_hour().start_episode(after(T0, hours=1))
    if outcome == "event":
        history.event_from_client(stop_event("0123456789abcdef" * 2, {"n": 1}))
    else:
        history.timer_fired(0, after(T0, hours=1))
    response = replay_customised(history)
    assert response["isDone"] is False
    assert response["customStatus"] == expected_status
    [activity] = [a for a in response["actions"][-1] if a["actionType"] == 0]  # CallActivity
    assert activity["functionName"] == "notify"


def test_the_wait_takes_the_first_event_only_even_with_later_steps() -> None:
    history = History(FOREVER).event_from_client(stop_event("a" * 32, 1))
    history.event_from_client(stop_event("b" * 32, 2))
    response = replay_customised(history)
    assert response["customStatus"]["stoppedBy"] == "a" * 32
    [activity] = [a for a in response["actions"][-1] if a["actionType"] == 0]
    assert json.loads(activity["input"]) == {"outcome": "stopped", "event": 1}
