"""devhost installs as a command: `pip install <clone>` gives `devhost`, which serves a v2 app
directory anywhere (here a copy of a test app outside the repository) and runs its durable CLI
as `devhost durable ...`.

The wheel is built from a copy of the repository (``pip wheel --no-deps --no-build-isolation``:
setuptools from the project's venv, no network) and installed with ``--no-index`` into a fresh
venv that sees the project venv's packages through a ``.pth`` file, so pip checks that the
declared dependencies are satisfied without downloading anything. Nothing runs from the checkout:
the server's working directory is a temporary one and PYTHONPATH is unset.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
import venv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest

import devhost
from devhost.host.process import free_port
from tests.infra.test_funcignore import packaged

REPO = Path(__file__).resolve().parent.parent
APP = REPO / "tests" / "devhost" / "apps" / "poller"
# What a clone holds that a build never needs: virtualenvs, caches and local state.
NOT_IN_A_CLONE = shutil.ignore_patterns(".git", ".venv", ".venv-infra", ".devhost", "__pycache__",
                                        ".mypy_cache", ".ruff_cache", ".pytest_cache",
                                        ".hypothesis", "mutants", "build", "*.egg-info")
TIMEOUT = 60


@dataclass(frozen=True)
class Installed:
    clone: Path
    wheel: Path
    venv: Path

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "devhost"


def _run(args: list[str | Path], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=TIMEOUT, **kwargs)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def _clean_env() -> dict[str, str]:
    """The environment without anything that would put the checkout on the path."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "AzureWebJobsStorage")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("install")
    clone = root / "clone"
    shutil.copytree(REPO, clone, ignore=NOT_IN_A_CLONE)
    wheels = root / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
          "--quiet", "--wheel-dir", wheels, clone], cwd=root)
    (wheel,) = wheels.glob("devhost-*.whl")
    target = root / "venv"
    venv.create(target, with_pip=False)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(target), "platbase": str(target)}))
    (site / "project-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    python = target / "bin" / "python"
    # Without --no-deps: pip must find every declared dependency already installed.
    _run([python, "-m", "pip", "install", "--no-index", "--quiet", wheel], cwd=root,
         env=_clean_env())
    return Installed(clone, wheel, target)


def test_wheel_holds_devhost_with_its_dashboard_and_declares_the_command(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = whl.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = Parser().parsestr(whl.read(info).decode())
        entry_points = whl.read(info.replace("METADATA", "entry_points.txt")).decode()
    packaged_code = {n.split("/")[0] for n in names if ".dist-info/" not in n}
    assert packaged_code == {"devhost"}, "only devhost is packaged (not workflow/, tests, bench)"
    for static in ("index.html", "app.js", "style.css"):
        assert f"devhost/tools/static/{static}" in names
    assert metadata["Name"] == "devhost" and metadata["Version"] == devhost.__version__
    assert metadata["License-Expression"] == "MIT"
    assert metadata["Requires-Python"] == ">=3.11"
    requires = " ".join(metadata.get_all("Requires-Dist") or [])
    for dependency in ("azure-functions", "azure-functions-durable", "aiohttp", "azure-storage-queue"):
        assert dependency in requires
    assert "devhost = devhost.__main__:main" in entry_points


def test_building_the_package_in_a_clone_adds_nothing_to_the_deployment(installed: Installed) -> None:
    # pip builds in the source tree (build/, devhost.egg-info/), as `azd restore` does with
    # `pip install .`: the function app's package must still hold only the app.
    leftovers = {p.name for p in installed.clone.iterdir()} & {"build", "devhost.egg-info"}
    assert leftovers, "the build left no files in the clone: nothing to check"
    files = packaged(installed.clone, installed.clone / ".funcignore")
    assert not [f for f in files if f.startswith(("build/", "devhost.egg-info/", "devhost/"))]


def _request(url: str, method: str = "GET") -> tuple[int, str]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def served(installed: Installed, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The installed `devhost` serving a copy of a test app, from a directory outside the repo."""
    app = tmp_path / "some-other-app"
    shutil.copytree(APP, app)
    port = free_port()
    log = tmp_path / "devhost.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(installed.command), "--app", str(app), "--port", str(port),
                                 "--grace", "1"], cwd=tmp_path, env=_clean_env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            assert proc.poll() is None, f"devhost exited {proc.returncode}:\n{log.read_text()}"
            try:
                if _request(f"{url}/admin/host/status")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"devhost did not start:\n{log.read_text()}"
            time.sleep(0.1)
        yield url, log
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.mark.e2e
def test_installed_devhost_command_serves_an_app_outside_the_repository(
        installed: Installed, served: tuple[str, Path]) -> None:
    url, log = served
    # The code that serves is the installed copy, not the checkout.
    where = _run([installed.venv / "bin" / "python", "-c", "import devhost; print(devhost.__file__)"],
                 cwd=installed.venv, env=_clean_env()).stdout.strip()
    assert Path(where).is_relative_to(installed.venv) and not Path(where).is_relative_to(REPO)

    code, body = _request(f"{url}/api/poll/quick/installed-quick?seconds=30", "POST")
    assert code == 200, body
    assert json.loads(body) == {"runtimeStatus": "Completed", "polls": json.loads(body)["polls"],
                                "output": "done"}

    durable = [installed.command, "durable"]
    common = ["--url", url, "--json"]
    _run([*durable, "start-new", "--function-name", "waiter", "--id", "installed-waiter", *common],
         env=_clean_env())
    _run([*durable, "raise-event", "--id", "installed-waiter", "--event-name", "Go",
          "--event-data", '"hello"', *common], env=_clean_env())
    deadline = time.monotonic() + TIMEOUT
    while True:
        status = json.loads(_run([*durable, "get-runtime-status", "--id", "installed-waiter",
                                  "--show-output", *common], env=_clean_env()).stdout)
        if status["runtimeStatus"] == "Completed" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status["runtimeStatus"] == "Completed", log.read_text()
    assert status["output"] == {"got": "hello"}

    # The dashboard's static files are package data of the installed copy.
    code, page = _request(f"{url}/_devhost/")
    assert code == 200 and "<html" in page.lower()
    code, script = _request(f"{url}/_devhost/static/app.js")
    assert code == 200 and script.strip()
