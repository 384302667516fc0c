"""What the docs tell someone deploying agrees with what the deployment does: the README's Deploy
section is a first-time user's path (prerequisites, the one command, a call with a key, a stop
from the queue, tear-down), CI set-up names every variable and the exact federated subject, the
emulator command creates the app's task hub, and the retention and always-ready defaults the docs
state are the deployed ones."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.templates import INFRA, REPO, env_mapping, parameter_file

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _section(path: Path, heading: str) -> str:
    text = path.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


def _detail() -> str:
    """Where the deployment's detail lives: docs/azure.md once the README links there, else the
    README's own Deploy section."""
    azure = REPO / "docs" / "azure.md"
    if azure.exists() and "\n## Deploy to Azure\n" in azure.read_text():
        return _section(azure, "Deploy to Azure")
    return _section(REPO / "README.md", "Deploy to Azure")


@pytest.fixture(scope="module")
def readme_deploy() -> str:
    return _section(REPO / "README.md", "Deploy to Azure")


def _main_param(templates: dict[str, Any], name: str) -> dict[str, Any]:
    return templates["main.bicep"]["parameters"][name]


def test_readme_deploy_section_is_a_first_time_users_path_in_order(readme_deploy: str, templates: dict[str, Any]) -> None:
    steps = ["Prerequisites", "azd auth login", "azd up", "x-functions-key", "az storage message put", "azd down"]
    at = [readme_deploy.find(step) for step in steps]
    assert -1 not in at, [s for s, i in zip(steps, at, strict=True) if i < 0]
    assert at == sorted(at), "the steps are out of order"
    prerequisites = readme_deploy[at[0]:at[1]]
    for needed in ("subscription", "azd", "az", "python3"):
        assert needed in prerequisites, needed
    # The queue step works with the roles the template gives the signed-in user.
    queue = readme_deploy[at[4]:at[5]]
    assert "--auth-mode login" in queue and "--queue-name workflow-stop" in queue and "base64" in queue
    outputs = templates["main.bicep"]["outputs"]
    used = set(re.findall(r"azd env get-value (\w+)", readme_deploy))
    assert "AZURE_STORAGE_ACCOUNT_NAME" in used and used <= set(outputs), used - set(outputs)


def test_ci_setup_names_every_repository_variable_and_the_exact_federated_subject() -> None:
    detail = _detail()
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    for name in workflow["jobs"]["deploy"]["env"]:
        assert f"`{name}`" in detail, f"CI set-up does not name the repository variable {name}"
    assert "repo:<owner>/<repo>:ref:refs/heads/main" in detail
    assert "environment:production" not in detail
    assert "azd pipeline config" in detail


def test_every_dts_emulator_command_creates_the_apps_task_hub() -> None:
    hub = json.loads((REPO / "host.json").read_text())["extensions"]["durableTask"]["hubName"]
    commands = [
        line for path in DOCS for line in path.read_text().splitlines()
        if "docker run" in line and "dts-emulator" in line
    ]
    assert commands, "no emulator command documented"
    for command in commands:
        assert f"DTS_TASK_HUB_NAMES={hub}" in command, command


def test_retention_default_is_stated_for_local_runs_and_for_the_deployment(templates: dict[str, Any]) -> None:
    days = _main_param(templates, "workflowRetentionDays")
    minimum = next(d["argument"] for d in days["decorators"] if d["type"] == "min_value")
    assert minimum == 0, "the deployment must allow 0 = keep everything, as the app does"
    retention = _section(REPO / "README.md", "Retention")
    assert f"{days['default']} days" in retention and "azd up" in retention, retention
    assert "keeps everything" in retention
    for path in (REPO / "local.settings.json.example", REPO / "local.settings.dts.json.example"):
        assert json.loads(path.read_text())["Values"]["WORKFLOW_RETENTION_DAYS"] == "0", path


def test_always_ready_guidance_names_the_variable_and_what_zero_costs(templates: dict[str, Any]) -> None:
    detail = _detail()
    var, default = env_mapping(parameter_file()["durableAlwaysReadyInstances"])
    assert default == str(_main_param(templates, "durableAlwaysReadyInstances")["default"])
    around = [p for p in detail.split("\n\n") if var in p]
    assert around, f"{var} is not documented"
    text = " ".join(around)
    assert "cold start" in text and "workflow-stop" in text and "recommend" in text, text


def test_no_doc_tells_anyone_to_set_PYTHON_VERSION() -> None:
    for path in [*DOCS, INFRA / "main.parameters.json"]:
        assert not re.search(r"(?<![A-Z_])PYTHON_VERSION\b", path.read_text()), path
