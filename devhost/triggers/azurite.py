"""Azurite (the Azure Storage emulator) as part of the local setup: installed into the working
tree by the project, started for apps with storage-triggered functions, stopped with devhost.

Guarantees:
- The version is pinned (:data:`VERSION`) and installed with npm under ``.devhost/azurite``
  (git-ignored), never globally; ``python -m devhost.triggers.azurite install`` is idempotent and, without
  npm, says what is missing and exits 0 so that ``make run`` still serves everything else.
- A started Azurite runs only the queue service, with telemetry off, its data under
  ``.devhost/``, and dies with the process that started it (also on ``kill -9``).
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

#: Pinned Azurite. 3.35.0 refuses the API versions current ``azure-storage-queue`` sends;
#: devhost talks ``devhost.triggers.queues.AZURITE_API_VERSION``, the newest this version accepts.
VERSION = "3.37.0"

REPO = Path(__file__).resolve().parent.parent.parent
INSTALL_DIR = REPO / ".devhost" / "azurite"
DATA_DIR = REPO / ".devhost" / "azurite-data"

_PR_SET_PDEATHSIG = 1


def binary(install_dir: Path = INSTALL_DIR) -> Path | None:
    """The project's ``azurite-queue`` executable, or None when it is not installed."""
    path = install_dir / "node_modules" / ".bin" / "azurite-queue"
    return path if path.exists() and _installed_version(install_dir) == VERSION else None


def _installed_version(install_dir: Path) -> str | None:
    try:
        import json

        package = install_dir / "node_modules" / "azurite" / "package.json"
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None


def missing_reason() -> str | None:
    """Why Azurite cannot be installed here (no npm / node), or None."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            return (f"{tool} is not installed, so Azurite {VERSION} (the storage emulator for "
                    "queue triggers) cannot be installed; install Node.js 18+ with npm "
                    "(Debian/Ubuntu: apt-get install nodejs npm)")
    return None


def install(install_dir: Path = INSTALL_DIR) -> Path:
    """Install the pinned Azurite into ``install_dir`` unless it is there already.

    Raises: RuntimeError with npm's output when npm is missing or the install fails.
    """
    found = binary(install_dir)
    if found:
        return found
    reason = missing_reason()
    if reason:
        raise RuntimeError(reason)
    install_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["npm", "install", "--prefix", str(install_dir), "--no-audit", "--no-fund",
         "--no-save", "--loglevel=error", f"azurite@{VERSION}"],
        capture_output=True, text=True, timeout=600)
    found = binary(install_dir)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"npm install azurite@{VERSION} failed ({result.returncode}): "
                           f"{(result.stderr or result.stdout)[-2000:]}")
    return found


def listening(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class Azurite:
    """One Azurite queue service child process."""

    def __init__(self, port: int, location: Path, host: str = "127.0.0.1",
                 log: Path | None = None) -> None:
        self.port, self.location, self.host = port, Path(location), host
        self.log = log or self.location / "azurite.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0, executable: Path | None = None) -> Azurite:
        """Start and wait until the port accepts connections.

        Raises: RuntimeError (not installed, exited, or not listening within ``timeout``).
        """
        exe = executable or binary()
        if exe is None:
            raise RuntimeError(f"Azurite {VERSION} is not installed in {INSTALL_DIR} "
                               "(run `make azurite`, which needs npm)")
        self.location.mkdir(parents=True, exist_ok=True)
        parent = os.getpid()
        with open(self.log, "ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [str(exe), "--silent", "--disableTelemetry", "--location", str(self.location),
                 "--queueHost", self.host, "--queuePort", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                preexec_fn=lambda: _die_with(parent), env={**os.environ,
                                                           "AZURITE_DISABLE_TELEMETRY": "true"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Azurite exited with {self.proc.returncode}: "
                                   f"{self.output()}")
            if listening(self.port, self.host):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Azurite did not listen on {self.host}:{self.port} within "
                           f"{timeout}s: {self.output()}")

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s (idempotent)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def _die_with(parent: int) -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: Azurite may outlive a killed devhost
        pass
    if os.getppid() != parent:
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """``python -m devhost.triggers.azurite install``: install the pinned Azurite into the working tree
    (exit 0 with a note when npm is missing, so ``make run`` goes on)."""
    args = sys.argv[1:] if argv is None else argv
    if args != ["install"]:
        print("usage: python -m devhost.triggers.azurite install", file=sys.stderr)
        return 2
    if binary():
        return 0
    reason = missing_reason()
    if reason:
        print(f"devhost: {reason}; queue triggers will not run, everything else will",
              file=sys.stderr)
        return 0
    print(f"devhost: installing Azurite {VERSION} into {INSTALL_DIR} (npm)", flush=True)
    try:
        install()
    except RuntimeError as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
