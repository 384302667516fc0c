"""The queue door to the stop: message decoding, the same rules as the HTTP stop, outcomes, and
which failures go back to the host (retried, then poisoned) and which complete the message."""
from __future__ import annotations

import json
import logging

import aiohttp
import pytest

from tests.app_index import WITH_A_STEP_AFTER_THE_EVENT
from tests.fakes import FakeDurableClient
from workflow import queue_stop
from workflow.errors import BackendUnavailable
from workflow.inputs import MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH
from workflow.queue_stop import BadStopMessage, Outcome, parse_message, stop_from_message
from workflow.settings import Settings

SETTINGS = Settings(stop_confirm_seconds=5.0)
OTHER_STOP = "0123456789abcdef0123456789abcdef"


def message(value: object) -> bytes:
    return json.dumps(value).encode()


def test_a_message_names_the_key_and_carries_the_event_as_payload() -> None:
    parsed = parse_message(message({"input": "aaron", "event": {"approved": True}}))
    assert parsed.key.value == "aaron"
    assert parsed.payload == {"approved": True}


def test_event_is_optional_and_other_members_are_ignored() -> None:
    parsed = parse_message(message({"input": "aaron", "source": "billing"}))
    assert parsed.payload is None


@pytest.mark.parametrize("body, fragment", [
    (b"not json", "not UTF-8 JSON"),
    (b"\xff\xfe", "not UTF-8 JSON"),
    (b'"aaron"', "must be a JSON object"),
    (b'{"event": 1}', '"input"'),
    (b'{"input": 42}', '"input"'),
    (message({"input": "bad key"}), "U+0020 SPACE"),
    (message({"input": "x" * 65}), "maximum is 64"),
    (b'{"input": "aaron", "event": NaN}', "NaN is not valid JSON"),
    (b'{"input": "aaron", "event": 1e999}', "not valid JSON"),
    (message({"input": "aaron", "event": json.loads("[" * (MAX_PAYLOAD_DEPTH + 1)
                                                        + "]" * (MAX_PAYLOAD_DEPTH + 1))}),
     f"at most {MAX_PAYLOAD_DEPTH} levels"),
    (message({"input": "aaron", "event": "x" * MAX_PAYLOAD_BYTES}),
     f"at most {MAX_PAYLOAD_BYTES:,} bytes"),
])
def test_messages_the_http_stop_would_refuse_are_bad_messages(body: bytes, fragment: str) -> None:
    with pytest.raises(BadStopMessage) as info:
        parse_message(body)
    assert fragment in str(info.value)


def test_an_event_at_the_depth_limit_is_accepted_as_over_http() -> None:
    deepest = json.loads("[" * MAX_PAYLOAD_DEPTH + "]" * MAX_PAYLOAD_DEPTH)
    assert parse_message(message({"input": "aaron", "event": deepest})).payload == deepest


async def test_a_queued_stop_ends_the_run_with_its_payload(caplog: pytest.LogCaptureFixture) -> None:
    host = FakeDurableClient()
    host.seed("workflow-aaron")
    caplog.set_level(logging.INFO, logger="workflow.queue_stop")

    outcome = await stop_from_message(message({"input": "aaron", "event": {"n": 1}}), host,
                                      SETTINGS)

    assert outcome is Outcome.STOPPED
    run = host.instances["workflow-aaron"]
    assert run.runtime_status == "Completed"
    assert run.output == {"outcome": "stopped", "event": {"n": 1}}
    assert "queued stop for key aaron: stopped" in caplog.text


async def test_a_queued_stop_is_stopped_as_soon_as_the_run_takes_it_while_later_steps_run(
        caplog: pytest.LogCaptureFixture) -> None:
    """The same stop as over HTTP: confirmed from the run's record, not from the run's
    end (waiting for the end would report UNCONFIRMED once the 5 s window passed)."""
    host = FakeDurableClient()
    host.orchestrator = WITH_A_STEP_AFTER_THE_EVENT
    host.run_activities = False  # the step after the event is in flight
    host.seed("workflow-aaron")
    caplog.set_level(logging.INFO, logger="workflow.queue_stop")
    outcome = await stop_from_message(message({"input": "aaron", "event": 1}), host, SETTINGS)
    assert outcome is Outcome.STOPPED
    assert host.instances["workflow-aaron"].runtime_status == "Running"
    assert "queued stop for key aaron: stopped" in caplog.text


@pytest.mark.parametrize("setup, expected", [
    (lambda host: None, Outcome.NOT_FOUND),
    (lambda host: host.seed("workflow-aaron", "Completed"), Outcome.ALREADY_FINISHED),
])
async def test_unknown_and_finished_runs_complete_the_message_with_their_outcome(
        setup: object, expected: Outcome, caplog: pytest.LogCaptureFixture) -> None:
    host = FakeDurableClient()
    setup(host)  # type: ignore[operator]
    caplog.set_level(logging.INFO, logger="workflow.queue_stop")
    assert await stop_from_message(message({"input": "aaron"}), host, SETTINGS) is expected
    assert f"queued stop for key aaron: {expected.value}" in caplog.text


async def test_a_queued_stop_that_another_stop_beat_is_lost_not_retried() -> None:
    host = FakeDurableClient()
    host.seed("workflow-aaron")
    # Another stop's event is already in the run's history when the queue's event arrives:
    # the orchestrator waits once, so that earlier event wins.
    host.instances["workflow-aaron"].events.append(
        ("Workflow", json.dumps(json.dumps({"stopId": OTHER_STOP, "payload": None}))))
    assert await stop_from_message(message({"input": "aaron"}), host, SETTINGS) is Outcome.LOST
    assert host.instances["workflow-aaron"].custom_status["stoppedBy"] == OTHER_STOP


async def test_a_bad_message_is_logged_and_raised_so_the_host_poisons_it(
        caplog: pytest.LogCaptureFixture) -> None:
    host = FakeDurableClient()
    with pytest.raises(BadStopMessage):
        await stop_from_message(b"{oops", host, SETTINGS, "m-1")
    assert f"queued stop m-1 refused, it will go to {queue_stop.POISON_QUEUE_NAME}" in caplog.text
    assert host.calls == []


async def test_a_backend_outage_is_raised_so_the_host_retries_the_message() -> None:
    host = FakeDurableClient()
    host.seed("workflow-aaron")
    host.fail_next(aiohttp.ClientConnectionError("refused"))
    with pytest.raises(BackendUnavailable):
        await stop_from_message(message({"input": "aaron"}), host, SETTINGS)
    assert host.instances["workflow-aaron"].runtime_status == "Running"


@pytest.mark.parametrize("body", [
    b'{"input": "aaron", "source": NaN}',
    b'{"input": "aaron", "source": -Infinity}',
    b'{"input": Infinity}',
])
def test_a_message_that_is_not_strict_json_is_bad_even_outside_the_event(body: bytes) -> None:
    with pytest.raises(BadStopMessage, match=r"^message is not UTF-8 JSON: .*is not valid JSON"):
        parse_message(body)


def test_a_message_nested_past_what_json_can_parse_is_bad_and_says_why() -> None:
    depth = 100_000
    with pytest.raises(BadStopMessage) as info:
        parse_message(b"[" * depth + b"]" * depth)
    assert str(info.value) == "message is not UTF-8 JSON: it nests too deeply"


@pytest.mark.parametrize("body, reason", [
    (b'["aaron"]', 'message must be a JSON object {"input": "<key>", "event": ...}'),
    (b'{"key": "aaron"}', 'message must have "input": the key, as a string'),
    (b'{"input": ["aaron"]}', 'message must have "input": the key, as a string'),
])
def test_a_message_of_the_wrong_shape_names_the_shape_it_must_have(body: bytes,
                                                                   reason: str) -> None:
    with pytest.raises(BadStopMessage) as info:
        parse_message(body)
    assert str(info.value) == reason


@pytest.mark.parametrize("event, reason", [
    ("1e999", "event must be empty or valid JSON: Infinity is not valid JSON"),
    ("[" * (MAX_PAYLOAD_DEPTH + 1) + "]" * (MAX_PAYLOAD_DEPTH + 1),
     f"event must nest arrays and objects at most {MAX_PAYLOAD_DEPTH} levels deep"),
])
def test_a_refused_event_is_named_as_the_event_not_as_a_request_body(event: str,
                                                                      reason: str) -> None:
    with pytest.raises(BadStopMessage) as info:
        parse_message(b'{"input": "aaron", "event": ' + event.encode() + b"}")
    assert str(info.value) == reason


async def test_a_stop_not_confirmed_in_time_completes_the_message_as_raised_not_confirmed(
        caplog: pytest.LogCaptureFixture) -> None:
    host = FakeDurableClient()
    host.seed("workflow-aaron")
    host.process_events = False  # the host has the event but has not run the orchestrator yet
    caplog.set_level(logging.INFO, logger="workflow.queue_stop")

    outcome = await stop_from_message(message({"input": "aaron", "event": 7}), host,
                                      Settings(stop_confirm_seconds=0.001))

    assert outcome is Outcome.UNCONFIRMED
    run = host.instances["workflow-aaron"]
    assert run.runtime_status == "Running"
    assert [name for name, _ in run.events] == ["Workflow"]  # the event is durable, not lost
    assert [r.getMessage() for r in caplog.records] == [
        "queued stop for key aaron: raised, not confirmed"]


async def test_each_outcome_is_logged_once_at_info_with_the_key(
        caplog: pytest.LogCaptureFixture) -> None:
    host = FakeDurableClient()
    host.seed("workflow-aaron")
    caplog.set_level(logging.INFO, logger="workflow.queue_stop")
    await stop_from_message(message({"input": "aaron"}), host, SETTINGS, "m-7")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "queued stop for key aaron: stopped")]


async def test_a_bad_message_is_logged_as_an_error_with_its_id_and_the_rule_it_broke(
        caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(BadStopMessage):
        await stop_from_message(message({"input": "bad key"}), FakeDurableClient(), SETTINGS,
                                "m-2")
    [record] = caplog.records
    assert record.levelname == "ERROR"
    assert record.getMessage().startswith(
        "queued stop m-2 refused, it will go to workflow-stop-poison once the host gives up: "
        "key contains disallowed character U+0020 SPACE")
