"""The OpenAPI 3.0.3 description of the HTTP surface, derived from the rules it describes.

The ``input`` path parameter's pattern and length come from ``workflow.inputs`` (its
``KEY_EXPRESSION`` is written in the syntax Python and ECMA-262 share, so it is only anchored
here), the routes and their parameter from ``workflow.settings``, the route prefix from
``workflow.responses``, so the document cannot drift from what the app enforces.
``tests/test_openapi.py`` checks it against the function index and the input rule;
``tests/proofs/test_openapi_conformance.py`` fuzzes a running app with it.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import azure.functions as func
from azure.durable_functions.models import OrchestrationRuntimeStatus

from workflow import inputs, responses
from workflow.settings import EVENT_NAME, ROUTE_PARAMETER, route

OPENAPI_VERSION = "3.0.3"
DOCUMENT_ROUTE = "openapi.json"
"""Route of the document itself (``GET /api/openapi.json``, anonymous)."""

FUNCTION_KEY_QUERY = "code"
FUNCTION_KEY_HEADER = "x-functions-key"

# OpenAPI ``pattern`` is an unanchored ECMA-262 search, hence ``^...$`` (without the ``m`` flag
# ECMA's ``$`` matches only at the very end, as ``\Z`` does in Python). The prefixes hold no
# character that is special in ECMA-262 outside a class.
KEY_PATTERN = f"^{inputs.KEY_EXPRESSION}$"
INSTANCE_ID_PATTERN = f"^{inputs.INSTANCE_ID_PREFIX}{inputs.KEY_EXPRESSION}$"
CHECK_LOCATION_PATTERN = f"^{responses.ROUTE_PREFIX}/check/{inputs.KEY_EXPRESSION}$"

_KEY_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": inputs.MAX_KEY_LENGTH,
    "pattern": KEY_PATTERN,
}


def document() -> dict[str, Any]:
    """The OpenAPI document as a fresh dict (callers may mutate it).

    Guarantees: describes exactly the app's HTTP triggers, every status each one answers with
    (including 401 from the host for a missing function key, and 502/503 for backend failures),
    and the JSON schema of every response body.
    """
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Workflow API",
            "version": "1.0.0",
            "description": (
                "One long-running durable workflow per business key. `start` begins it, `check` "
                "reports it, `stop` raises the event that ends it. Every body is JSON; errors "
                "are `{\"error\": ...}`."
            ),
        },
        "servers": [{"url": responses.ROUTE_PREFIX}],
        "security": [{"functionKeyQuery": []}, {"functionKeyHeader": []}],
        "paths": {
            f"/{route('start')}": {
                "parameters": [_KEY_PARAMETER],
                "post": _start_operation("startWorkflow"),
                "get": _start_operation("startWorkflowByGet"),
            },
            f"/{route('check')}": {
                "parameters": [_KEY_PARAMETER],
                "get": {
                    "operationId": "checkWorkflow",
                    "summary": "Report the key's workflow",
                    "responses": {
                        "200": _json("The workflow's status.", "WorkflowStatus"),
                        "400": _BAD_KEY,
                        "404": _json("No workflow was ever started for the key.", "KeyError"),
                        **_HOST_AND_BACKEND_FAILURES,
                    },
                },
            },
            f"/{route('stop')}": {
                "parameters": [_KEY_PARAMETER],
                "post": _stop_operation("stopWorkflow", with_body=True),
                "get": _stop_operation("stopWorkflowByGet", with_body=False),
            },
            f"/{DOCUMENT_ROUTE}": {
                "get": {
                    "operationId": "getOpenApiDocument",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": _json("The OpenAPI document.", "OpenApiDocument")},
                },
            },
        },
        "components": {
            "securitySchemes": {
                "functionKeyQuery": {
                    "type": "apiKey",
                    "in": "query",
                    "name": FUNCTION_KEY_QUERY,
                    "description": "Function or host key as the `code` query parameter.",
                },
                "functionKeyHeader": {
                    "type": "apiKey",
                    "in": "header",
                    "name": FUNCTION_KEY_HEADER,
                    "description": "Function or host key in the `x-functions-key` header.",
                },
            },
            "schemas": _schemas(),
        },
    }


def http_response() -> func.HttpResponse:
    """``200`` with the document as ``application/json``."""
    return responses.json_response(document(), HTTPStatus.OK)


_KEY_PARAMETER = {
    "name": ROUTE_PARAMETER,
    "in": "path",
    "required": True,
    "description": f"The business key: {inputs.ALLOWED_DESCRIPTION}. Case-sensitive.",
    "schema": {"$ref": "#/components/schemas/Key"},
}

_LOCATION = {
    "description": "Relative URL of the key's check endpoint.",
    "schema": {"type": "string", "pattern": CHECK_LOCATION_PATTERN},
}
_RETRY_AFTER = {
    "description": "Seconds to wait before polling again.",
    "schema": {"type": "integer", "minimum": 0},
}


def _json(description: str, schema: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {
            responses.JSON_CONTENT_TYPE: {"schema": {"$ref": f"#/components/schemas/{schema}"}},
        },
    }
    if headers:
        response["headers"] = headers
    return response


def _required(header: dict[str, Any]) -> dict[str, Any]:
    return {**header, "required": True}


_BAD_KEY = _json("The key breaks the input rules; the message names the rule.", "Error")
_HOST_AND_BACKEND_FAILURES = {
    "401": {"description": "The Functions host rejected a missing or wrong function key (no body)."},
    "502": _json("The durable backend answered with a failure.", "Error"),
    "503": _json("The durable backend could not be reached.", "Error",
                 headers={"Retry-After": _RETRY_AFTER}),
}


def _start_operation(operation_id: str) -> dict[str, Any]:
    return {
        "operationId": operation_id,
        "summary": "Start the key's workflow unless one is active",
        "description": "A finished previous run is replaced by a fresh one.",
        "responses": {
            "202": _json(
                "Started; poll the check endpoint in `Location`.",
                "WorkflowStatus",
                headers={"Location": _required(_LOCATION), "Retry-After": _required(_RETRY_AFTER)},
            ),
            "400": _BAD_KEY,
            "409": _json("A run for the key is already active; the body is its status.",
                         "ErrorWithStatus", headers={"Location": _LOCATION}),
            **_HOST_AND_BACKEND_FAILURES,
        },
    }


def _stop_operation(operation_id: str, *, with_body: bool) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": f"Raise the {EVENT_NAME!r} event that ends the key's workflow",
        "responses": {
            "202": _json(
                "The run has taken this request's event (`confirmed`): its wait is over and the "
                "body is the run's status at that moment, `Running` while steps after the event "
                "go on, `Completed` when there are none. Or the event is still on its way "
                "(`confirmed: false`).",
                "StopAccepted",
                headers={"Location": _required(_LOCATION), "Retry-After": _required(_RETRY_AFTER)},
            ),
            "400": _json(
                "The key breaks the input rules, or the body is not strict JSON (NaN, Infinity, "
                f"numbers beyond a float, nesting deeper than {inputs.MAX_PAYLOAD_DEPTH} levels).",
                "Error",
            ),
            "404": _json("No workflow was ever started for the key.", "KeyError"),
            "413": _json(
                f"The body is longer than {inputs.MAX_PAYLOAD_BYTES:,} bytes.", "Error"),
            "409": _json("Another stop request's event ended the wait first; the body is the "
                         "run's status.", "ErrorWithStatus", headers={"Location": _LOCATION}),
            "410": _json("The run has already finished, or its timeout ended the wait first "
                         "(the body then holds the run's status); start the key again for a new "
                         "run once it has finished.",
                         "KeyError", headers={"Location": _LOCATION}),
            **_HOST_AND_BACKEND_FAILURES,
        },
    }
    if with_body:
        operation["requestBody"] = {
            "required": False,
            "description": (
                "The event's payload: any JSON value of at most "
                f"{inputs.MAX_PAYLOAD_BYTES:,} bytes; an empty body sends `null`."
            ),
            "content": {responses.JSON_CONTENT_TYPE: {"schema": {}}},
        }
    return operation


def _status_properties() -> dict[str, Any]:
    timestamp = {"type": "string", "format": "date-time", "nullable": True}
    return {
        "input": {"$ref": "#/components/schemas/Key"},
        "instanceId": {"type": "string", "pattern": INSTANCE_ID_PATTERN},
        "runtimeStatus": {"$ref": "#/components/schemas/RuntimeStatus"},
        "createdTime": timestamp,
        "lastUpdatedTime": timestamp,
        "customStatus": {"description": "The orchestrator's custom status (any JSON)."},
        "output": {"description": "The run's output once finished (any JSON)."},
    }


def _schemas() -> dict[str, Any]:
    status = _status_properties()
    error = {"error": {"type": "string", "description": "What went wrong, safe to show."}}
    return {
        "Key": {**_KEY_SCHEMA, "description": inputs.ALLOWED_DESCRIPTION},
        "RuntimeStatus": {
            "type": "string",
            "enum": [member.value for member in OrchestrationRuntimeStatus],
        },
        "WorkflowStatus": {
            "type": "object",
            "required": list(status),
            "properties": status,
            # Closed on purpose: management URLs (which carry the system key) must never appear.
            "additionalProperties": False,
        },
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": error,
            "additionalProperties": False,
        },
        "KeyError": {
            "type": "object",
            "required": ["error", "input", "instanceId"],
            "properties": {**error, **status},
            "additionalProperties": False,
        },
        "ErrorWithStatus": {
            "type": "object",
            "required": ["error", *status],
            "properties": {**error, **status},
            "additionalProperties": False,
        },
        "StopAccepted": {
            "type": "object",
            "required": ["input", "instanceId", "event", "confirmed"],
            "properties": {
                **status,
                "event": {"type": "string", "enum": [EVENT_NAME]},
                "confirmed": {
                    "type": "boolean",
                    "description": "True when the run has taken this request's event: it ended "
                    "the wait, and `customStatus.stoppedBy` names this request. The body then "
                    "also holds the run's status as read at that moment: `runtimeStatus` is "
                    "`Running` (and `output` null) while steps after the event go on, "
                    "`Completed` once there are none left; poll `Location` for the end.",
                },
            },
            "additionalProperties": False,
        },
        "OpenApiDocument": {
            "type": "object",
            "required": ["openapi", "info", "paths"],
            "properties": {"openapi": {"type": "string"}},
        },
    }
