"""The "Deploy to Azure" section of docs/azure.md (the README's Deploy section links to it)
matches infra/: every knob it names exists, every knob infra/ offers is named, the outputs it
reads exist, the roles it lists are the ones assigned."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.infra.templates import (
    MONITORING_METRICS_PUBLISHER,
    REPO,
    STORAGE_BLOB_DATA_OWNER,
    STORAGE_QUEUE_DATA_CONTRIBUTOR,
    STORAGE_TABLE_DATA_CONTRIBUTOR,
    INFRA,
    variable,
)

ROLE_NAMES = {
    STORAGE_BLOB_DATA_OWNER: "Storage Blob Data Owner",
    STORAGE_QUEUE_DATA_CONTRIBUTOR: "Storage Queue Data Contributor",
    STORAGE_TABLE_DATA_CONTRIBUTOR: "Storage Table Data Contributor",
    MONITORING_METRICS_PUBLISHER: "Monitoring Metrics Publisher",
}


@pytest.fixture(scope="module")
def section() -> str:
    doc = (REPO / "docs" / "azure.md").read_text()
    start = doc.index("\n## Deploy to Azure\n")
    end = doc.index("\n## ", start + 1)
    return doc[start:end]


def test_every_parameter_is_documented_by_its_name_or_environment_variable(
    section: str, templates: dict[str, Any]
) -> None:
    values = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    env_of = {
        name: re.match(r"\$\{(\w+)", entry["value"]).group(1)
        for name, entry in values.items()
        if isinstance(entry["value"], str) and entry["value"].startswith("${")
    }
    for name in templates["main.bicep"]["parameters"]:
        if name in ("environmentName", "location"):  # asked by `azd up` itself
            continue
        assert name in section or env_of.get(name, "\0") in section, f"docs/azure.md does not document {name}"


def test_commands_and_outputs_it_uses_exist(section: str, templates: dict[str, Any]) -> None:
    for command in ("azd auth login", "azd up", "azd down", "x-functions-key"):
        assert command in section
    outputs = templates["main.bicep"]["outputs"]
    used = set(re.findall(r"azd env get-value (\w+)", section))
    assert used and used <= set(outputs), used - set(outputs)


def test_the_roles_it_lists_are_the_roles_assigned(section: str, templates: dict[str, Any]) -> None:
    roles = {v for k, v in variable(templates["app.bicep"], "roles").items() if not k.startswith("__")}
    assert roles == set(ROLE_NAMES)
    for role_id in roles:
        assert ROLE_NAMES[role_id] in section
    assert "Durable Task Data Contributor" in section
