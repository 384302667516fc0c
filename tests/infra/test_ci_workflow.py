"""The GitHub Actions workflow: tests on every push and pull request with .ci/run, deploys from
main with azd over OIDC and no stored secret, and passes the workflow linter (zizmor, offline)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.templates import REPO

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    document = yaml.safe_load(WORKFLOW.read_text())
    # YAML 1.1 reads the key `on` as the boolean True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def _runs(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_every_push_and_pull_request_runs_the_ci_script(workflow: dict[str, Any]) -> None:
    assert set(workflow["on"]) == {"push", "pull_request"}
    assert workflow["on"]["push"] is None and workflow["on"]["pull_request"] is None  # every branch
    test = workflow["jobs"]["test"]
    assert "if" not in test
    assert "bash .ci/run" in _runs(test)
    assert (REPO / ".ci" / "run").read_text().count("make test") == 1


def test_deploy_runs_from_main_with_oidc_and_no_stored_secret(workflow: dict[str, Any]) -> None:
    deploy = workflow["jobs"]["deploy"]
    assert deploy["needs"] == "test"
    assert deploy["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert deploy["permissions"] == {"contents": "read", "id-token": "write"}
    runs = _runs(deploy)
    assert "--federated-credential-provider github" in runs
    assert "azd provision --no-prompt" in runs and "azd deploy --no-prompt" in runs
    assert "secrets." not in WORKFLOW.read_text()
    assert workflow["permissions"] == {"contents": "read"}


def test_workflow_passes_the_linter(zizmor: Path) -> None:
    run = subprocess.run(
        [str(zizmor), "--offline", "--persona", "auditor", str(WORKFLOW)], capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stdout + run.stderr


def test_linter_rejects_an_injectable_workflow(zizmor: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: pull_request_target\n"
        "jobs:\n  t:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n'
    )
    run = subprocess.run([str(zizmor), "--offline", str(bad)], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "template-injection" in run.stdout + run.stderr
