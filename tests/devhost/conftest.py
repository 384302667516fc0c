"""Fixtures that run devhost for real: a fresh database per test, stopped afterwards."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from devhost.host.process import REPO, DevhostProcess

APPS = Path(__file__).resolve().parent / "apps"


def _factory(directory: Path) -> Iterator[Callable[..., DevhostProcess]]:
    started: list[DevhostProcess] = []

    def start(app_dir: Path = REPO, env: dict[str, str] | None = None,
              workers: int = 1) -> DevhostProcess:
        host = DevhostProcess(app_dir, directory / f"devhost{len(started)}.sqlite3", env=env,
                              workers=workers)
        started.append(host)
        return host.start()

    yield start
    for host in started:
        host.stop()


@pytest.fixture
def devhost_factory(tmp_path: Path) -> Iterator[Callable[..., DevhostProcess]]:
    """``devhost_factory(app_dir=REPO, env=None, workers=1)`` starts a devhost on a temp DB."""
    yield from _factory(tmp_path)


@pytest.fixture
def app_host(devhost_factory: Callable[..., DevhostProcess]) -> DevhostProcess:
    """The product app (this repository) served by devhost, no workflow timeout."""
    return devhost_factory(REPO, env={"WORKFLOW_TIMEOUT_SECONDS": "0"})


@pytest.fixture(scope="module")
def module_devhost_factory(tmp_path_factory: pytest.TempPathFactory
                           ) -> Iterator[Callable[..., DevhostProcess]]:
    """Like ``devhost_factory`` but shared by one test module (one start-up, ~1 s, per module);
    tests sharing it must use fresh instance ids."""
    yield from _factory(tmp_path_factory.mktemp("devhost"))
