"""The OpenAPI document: valid, complete for the function index, and equal to the input rules."""

from __future__ import annotations

import json
import re
from typing import Any

import azure.functions as func
import jsonschema_rs  # the ECMA-262 validator schemathesis uses (installed with it)
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import validate

from tests.app_index import functions
from workflow import inputs, openapi, responses
from workflow.errors import InvalidKey
from workflow.inputs import parse_key

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
FUNCTION_KEY_SECURITY = [{"functionKeyQuery": []}, {"functionKeyHeader": []}]


def http_triggers() -> dict[str, dict[str, Any]]:
    """Function name -> its ``httpTrigger`` binding, from the worker's index of the app."""
    triggers = {}
    for name, function in functions().items():
        bindings = json.loads(function.get_function_json())["bindings"]
        for binding in bindings:
            if binding["type"] == "httpTrigger":
                triggers[name] = binding
    return triggers


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """``(path, METHOD)`` -> operation object."""
    return {
        (path, method.upper()): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    }


def test_document_is_valid_openapi() -> None:
    document = openapi.document()
    assert document["openapi"] == openapi.OPENAPI_VERSION
    validate(document)


def test_document_describes_exactly_the_http_triggers_and_their_auth_levels() -> None:
    document = openapi.document()
    described = operations(document)
    indexed = {
        ("/" + trigger["route"], method): trigger["authLevel"]
        for trigger in http_triggers().values()
        for method in trigger["methods"]
    }
    assert set(described) == set(indexed)
    assert document["security"] == FUNCTION_KEY_SECURITY
    for key, auth_level in indexed.items():
        security = described[key].get("security", document["security"])
        assert security == ([] if auth_level == "ANONYMOUS" else FUNCTION_KEY_SECURITY), key


def test_server_url_is_the_route_prefix() -> None:
    assert openapi.document()["servers"] == [{"url": responses.ROUTE_PREFIX}]


def test_key_pattern_is_the_regex_the_input_rule_enforces() -> None:
    # Written out by hand: the behavioural check is the next test, under ECMA-262 semantics.
    key = openapi.document()["components"]["schemas"]["Key"]
    assert key["pattern"] == "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
    assert (key["minLength"], key["maxLength"]) == (1, inputs.MAX_KEY_LENGTH)
    assert key["description"] == inputs.ALLOWED_DESCRIPTION


KEY_VALIDATOR = jsonschema_rs.validator_for(openapi.document()["components"]["schemas"]["Key"])


def accepted_by_the_app(raw: str) -> bool:
    try:
        parse_key(raw)
    except InvalidKey:
        return False
    return True


@given(st.one_of(st.text(), st.from_regex(inputs.KEY_PATTERN), st.from_regex(r"[A-Za-z0-9]{60,70}\n?")))
def test_key_schema_accepts_exactly_the_keys_the_app_accepts(raw: str) -> None:
    # Under ECMA-262 semantics, as a client generator or validator would apply them; in
    # particular "$" must not let a trailing newline through.
    assert KEY_VALIDATOR.is_valid(raw) == accepted_by_the_app(raw)


def test_every_request_time_error_status_is_documented() -> None:
    documented = {
        int(status)
        for operation in operations(openapi.document()).values()
        for status in operation["responses"]
    }
    assert {int(status) for status in responses.ERROR_STATUS.values()} <= documented


@pytest.mark.parametrize(
    ("path", "method"),
    [(path, method) for path, method in operations(openapi.document()) if "{input}" in path],
)
def test_every_key_operation_documents_bad_key_missing_function_key_and_backend_failures(
    path: str, method: str
) -> None:
    described = operations(openapi.document())[(path, method)]["responses"]
    assert {"400", "401", "502", "503"} <= set(described)
    for status, response in described.items():
        if status != "401":
            assert list(response["content"]) == [responses.JSON_CONTENT_TYPE], (status, path)


def test_every_schema_reference_resolves() -> None:
    document = openapi.document()
    text = json.dumps(document)
    for name in set(re.findall(r'"#/components/schemas/([^"]+)"', text)):
        assert name in document["components"]["schemas"], name


def test_openapi_trigger_serves_the_document_as_json() -> None:
    handler = functions()["openapi_document"].get_user_function()
    request = func.HttpRequest(
        method="GET", url="http://localhost:7071/api/openapi.json", body=b"", headers={}, params={}
    )
    response = handler(request)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == responses.JSON_CONTENT_TYPE
    assert json.loads(response.get_body()) == openapi.document()


def test_document_is_a_fresh_value_each_time() -> None:
    first = openapi.document()
    first["paths"].clear()
    assert openapi.document()["paths"]


def test_not_found_documents_no_location_header() -> None:
    """The app sends no Location with a 404 (there is nothing to point at)."""
    for (path, _), operation in operations(openapi.document()).items():
        if "404" in operation["responses"]:
            assert "headers" not in operation["responses"]["404"], path


@given(st.from_regex(inputs.KEY_EXPRESSION, fullmatch=True))
def test_instance_id_and_location_patterns_accept_what_the_app_produces(raw: str) -> None:
    key = parse_key(raw)
    schemas = openapi.document()["components"]["schemas"]
    instance_id = jsonschema_rs.validator_for(schemas["WorkflowStatus"]["properties"]["instanceId"])
    location = jsonschema_rs.validator_for(openapi.document()["paths"]["/start/{input}"]["post"][
        "responses"]["202"]["headers"]["Location"]["schema"])
    assert instance_id.is_valid(key.instance_id) and not instance_id.is_valid(key.instance_id + "/")
    assert location.is_valid(responses.check_location(key))
    assert not location.is_valid(responses.check_location(key) + "\n")
