"""Fixtures for the guarantee proofs: the real app on a real devhost, fresh database per test."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from devhost.host.process import REPO, DevhostProcess
from tests.proofs.races import Hold


@pytest.fixture
def hold(tmp_path: Path) -> Iterator[Hold]:
    """The episode hold of the test's devhost processes (released after the test)."""
    held = Hold(tmp_path / "hold")
    yield held
    held.release()


@pytest.fixture(params=[1, 2], ids=["one-worker", "two-workers"])
def workers(request: pytest.FixtureRequest) -> int:
    """Every proof runs against one devhost process and against two worker processes."""
    return request.param


@pytest.fixture
def app_devhost(workers: int, tmp_path: Path, hold: Hold
                ) -> Iterator[Callable[..., DevhostProcess]]:
    """``app_devhost(timeout_seconds=0)`` starts the app on devhost with a fresh database; every
    process started is stopped after the test. Each test runs against one devhost process and
    against two worker processes sharing port and database (``--workers 2``), where
    concurrent requests for one key race across processes. The processes honour ``hold``."""
    started: list[DevhostProcess] = []

    def start(timeout_seconds: int = 0) -> DevhostProcess:
        process = DevhostProcess(REPO, tmp_path / f"app{len(started)}.sqlite3",
                                 env={"WORKFLOW_TIMEOUT_SECONDS": str(timeout_seconds),
                                      **hold.env},
                                 workers=workers)
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()


@pytest.fixture(scope="module", params=[1, 2], ids=["one-worker", "two-workers"])
def host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[DevhostProcess]:
    """One app devhost shared by a test module (fresh database; tests use fresh keys), once
    with one process and once with two workers."""
    process = DevhostProcess(REPO, tmp_path_factory.mktemp("app") / "devhost.sqlite3",
                             env={"WORKFLOW_TIMEOUT_SECONDS": "0"},
                             workers=request.param).start()
    yield process
    process.stop()
