"""The package `azd deploy` uploads, built offline the way azd builds it, for both backends.

What azd does for this service (azure-dev, cli/azd): service hooks from azure.yaml run in the
service directory with the azd environment's values on top of the process environment
(``cmd/middleware/hooks.go``, ``pkg/exec/command_runner.go``); ``prepackage`` runs before the
package step (``pkg/project/service_manager.go`` ``Package`` -> ``runCommand``); a Python service
packages ``<project>/<dist>`` (``framework_service_python.go`` ``Package``), which the function app
target zips with ``createDeployableZip`` (``project_utils.go``): ``.azure`` directories, the
ignore file and ``local.settings.json`` never go in; with a ``.funcignore`` at the zip root its
gitignore rules apply, without one azd leaves out directories holding ``pyvenv.cfg`` and
``__pycache__``. ``_azd_package`` below does the same from azure.yaml, so on a template with no
hook and no ``dist`` it zips the repository root, as azd would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.infra.templates import REPO, app_settings, env_mapping, parameter_file
from tests.infra.test_funcignore import APP_DIRS, APP_FILES, packaged

SCHEDULER_PROVIDER = {"type": "azureManaged", "connectionStringName": "DURABLE_TASK_SCHEDULER_CONNECTION_STRING"}


def _clone(tmp_path: Path) -> Path:
    """The repository as a user's working copy: everything but git and the local virtualenvs."""
    root = tmp_path / "durable-workflows-python"
    shutil.copytree(
        REPO, root, symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".venv", ".venv-infra", ".devhost", ".azd-package", "node_modules", "mutants"),
    )
    return root


def _azd_zip_listing(root: Path) -> set[str]:
    """What ``createDeployableZip`` puts in the zip built from ``root`` (see module docstring)."""
    funcignore = root / ".funcignore"
    if funcignore.exists():
        files = packaged(root, funcignore)
    else:
        files = set()
        for directory, dirnames, filenames in os.walk(root):
            here = Path(directory)
            dirnames[:] = [
                d for d in dirnames
                if d != ".azure" and d.lower() != "__pycache__" and not (here / d / "pyvenv.cfg").exists()
            ]
            files |= {(here / f).relative_to(root).as_posix() for f in filenames}
    return {f for f in files if Path(f).name not in (".funcignore", "local.settings.json")}


def _azd_package(
    project: Path, azd_env: dict[str, str], tmp_path: Path
) -> tuple[zipfile.ZipFile, subprocess.CompletedProcess[str] | None]:
    """Run azure.yaml's prepackage hook for the `api` service as azd would, then zip what azd zips."""
    service = yaml.safe_load((project / "azure.yaml").read_text())["services"]["api"]
    service_dir = (project / service["project"]).resolve()
    hook = service.get("hooks", {}).get("prepackage")
    ran = None
    if hook is not None:
        posix = hook.get("posix", hook)
        assert posix["shell"] == "sh"
        # The process environment as azd passes it, minus any backend choice of the developer's
        # shell: the test says which backend it packages.
        process_env = {k: v for k, v in os.environ.items() if k != "DURABLE_BACKEND"}
        ran = subprocess.run(
            ["sh", "-c", posix["run"]], cwd=service_dir, env={**process_env, **azd_env},
            capture_output=True, text=True, timeout=120,
        )
        if ran.returncode != 0:
            return zipfile.ZipFile(_empty_zip(tmp_path)), ran
    root = service_dir / service.get("dist", "")
    archive = tmp_path / f"package-{len(list(tmp_path.glob('package-*.zip')))}.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for relative in sorted(_azd_zip_listing(root)):
            out.write(root / relative, relative)
    return zipfile.ZipFile(archive), ran


def _empty_zip(tmp_path: Path) -> Path:
    path = tmp_path / "empty.zip"
    zipfile.ZipFile(path, "w").close()
    return path


def _host(package: zipfile.ZipFile) -> dict[str, Any]:
    return json.loads(package.read("host.json"))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return _clone(tmp_path)


@pytest.mark.parametrize("azd_env", [{}, {"DURABLE_BACKEND": ""}, {"DURABLE_BACKEND": "AzureStorage"}],
                         ids=["unset", "empty", "AzureStorage"])
def test_default_package_holds_the_app_and_the_repository_host_json_unchanged(
    project: Path, tmp_path: Path, azd_env: dict[str, str]
) -> None:
    package, ran = _azd_package(project, azd_env, tmp_path)
    assert ran is None or ran.returncode == 0, ran and ran.stderr
    assert package.read("host.json") == (REPO / "host.json").read_bytes()
    names = set(package.namelist())
    assert APP_FILES <= names and "workflow/orchestrator.py" in names
    assert sorted(n for n in names if n not in APP_FILES and not n.startswith(APP_DIRS)) == []
    # The same files the .funcignore listing names (tests/infra/test_funcignore.py).
    assert names == packaged(project, project / ".funcignore")


def test_scheduler_package_carries_a_host_json_naming_the_scheduler(project: Path, tmp_path: Path) -> None:
    # The very variable the durableBackend parameter reads, so package and infrastructure agree.
    backend_var, _ = env_mapping(parameter_file()["durableBackend"])
    package, ran = _azd_package(project, {backend_var: "DurableTaskScheduler"}, tmp_path)
    assert ran is not None and ran.returncode == 0, ran and ran.stderr

    original = json.loads((REPO / "host.json").read_text())
    host = _host(package)
    durable = host["extensions"]["durableTask"]
    assert durable["storageProvider"] == SCHEDULER_PROVIDER
    # The task hub is still named in one place: host.json (infra/app.bicep loads it from there).
    assert durable["hubName"] == original["extensions"]["durableTask"]["hubName"]
    # Nothing else changes.
    del durable["storageProvider"], original["extensions"]["durableTask"]["storageProvider"]
    assert host == original
    assert set(package.namelist()) == packaged(project, project / ".funcignore")


def test_the_scheduler_connection_the_package_names_is_the_one_the_deployment_sets(project: Path, tmp_path: Path) -> None:
    from tests.infra.templates import parse

    package, ran = _azd_package(project, {"DURABLE_BACKEND": "DurableTaskScheduler"}, tmp_path)
    assert ran is not None and ran.returncode == 0, ran and ran.stderr
    name = _host(package)["extensions"]["durableTask"]["storageProvider"]["connectionStringName"]
    settings = app_settings(parse(REPO / "infra" / "app.bicep"))
    assert settings[name]["when"] == "useScheduler"
    assert settings[name]["value"].startswith("Endpoint=${schedulerEndpoint};Authentication=ManagedIdentity")


def test_packaging_never_edits_the_working_tree(project: Path, tmp_path: Path) -> None:
    before = (project / "host.json").read_bytes()
    _, ran = _azd_package(project, {"DURABLE_BACKEND": "DurableTaskScheduler"}, tmp_path)
    assert ran is not None and ran.returncode == 0
    assert (project / "host.json").read_bytes() == before
    # A later default deploy from the same tree ships the Azure Storage host.json again.
    package, _ = _azd_package(project, {"DURABLE_BACKEND": "AzureStorage"}, tmp_path)
    assert package.read("host.json") == before


def test_an_unknown_backend_stops_packaging_with_a_message_naming_the_variable(project: Path, tmp_path: Path) -> None:
    _, ran = _azd_package(project, {"DURABLE_BACKEND": "Netherite"}, tmp_path)
    assert ran is not None and ran.returncode == 2
    assert "DURABLE_BACKEND='Netherite'" in ran.stderr and "DurableTaskScheduler" in ran.stderr


def test_azd_restore_venv_and_build_leftovers_are_not_deployed(project: Path, tmp_path: Path) -> None:
    # `azd restore` makes `<directory>_env` in the service directory and, with pyproject.toml,
    # runs `pip install .` there (in-tree build: build/ and *.egg-info).
    venv = project / f"{project.name}_env"
    (venv / "lib" / "python3.11" / "site-packages" / "azure").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "lib" / "python3.11" / "site-packages" / "azure" / "__init__.py").write_text("")
    (project / "build" / "lib" / "workflow").mkdir(parents=True)
    (project / "build" / "lib" / "workflow" / "orchestrator.py").write_text("")
    (project / "durable_workflows.egg-info").mkdir()
    (project / "durable_workflows.egg-info" / "PKG-INFO").write_text("")

    package, ran = _azd_package(project, {}, tmp_path)
    assert ran is None or ran.returncode == 0
    names = package.namelist()
    leaked = [n for n in names if n.split("/")[0] in (venv.name, "build", "durable_workflows.egg-info")]
    assert leaked == []
