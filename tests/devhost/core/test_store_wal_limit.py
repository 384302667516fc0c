"""The WAL does not stay past its size limit after a transaction larger than the limit.

SQLite trims the WAL file to ``journal_size_limit`` only when a writer restarts it, and an
oversized transaction leaves it at its own size (one 99 MB event left 299 MB, issue 8). The
store checkpoints and truncates it right after such a commit. Sizes here are scaled down: a
1 MiB limit and 3 MiB events stand for the 64 MB limit and a 99 MB event.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from devhost.app.status import LIVE, TERMINAL
from devhost.core.store import NewInstance, NewMessage, Store

LIMIT = 1024 * 1024


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(str(tmp_path / "store.sqlite3"), wal_limit=LIMIT)
    yield opened
    opened.close()


def test_wal_is_back_within_its_limit_after_each_oversized_commit(store: Store) -> None:
    wal = Path(store.path + "-wal")
    store.create(NewInstance("big", "e1", "orch", None, 1.0, {"EventType": 0}), TERMINAL)
    for n in range(3):
        store.enqueue(NewMessage("big", "event", {"EventType": 15, "Input": "x" * (3 * LIMIT)},
                                 2.0 + n), LIVE)
        assert wal.stat().st_size <= LIMIT, (n, wal.stat().st_size)
    # Nothing acknowledged was lost by truncating: every event is still there, whole.
    messages = store.visible_messages("big", 10.0)
    assert sum(len(m.payload.get("Input", "")) == 3 * LIMIT for m in messages) == 3
