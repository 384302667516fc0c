"""The GitHub Actions workflow: tests on every push and pull request with .ci/run, deploys from
main with azd over OIDC and no stored secret, and passes the workflow linter (zizmor, offline)."""

from __future__ import annotations

import re
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


def test_lint_and_tests_run_on_python_3_11_and_3_12_before_any_deploy(workflow: dict[str, Any]) -> None:
    test = workflow["jobs"]["test"]
    assert test["strategy"]["matrix"]["python"] == ["3.11", "3.12"]
    assert test["strategy"].get("fail-fast") is False  # one version's failure does not hide the other's
    (setup,) = [s for s in test["steps"] if s.get("uses", "").startswith("actions/setup-python@")]
    assert setup["with"]["python-version"] == "${{ matrix.python }}"
    # .ci/run is the one entry point developers run too: lint first (seconds), then the suite.
    assert "bash .ci/run" in _runs(test)
    script = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    assert "make lint" in script and script.index("make lint") < script.index("make test")
    # A matrix job's `needs` waits for every leg.
    assert workflow["jobs"]["deploy"]["needs"] == "test"


def test_every_action_is_pinned_by_commit_and_azd_is_not_piped_from_the_internet(workflow: dict[str, Any]) -> None:
    uses = [s["uses"] for job in workflow["jobs"].values() for s in job["steps"] if "uses" in s]
    assert any(u.startswith("Azure/setup-azd@") for u in uses)
    for use in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", use), f"not pinned by commit: {use}"
    text = WORKFLOW.read_text()
    assert not re.search(r"curl[^\n]*\|\s*(ba)?sh", text), "an installer piped into a shell"
    # Each pin says which release it is, so an update is reviewable.
    for line in text.splitlines():
        if re.search(r"uses: \S+@[0-9a-f]{40}", line):
            assert re.search(r"# v\d+\.\d+\.\d+", line), line


def test_deploy_passes_every_variable_azd_reads(workflow: dict[str, Any]) -> None:
    """`azd provision` in CI sees only what the job passes: a parameter's variable missing here
    would deploy the template default over the choice made with `azd env set`."""
    from tests.infra.templates import env_mapping, parameter_file

    deploy = workflow["jobs"]["deploy"]
    read = {env_mapping(entry)[0] for entry in parameter_file().values()}
    # Filled in by azd from the signed-in principal, never by the job.
    read -= {"AZURE_PRINCIPAL_ID", "AZURE_PRINCIPAL_TYPE"}
    read |= {"AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID"}
    assert set(deploy["env"]) == read, set(deploy["env"]) ^ read
    for name, value in deploy["env"].items():
        assert value == f"${{{{ vars.{name} }}}}", f"{name}: {value}"
    # `azd pipeline config` copies the same choices into repository variables.
    import yaml as _yaml

    azure = _yaml.safe_load((REPO / "azure.yaml").read_text())
    assert set(azure["pipeline"]["variables"]) == read - {
        "AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_SUBSCRIPTION_ID", "AZURE_ENV_NAME", "AZURE_LOCATION"
    }


def test_deploy_signs_in_with_the_subject_azd_pipeline_config_creates(workflow: dict[str, Any]) -> None:
    """`azd pipeline config` creates federated credentials for `repo:<o>/<r>:pull_request` and
    `repo:<o>/<r>:ref:refs/heads/<branch>` (azure-dev pkg/pipeline/github_provider.go). A job
    with `environment:` gets the subject `repo:<o>/<r>:environment:<name>` instead, which matches
    none of them."""
    deploy = workflow["jobs"]["deploy"]
    assert "environment" not in deploy
    assert "refs/heads/main" in deploy["if"]


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
