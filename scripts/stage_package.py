"""azd's ``prepackage`` hook for the ``api`` service: stage exactly what ``azd deploy`` uploads.

``azure.yaml`` sets the service's ``dist`` to ``.azd-package``, so azd zips that directory instead
of the repository root (azure-dev ``pkg/project/framework_service_python.go``: ``Package`` returns
``<project>/<dist>``; ``service_target_functionapp.go`` zips it with ``createDeployableZip``). azd
runs this hook before that, in the service directory (``cmd/middleware/hooks.go``: the service
hooks runner's cwd is ``service.Path()``), with the azd environment's values on top of the
process environment (``pkg/exec/command_runner.go`` appends them to ``os.Environ()``).

Contract:

- The stage holds the repository's files minus what ``.funcignore`` excludes (gitignore rules,
  the subset this project uses: a pattern without a slash matches a name at any depth, a trailing
  slash matches directories only, ``#`` starts a comment; anything else is refused), so the
  package is the same whether azd or Core Tools applies ``.funcignore``.
- ``host.json`` is the repository's, byte for byte, when ``DURABLE_BACKEND`` is unset, empty or
  ``AzureStorage``. With ``DurableTaskScheduler`` it is the same file with
  ``extensions.durableTask.storageProvider`` replaced by the scheduler's
  (``type: azureManaged``, ``connectionStringName: DURABLE_TASK_SCHEDULER_CONNECTION_STRING``):
  the scale controller reads the Durable configuration from the deployed *file*, not from app
  settings (azure-functions-host ``FunctionsSyncManager``; azure-functions-durable-extension
  issues #2622, #2803). The task hub name stays the one ``host.json`` gives.
- The backend comes from the same environment variable that ``infra/main.parameters.json`` feeds
  to the ``durableBackend`` parameter, read the same way (empty means the default), so the
  package and the provisioned app agree even when ``azd up`` packages before it provisions.
- Any other ``DURABLE_BACKEND`` exits 2 naming the variable and the allowed values; the
  working tree is never modified outside ``.azd-package``.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

STAGE_DIR = ".azd-package"
"""The directory azure.yaml's ``dist`` names; rebuilt from scratch on every run."""

BACKEND_ENV = "DURABLE_BACKEND"
AZURE_STORAGE = "AzureStorage"
SCHEDULER = "DurableTaskScheduler"
SCHEDULER_CONNECTION_SETTING = "DURABLE_TASK_SCHEDULER_CONNECTION_STRING"
"""The app setting ``infra/app.bicep`` fills with the scheduler's endpoint and identity."""


class PackageError(Exception):
    """A configuration this hook refuses, with the reason for the user."""


def ignore_patterns(funcignore: Path) -> list[tuple[str, bool]]:
    """``.funcignore`` as ``(pattern, directories_only)`` pairs.

    Raises ``PackageError`` for a negation or an anchored pattern: matching those needs the full
    gitignore algorithm, and guessing would change what is deployed.
    """
    patterns = []
    for raw in funcignore.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("!") or "/" in line.rstrip("/"):
            raise PackageError(f"{funcignore}: unsupported pattern {line!r} (no negation, no slash but a trailing one)")
        patterns.append((line.rstrip("/"), line.endswith("/")))
    return patterns


def packaged(root: Path, funcignore: Path | None = None) -> set[str]:
    """Relative paths (``/``-separated) of the files a package built from ``root`` holds.

    An ignored directory is skipped whole, as gitignore does; ``.git`` and the stage itself are
    never packaged.
    """
    patterns = ignore_patterns(funcignore or root / ".funcignore")

    def ignored(name: str, is_dir: bool) -> bool:
        return any(fnmatch.fnmatchcase(name, p) and (is_dir or not dirs_only) for p, dirs_only in patterns)

    files = set()
    for directory, dirnames, filenames in os.walk(root):
        here = Path(directory)
        dirnames[:] = [
            d for d in dirnames
            if not (here == root and d in (".git", STAGE_DIR)) and not ignored(d, True)
        ]
        for name in filenames:
            if not ignored(name, False):
                files.add((here / name).relative_to(root).as_posix())
    return files


def backend_of(env: Mapping[str, str]) -> str:
    """The Durable backend the environment asks for; empty or unset is Azure Storage, the
    default of ``durableBackend`` (azd's ``${DURABLE_BACKEND=AzureStorage}`` treats empty as
    unset too)."""
    backend = env.get(BACKEND_ENV) or AZURE_STORAGE
    if backend not in (AZURE_STORAGE, SCHEDULER):
        raise PackageError(f"{BACKEND_ENV}={backend!r}: expected {AZURE_STORAGE} or {SCHEDULER}")
    return backend


def scheduler_host_json(host: dict[str, Any]) -> dict[str, Any]:
    """``host`` with the Durable Task Scheduler as the Durable storage provider.

    The Azure Storage provider's own options (``maxQueuePollingInterval``) are dropped with it;
    every other setting, the hub name included, is kept.
    """
    config: dict[str, Any] = json.loads(json.dumps(host))
    durable = config.setdefault("extensions", {}).setdefault("durableTask", {})
    durable["storageProvider"] = {"type": "azureManaged", "connectionStringName": SCHEDULER_CONNECTION_SETTING}
    return config


def stage(root: Path, env: Mapping[str, str]) -> Path:
    """Build ``root/.azd-package`` for the backend ``env`` names; returns its path."""
    backend = backend_of(env)
    files = packaged(root)
    target = root / STAGE_DIR
    if target.exists():
        shutil.rmtree(target)
    for relative in sorted(files):
        destination = target / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / relative, destination)
    if backend == SCHEDULER:
        host = json.loads((root / "host.json").read_text())
        (target / "host.json").write_text(json.dumps(scheduler_host_json(host), indent=2) + "\n")
    return target


def main() -> int:
    """Run as azd runs the hook: in the project directory, with the azd environment."""
    try:
        target = stage(Path.cwd(), os.environ)
    except PackageError as exc:
        print(f"stage_package: {exc}", file=sys.stderr)
        return 2
    print(f"stage_package: {backend_of(os.environ)} package staged in {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
