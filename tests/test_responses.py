"""responses: the one table from domain exceptions to HTTP status codes."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest

from workflow import errors, responses
from workflow.inputs import parse_key
from workflow.lookup import WorkflowStatus

KEY = parse_key("aaron")
REQUEST_ERRORS = {
    errors.InvalidKey("bad"): HTTPStatus.BAD_REQUEST,
    errors.InvalidPayload("bad"): HTTPStatus.BAD_REQUEST,
    errors.NotFound(KEY): HTTPStatus.NOT_FOUND,
    errors.AlreadyRunning(WorkflowStatus(KEY, KEY.instance_id, "Running")): HTTPStatus.CONFLICT,
    errors.StopConflict(WorkflowStatus(KEY, KEY.instance_id, "Completed")): HTTPStatus.CONFLICT,
    errors.AlreadyFinished(KEY): HTTPStatus.GONE,
    errors.BackendError("bad"): HTTPStatus.BAD_GATEWAY,
    errors.BackendUnavailable("down"): HTTPStatus.SERVICE_UNAVAILABLE,
}


def test_every_request_time_domain_exception_has_a_status() -> None:
    request_time = set(errors.WorkflowError.__subclasses__()) - {errors.SettingsError}
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
