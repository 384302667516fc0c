"""What a deployment package holds: the repository minus .funcignore, listed the way Core Tools
and azd build it (gitignore rules: a pattern without a slash matches a file or directory name at
any depth, a trailing slash matches directories only; an ignored directory is skipped whole)."""

from __future__ import annotations

import fnmatch
import os
import shutil
from pathlib import Path

from tests.infra.templates import REPO

APP_FILES = {"function_app.py", "host.json", "requirements.txt"}
APP_DIRS = ("workflow/",)


def _patterns(funcignore: Path) -> list[tuple[str, bool]]:
    patterns = []
    for raw in funcignore.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        # Negation and anchored paths would need the full gitignore algorithm; this file needs neither.
        assert not line.startswith("!") and "/" not in line.rstrip("/"), f"unsupported pattern {line!r}"
        patterns.append((line.rstrip("/"), line.endswith("/")))
    return patterns


def packaged(root: Path, funcignore: Path) -> set[str]:
    """Relative paths of the files a package built from ``root`` would contain."""
    patterns = _patterns(funcignore)

    def ignored(name: str, is_dir: bool) -> bool:
        return any(fnmatch.fnmatchcase(name, p) and (is_dir or not dirs_only) for p, dirs_only in patterns)

    files = set()
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".git" and not ignored(d, True)]
        for name in filenames:
            if not ignored(name, False):
                files.add(str((Path(directory) / name).relative_to(root)))
    return files


def test_package_holds_only_the_app() -> None:
    files = packaged(REPO, REPO / ".funcignore")
    outside = sorted(f for f in files if f not in APP_FILES and not f.startswith(APP_DIRS))
    assert outside == [], f"would be deployed but is not the app: {outside}"
    assert APP_FILES <= files
    assert "workflow/orchestrator.py" in files and "workflow/__init__.py" in files


def test_package_leaves_out_devhost_tests_bench_infra_and_tooling() -> None:
    files = packaged(REPO, REPO / ".funcignore")
    for excluded in ("devhost/", "tests/", "bench/", "infra/", "scripts/", ".github/", ".venv/", ".venv-infra/", ".ci/"):
        assert not any(f.startswith(excluded) for f in files), excluded
    for excluded in ("azure.yaml", "Makefile", "local.settings.json.example", "requirements-dev.txt", "requirements-infra.txt"):
        assert excluded not in files


def test_an_emptied_funcignore_would_ship_everything(tmp_path: Path) -> None:
    empty = tmp_path / ".funcignore"
    empty.write_text("# nothing ignored\n")
    files = packaged(REPO, empty)
    assert any(f.startswith("devhost/") for f in files) and any(f.startswith("infra/") for f in files)


def test_azd_restore_virtualenv_and_pip_build_leftovers_are_left_out(tmp_path: Path) -> None:
    """`azd restore` makes a virtualenv named `<service directory name>_env` in the service
    directory (azure-dev pkg/tools/python/helpers.go VenvNameForDir) and, with pyproject.toml,
    runs `pip install .` there, which builds in the tree (build/, *.egg-info). azd leaves a
    virtualenv out by itself only when there is no .funcignore (pkg/project/project_utils.go)."""
    root = tmp_path / "my-clone"
    shutil.copytree(REPO / "workflow", root / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
    for name in APP_FILES | {".funcignore"}:
        shutil.copy(REPO / name, root / name)
    venv = root / "my-clone_env"
    (venv / "lib" / "python3.12" / "site-packages").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "lib" / "python3.12" / "site-packages" / "six.py").write_text("")
    (root / "build" / "lib").mkdir(parents=True)
    (root / "build" / "lib" / "function_app.py").write_text("")
    (root / "durable_workflows.egg-info").mkdir()
    (root / "durable_workflows.egg-info" / "SOURCES.txt").write_text("")

    files = packaged(root, root / ".funcignore")

    assert sorted(f for f in files if f not in APP_FILES and not f.startswith(APP_DIRS)) == []
    assert APP_FILES <= files
