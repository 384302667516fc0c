"""Run devhost as a child process: start, kill -9 and restart it (end-to-end tests, benchmark).

Guarantees: every process binds 127.0.0.1 on a free port, uses the database it is given, and is
stopped (SIGTERM, then SIGKILL) by :meth:`DevhostProcess.stop`; :meth:`start` waits at most
``timeout`` seconds for readiness and raises with the process output otherwise. With
``workers`` > 1, :meth:`DevhostProcess.kill` kills the supervisor and its workers at once (the
process group), as a crash of the whole devhost would.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

#: This repository: the product app's directory, and where ``python -m devhost`` is importable.
REPO = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevhostProcess:
    """One ``python -m devhost`` child process serving ``app_dir`` with database ``db``."""

    def __init__(self, app_dir: Path, db: Path, env: dict[str, str] | None = None,
                 log: Path | None = None, workers: int = 1, log_level: str | None = "WARNING",
                 args: tuple[str, ...] = (), nofile: int | None = None) -> None:
        """``log_level`` None: the app's host.json levels; ``args``: more command-line flags;
        ``nofile``: the child's descriptor limit (``ulimit -n``), e.g. macOS's 256."""
        self.app_dir, self.db, self.env = Path(app_dir), Path(db), env or {}
        self.workers = workers
        self.log_level, self.args = log_level, tuple(args)
        self.nofile = nofile
        self.log = log or self.db.with_suffix(".log")
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0, same_port: bool = False) -> DevhostProcess:
        """Start (or restart: on a new port, or on the previous one with ``same_port``) and
        wait until it answers."""
        if not (same_port and self.port):
            self.port = free_port()
        # AzureWebJobsStorage is blanked unless the caller sets it: a test devhost must never
        # take messages from the developer's own queues (local.settings.json would point its
        # queue trigger at the Azurite of `make run`).
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1",
               "AzureWebJobsStorage": "", **self.env}
        with open(self.log, "ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "devhost", "--app", str(self.app_dir), "--port",
                 str(self.port), "--db", str(self.db), "--workers", str(self.workers),
                 *(("--log-level", self.log_level) if self.log_level else ()), *self.args],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=self._limit_descriptors if self.nofile else None)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"devhost exited with {self.proc.returncode}:\n{self.output()}")
            try:
                with urllib.request.urlopen(f"{self.url}/admin/host/status", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"devhost did not become ready in {timeout}s:\n{self.output()}")

    def _limit_descriptors(self) -> None:
        import resource
        assert self.nofile is not None
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL: the crash case (no shutdown code runs)."""
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), escalating to SIGKILL after 10 s."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
