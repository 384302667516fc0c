"""The template's published surface, pinned as reviewed snapshots: change detectors, not
behaviour proofs (tests/test_openapi.py and tests/test_static_check.py prove the behaviour)."""
from __future__ import annotations

import json

from tests.template.snapshot import (COMMAND, FUNCTIONS_SNAPSHOT, OPENAPI_SNAPSHOT, function_list,
                                     openapi_document)


def test_openapi_document_equals_its_reviewed_snapshot() -> None:
    """The published API description is a contract: any change to it (a status, a schema, a
    description) shows up as a diff of ``tests/openapi.snapshot.json`` to review."""
    assert openapi_document() == json.loads(OPENAPI_SNAPSHOT.read_text()), (
        f"the OpenAPI document differs from {OPENAPI_SNAPSHOT.name}; if the change is "
        f"deliberate, run `{COMMAND}` and review the diff")


def test_functions_index_to_exactly_the_template_function_list() -> None:
    """The exact function list (tests/test_static_check.py checks the contract's functions and
    their bindings; this pins that nothing was added or removed)."""
    assert function_list() == json.loads(FUNCTIONS_SNAPSHOT.read_text()), (
        f"the app's functions differ from {FUNCTIONS_SNAPSHOT.name}; if the change is "
        f"deliberate (e.g. a new activity), run `{COMMAND}` and review the diff")
