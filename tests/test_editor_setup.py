"""The editor and container setup runs what the project runs: the VS Code debug configurations
start devhost with arguments devhost accepts (one worker, so breakpoints in orchestrator,
activity and HTTP functions are all in the debugged process), and the dev container's
post-create step calls make targets that exist."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from devhost.__main__ import parse_args

REPO = Path(__file__).resolve().parent.parent


def _json(relative: str) -> Any:
    return json.loads((REPO / relative).read_text())


def _configurations(module: str) -> list[dict[str, Any]]:
    return [c for c in _json(".vscode/launch.json")["configurations"] if c.get("module") == module]


def test_devhost_debug_configurations_serve_the_app_in_one_debugged_process() -> None:
    configurations = _configurations("devhost")
    assert configurations, "no configuration runs devhost"
    for configuration in configurations:
        assert configuration["type"] == "debugpy" and configuration["request"] == "launch"
        args = [a.replace("${workspaceFolder}", str(REPO)) for a in configuration["args"]]
        config, _ = parse_args(args)
        # More than one worker forks processes the debugger is not attached to.
        assert config.workers == 1 and not config.shared
        assert Path(config.app_dir) == REPO and config.port == 7071


def test_test_debug_configuration_runs_pytest_without_its_timeout() -> None:
    (configuration,) = _configurations("pytest")
    # A test paused at a breakpoint must not be killed by pytest-timeout (pyproject's 120 s).
    assert "--timeout=0" in configuration["args"] and "${file}" in configuration["args"]


def test_dev_container_post_create_uses_make_targets_that_exist() -> None:
    container = _json(".devcontainer/devcontainer.json")
    assert container["postCreateCommand"] == "bash .devcontainer/post-create.sh"
    script = (REPO / ".devcontainer" / "post-create.sh").read_text()
    (targets,) = re.findall(r"^make (.+)$", script, re.MULTILINE)
    # --dry-run --always-make: every target and prerequisite has a rule, nothing is run.
    result = subprocess.run(["make", "--dry-run", "--always-make", *targets.split()], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "3.11" in container["image"]
    for feature in ("node", "azure-cli", "azd"):
        assert any(f.rsplit(":", 1)[0].endswith("/" + feature) for f in container["features"]), feature


def test_editor_and_container_recommend_the_same_extensions() -> None:
    recommended = _json(".vscode/extensions.json")["recommendations"]
    assert {"ms-python.python", "ms-azuretools.vscode-azurefunctions"} <= set(recommended)
    container = _json(".devcontainer/devcontainer.json")
    assert container["customizations"]["vscode"]["extensions"] == recommended
