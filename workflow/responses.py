"""JSON HTTP responses, and the one table from domain exceptions to status codes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import azure.functions as func

from workflow.errors import (
    AlreadyFinished,
    AlreadyRunning,
    BackendError,
    BackendUnavailable,
    InvalidKey,
    InvalidPayload,
    NotFound,
    PayloadTooLarge,
    StopConflict,
    WorkflowError,
)
from workflow.inputs import WorkflowKey
from workflow.settings import EVENT_NAME
from workflow.status import WorkflowStatus

# allow_nan=False: a body is always strict JSON (inputs never admit NaN or Infinity). Made
# once: json.dumps with an option builds a new encoder on every call.
_STRICT_JSON = json.JSONEncoder(allow_nan=False)

ROUTE_PREFIX = "/api"
"""The host's default ``extensions.http.routePrefix`` (also set in host.json)."""

RETRY_AFTER_SECONDS = 5
"""Polling hint sent with 202 answers; matches what the host sends for running instances."""

JSON_CONTENT_TYPE = "application/json"

ERROR_STATUS: Mapping[type[WorkflowError], HTTPStatus] = {
    InvalidKey: HTTPStatus.BAD_REQUEST,
    InvalidPayload: HTTPStatus.BAD_REQUEST,
    PayloadTooLarge: HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
    NotFound: HTTPStatus.NOT_FOUND,
    AlreadyRunning: HTTPStatus.CONFLICT,
    StopConflict: HTTPStatus.CONFLICT,
    AlreadyFinished: HTTPStatus.GONE,
    BackendError: HTTPStatus.BAD_GATEWAY,
    BackendUnavailable: HTTPStatus.SERVICE_UNAVAILABLE,
}
"""Every domain exception a request can raise, and the status code it becomes."""


def check_location(key: WorkflowKey) -> str:
    """Relative URL of the check endpoint for ``key`` (every accepted key is URL-safe as is)."""
    return f"{ROUTE_PREFIX}/check/{key.value}"


def json_response(
    body: Mapping[str, Any], status: HTTPStatus, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    """A JSON response; ``json.dumps`` escapes anything a client sent."""
    return func.HttpResponse(
        body=_STRICT_JSON.encode(body),
        status_code=int(status),
        # Content-Type explicitly too: ``mimetype`` alone is not visible in ``headers``.
        headers={"Content-Type": JSON_CONTENT_TYPE, **(headers or {})},
        mimetype=JSON_CONTENT_TYPE,
        charset="utf-8",
    )


def reported(
    body: Mapping[str, Any], status: HTTPStatus, headers: Mapping[str, str], key: WorkflowKey
) -> func.HttpResponse:
    """``json_response`` for a body carrying what the backend reported about ``key``'s run; a
    run whose output or custom status is not JSON (NaN or Infinity, which a Python orchestrator
    may return) becomes a 502 ``BackendError`` answer saying so, never a bare 500."""
    try:
        return json_response(body, status, headers)
    except ValueError:
        return error(
            BackendError(
                f"the durable backend reported a status for key {key.value!r} that is not "
                "valid JSON (NaN or Infinity in its output or custom status); it cannot be shown"
            )
        )


def accepted(key: WorkflowKey, body: Mapping[str, Any]) -> func.HttpResponse:
    """202 pointing at the check endpoint, with a polling hint."""
    return reported(
        body,
        HTTPStatus.ACCEPTED,
        {"Location": check_location(key), "Retry-After": str(RETRY_AFTER_SECONDS)},
        key,
    )


def started(status: WorkflowStatus) -> func.HttpResponse:
    """202 for a run that was just started."""
    return accepted(status.key, status.to_json())


def stopped(key: WorkflowKey, decided: WorkflowStatus | None) -> func.HttpResponse:
    """202 for an accepted stop: ``confirmed`` with the run's status as read when it had taken
    this request's event (``Running`` while steps after the event go on), unconfirmed (still on
    its way) otherwise."""
    body: dict[str, Any] = {"input": key.value, "instanceId": key.instance_id,
                            "event": EVENT_NAME, "confirmed": decided is not None}
    if decided is not None:
        body.update(decided.to_json())
    return accepted(key, body)


def status(status: WorkflowStatus) -> func.HttpResponse:
    """200 with the instance's status (502 when the backend's status is not JSON)."""
    return reported(status.to_json(), HTTPStatus.OK, {}, status.key)


def status_for(exc: WorkflowError) -> HTTPStatus:
    """Look ``exc`` up in ``ERROR_STATUS`` (subclasses inherit their base's code).

    Raises:
        KeyError: ``exc`` is not a request-time domain exception (a programming error).
    """
    for cls in type(exc).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    raise KeyError(f"no HTTP status for {type(exc).__name__}")


def error(exc: WorkflowError) -> func.HttpResponse:
    """The response for a domain exception, per ``ERROR_STATUS``: ``{"error": ...}`` plus context.

    Raises:
        KeyError: ``exc`` is a domain exception missing from the table (a programming error).
    """
    code = status_for(exc)
    body: dict[str, Any] = {"error": str(exc)}
    headers: dict[str, str] = {}
    key: WorkflowKey | None = None
    if isinstance(exc, (AlreadyRunning, StopConflict)):
        key = exc.status.key
        # The caller gets the existing run, as if it had asked check.
        body.update(exc.status.to_json())
        headers["Location"] = check_location(exc.status.key)
    elif isinstance(exc, AlreadyFinished):
        key = exc.key
        body.update(exc.status.to_json() if exc.status is not None else _identity(exc.key))
        headers["Location"] = check_location(exc.key)
    elif isinstance(exc, NotFound):
        body.update(_identity(exc.key))  # no Location: a 404 has nothing to point at
    elif isinstance(exc, BackendUnavailable):
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    if key is not None:
        return reported(body, code, headers, key)
    return json_response(body, code, headers)


def _identity(key: WorkflowKey) -> dict[str, str]:
    return {"input": key.value, "instanceId": key.instance_id}
