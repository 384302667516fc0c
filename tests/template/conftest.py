"""Tests that pin the template's exact steps, not the contract: every test collected here is
marked ``template``.

A workflow you customise (steps after the event, another activity, a new function) is expected
to fail these, and only these; each failure names the one command that brings them up to date
with your workflow (review the diff it makes):

- golden histories: ``python -m tests.golden.record``
- the OpenAPI snapshot and the function list: ``python -m tests.template.snapshot``

Everything outside this directory is the contract every customised workflow keeps (HTTP
contract, lookup, key and payload rules, idempotent start, one stop winner, the guarantees).
``pytest -m "not template"`` runs only that.
"""
from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.template)
