"""The app keeps the promises of its own OpenAPI document, as schemathesis fuzzes it.

The document is fetched from the running app (``GET /api/openapi.json`` on a real devhost), so
what is checked is what is served. Every generated request must get a documented status, never a
5xx, the documented content type, a body and headers that match the documented schemas; invalid
keys must be rejected and valid ones accepted.
"""

from __future__ import annotations

import json
from urllib.request import urlopen

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks

from devhost.host.process import DevhostProcess
from workflow import openapi

pytestmark = pytest.mark.e2e

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
    checks.positive_data_acceptance,
]

MAX_EXAMPLES = 30
# devhost does not check function keys; sending one still exercises the documented scheme.
FUNCTION_KEY = {openapi.FUNCTION_KEY_HEADER: "devhost-ignores-function-keys"}
CONFIG = {
    "checks": {
        # Every status the document lists for a valid request: a key may already be running
        # (409), never started (404) or finished (410).
        "positive_data_acceptance": {"expected-statuses": ["200", "202", "404", "409", "410"]},
        # An invalid key is a 400; an empty one leaves no route to match, a 404 from the host.
        "negative_data_rejection": {"expected-statuses": ["400", "404"]},
        # ``date-time`` is ``...Z`` ISO 8601 here; keep format checks on.
        "response_schema_conformance": {"validate-formats": True},
    },
}


@pytest.fixture(scope="module")
def served_document(host: DevhostProcess) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(
        f"{host.url}/api/{openapi.DOCUMENT_ROUTE}",
        config=schemathesis.Config.from_dict(CONFIG),
        timeout=10,
    )


# Parametrized from the document module (a pure function, the same document the app serves)
# rather than with ``schemathesis.pytest.from_fixture``: its lazy loader reads
# ``request.node._nodeid``, which pytest 9.2 no longer has.
# Negative cases exist only for operations with parameters (the document's own has none).
RUNS = sorted(
    (method.upper(), path, mode)
    for path, item in openapi.document()["paths"].items()
    for method in item
    if method != "parameters"
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or "parameters" in item
)


@pytest.mark.parametrize(("method", "path", "mode"), RUNS)
def test_app_keeps_the_promises_of_its_openapi_document(
    served_document: schemathesis.BaseSchema, host: DevhostProcess, method: str, path: str,
    mode: GenerationMode,
) -> None:
    operation = served_document[path][method]

    @settings(max_examples=MAX_EXAMPLES, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=operation.as_strategy(mode))
    def conforms(case: schemathesis.Case) -> None:
        base_url = f"{host.url}/api"
        case.call_and_validate(base_url=base_url, headers=FUNCTION_KEY, checks=CHECKS, timeout=60)

    conforms()


def test_served_document_is_the_one_the_module_builds(host: DevhostProcess) -> None:
    with urlopen(f"{host.url}/api/{openapi.DOCUMENT_ROUTE}", timeout=10) as response:
        assert response.status == 200
        assert response.headers.get_content_type() == "application/json"
        assert json.load(response) == openapi.document()
