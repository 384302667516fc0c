"""devhost.host.supervisor: ``--workers 2`` behaves as one devhost: it starts, stops and dies whole."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

from devhost.host.process import REPO, DevhostProcess

pytestmark = pytest.mark.e2e


def children(pid: int) -> list[int]:
    """Live (non-zombie) child processes of ``pid``."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return [c for c in found if alive(c)]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


@pytest.fixture
def host(tmp_path: Path) -> Iterator[DevhostProcess]:
    process = DevhostProcess(REPO, tmp_path / "db.sqlite3", workers=2,
                             env={"WORKFLOW_TIMEOUT_SECONDS": "0"}).start()
    yield process
    process.stop()


def test_two_workers_run_under_one_supervisor(host: DevhostProcess) -> None:
    assert host.proc is not None
    wait_until(lambda: len(children(host.proc.pid)) == 2, "the supervisor has not two workers")


def test_sigkill_of_the_supervisor_alone_takes_its_workers_down(host: DevhostProcess) -> None:
    assert host.proc is not None
    wait_until(lambda: len(children(host.proc.pid)) == 2, "the workers did not start")
    workers = children(host.proc.pid)
    os.kill(host.proc.pid, signal.SIGKILL)  # not the process group: only the supervisor
    host.proc.wait(10)
    wait_until(lambda: not any(alive(w) for w in workers), "a worker outlived its supervisor")
    host.start(same_port=True)  # the database and the port are free again


def test_a_worker_that_dies_stops_the_whole_devhost(host: DevhostProcess) -> None:
    assert host.proc is not None
    wait_until(lambda: len(children(host.proc.pid)) == 2, "the workers did not start")
    first, second = children(host.proc.pid)
    os.kill(first, signal.SIGKILL)
    assert host.proc.wait(15) != 0
    wait_until(lambda: not alive(second), "the other worker kept running")


def test_sigterm_stops_every_worker_and_exits_cleanly(host: DevhostProcess) -> None:
    assert host.proc is not None
    wait_until(lambda: len(children(host.proc.pid)) == 2, "the workers did not start")
    workers = children(host.proc.pid)
    host.stop()
    assert host.proc.returncode == 0, host.output()
    assert not any(alive(w) for w in workers)


def test_a_second_devhost_on_the_same_database_is_refused(host: DevhostProcess) -> None:
    other = DevhostProcess(REPO, host.db, workers=2, log=host.db.with_suffix(".other.log"))
    with pytest.raises(RuntimeError, match="in use by another devhost"):
        other.start(timeout=20)
    assert other.proc is not None and other.proc.returncode == 2
