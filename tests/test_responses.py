"""responses: the one table from domain exceptions to HTTP status codes."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

import azure.functions as func

import pytest

from workflow import errors, responses
from workflow.inputs import parse_key
from workflow.lookup import WorkflowStatus

KEY = parse_key("aaron")
REQUEST_ERRORS = {
    errors.InvalidKey("bad"): HTTPStatus.BAD_REQUEST,
    errors.InvalidPayload("bad"): HTTPStatus.BAD_REQUEST,
    errors.PayloadTooLarge("big"): HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    errors.NotFound(KEY): HTTPStatus.NOT_FOUND,
    errors.AlreadyRunning(WorkflowStatus(KEY, KEY.instance_id, "Running")): HTTPStatus.CONFLICT,
    errors.StopConflict(WorkflowStatus(KEY, KEY.instance_id, "Completed")): HTTPStatus.CONFLICT,
    errors.AlreadyFinished(KEY): HTTPStatus.GONE,
    errors.BackendError("bad"): HTTPStatus.BAD_GATEWAY,
    errors.BackendUnavailable("down"): HTTPStatus.SERVICE_UNAVAILABLE,
}


def test_every_request_time_domain_exception_has_a_status() -> None:
    direct = set(errors.WorkflowError.__subclasses__())
    request_time = (direct | {sub for cls in direct for sub in cls.__subclasses__()}) - {
        errors.SettingsError
    }
    assert request_time == {type(exc) for exc in REQUEST_ERRORS}


@pytest.mark.parametrize("exc", list(REQUEST_ERRORS), ids=lambda e: type(e).__name__)
def test_domain_exception_becomes_its_status_with_json_error_body(exc: errors.WorkflowError) -> None:
    response = responses.error(exc)
    assert response.status_code == REQUEST_ERRORS[exc]
    assert response.headers["Content-Type"] == "application/json"
    assert json.loads(response.get_body())["error"] == str(exc)


def test_startup_only_exception_is_not_an_http_answer() -> None:
    with pytest.raises(KeyError):
        responses.error(errors.SettingsError("bad"))


FINISHED = WorkflowStatus(KEY, KEY.instance_id, "Completed", custom_status={"outcome": "timed_out"},
                          output={"outcome": "timed_out"})
FINISHED_JSON = {"input": "aaron", "instanceId": "workflow-aaron", "runtimeStatus": "Completed",
                 "createdTime": None, "lastUpdatedTime": None,
                 "customStatus": {"outcome": "timed_out"}, "output": {"outcome": "timed_out"}}


def answer(response: func.HttpResponse) -> tuple[int, dict[str, str], dict[str, Any]]:
    return response.status_code, dict(response.headers), json.loads(response.get_body())


# Factories, not instances: each exception (and its message) is built when the test runs.
@pytest.mark.parametrize(("make", "headers", "body"), [
    (lambda: errors.NotFound(KEY), {},
     {"error": "no workflow was started for key 'aaron'", "input": "aaron",
      "instanceId": "workflow-aaron"}),
    (lambda: errors.AlreadyFinished(KEY), {"Location": "/api/check/aaron"},
     {"error": "the workflow for key 'aaron' has already finished (completed, failed or "
               "terminated); start it again to run a new one",
      "input": "aaron", "instanceId": "workflow-aaron"}),
    (lambda: errors.AlreadyFinished(KEY, FINISHED), {"Location": "/api/check/aaron"},
     {"error": "the workflow for key 'aaron' has already finished (completed, failed or "
               "terminated); start it again to run a new one", **FINISHED_JSON}),
    (lambda: errors.StopConflict(FINISHED), {"Location": "/api/check/aaron"},
     {"error": "another stop request ended the workflow for key 'aaron' first; this request's "
               "event was not used", **FINISHED_JSON}),
    (lambda: errors.BackendUnavailable("down"), {"Retry-After": "5"}, {"error": "down"}),
], ids=["NotFound", "AlreadyFinished", "AlreadyFinished-with-run", "StopConflict",
        "BackendUnavailable"])
def test_error_answers_carry_exactly_their_context(
        make: Any, headers: dict[str, str], body: dict[str, Any]) -> None:
    _, sent_headers, sent_body = answer(responses.error(make()))
    assert sent_headers == {"Content-Type": "application/json", **headers}
    assert sent_body == body


def test_unconfirmed_stop_is_202_with_the_key_and_no_run() -> None:
    assert answer(responses.stopped(KEY, None)) == (
        202, {"Content-Type": "application/json", "Location": "/api/check/aaron",
              "Retry-After": "5"},
        {"input": "aaron", "instanceId": "workflow-aaron", "event": "Workflow", "confirmed": False})


def test_confirmed_stop_carries_the_finished_run() -> None:
    assert answer(responses.stopped(KEY, FINISHED))[2] == {
        "event": "Workflow", "confirmed": True, **FINISHED_JSON}


def test_json_answers_are_strict_utf8_json() -> None:
    response = responses.json_response({"note": "ünï"}, HTTPStatus.OK)
    assert response.charset == "utf-8" and response.mimetype == "application/json"
    with pytest.raises(ValueError):
        responses.json_response({"x": float("nan")}, HTTPStatus.OK)


def test_missing_status_names_the_exception_type() -> None:
    with pytest.raises(KeyError, match="no HTTP status for SettingsError"):
        responses.status_for(errors.SettingsError("bad"))
