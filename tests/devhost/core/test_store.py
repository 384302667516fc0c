"""devhost.core.store: every transition is all-or-nothing, and the store refuses what would corrupt it."""
from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from devhost.app.status import LIVE, TERMINAL, RuntimeStatus
from devhost.core.store import (
    EpisodeCommit, InstanceAlreadyRunning, InstanceGone, InstanceNotFound,
    MessagesAlreadyConsumed, NewInstance, NewMessage, StaleHistory, Store, StoreLocked,
    lock_database, AUTOCHECKPOINT_PAGES,
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(str(tmp_path / "store.sqlite3"))
    yield opened
    opened.close()


def created(store: Store, instance_id: str = "i1") -> None:
    store.create(NewInstance(instance_id, "e1", "orch", None, 1.0, {"EventType": 0}), TERMINAL)


def test_second_store_on_the_same_file_is_refused_naming_the_file(store: Store) -> None:
    with pytest.raises(StoreLocked, match=r"store\.sqlite3"):
        Store(store.path, lock_wait=0)


def test_start_never_replaces_a_live_instance(store: Store) -> None:
    created(store)
    with pytest.raises(InstanceAlreadyRunning):
        created(store)
    assert store.get("i1").status == RuntimeStatus.PENDING


def test_events_for_unknown_or_finished_instances_are_refused_and_not_stored(store: Store) -> None:
    with pytest.raises(InstanceNotFound):
        store.enqueue(NewMessage("nobody", "event", {}, 1.0), LIVE)
    created(store)
    store.commit_episode(EpisodeCommit("i1", "e1", RuntimeStatus.COMPLETED, 2.0, 0,
                                       consumed=[m.msg_id for m in store.visible_messages("i1", 9)],
                                       dead_execution="e1"))
    with pytest.raises(InstanceGone):
        store.enqueue(NewMessage("i1", "event", {}, 3.0), LIVE)
    assert store.visible_messages("i1", 9) == []


def test_episode_whose_messages_another_writer_consumed_is_rolled_back_whole(store: Store) -> None:
    created(store)
    [start] = store.visible_messages("i1", 9)
    other = sqlite3.connect(store.path)  # a second engine on the same file, which must not be
    other.execute("DELETE FROM inbox WHERE msg_id=?", (start.msg_id,))
    other.commit()
    other.close()
    with pytest.raises(MessagesAlreadyConsumed):
        store.commit_episode(EpisodeCommit("i1", "e1", RuntimeStatus.RUNNING, 2.0, 0,
                                           new_events=['{"EventType":12}'],
                                           consumed=[start.msg_id]))
    assert store.history("i1") == []
    assert store.get("i1").status == RuntimeStatus.PENDING


# ---- shared mode: several worker processes on one database ------------------------------------

@pytest.fixture
def shared_pair(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    """Two workers' stores on one file, as ``devhost --workers 2`` opens them."""
    path = str(tmp_path / "shared.sqlite3")
    lock = lock_database(path)
    a, b = Store(path, shared=True), Store(path, shared=True, checkpoint=False)
    yield a, b
    a.close()
    b.close()
    lock.close()


def test_lock_database_refuses_a_second_devhost_once_its_wait_runs_out(tmp_path: Path) -> None:
    path = str(tmp_path / "locked.sqlite3")
    lock = lock_database(path)
    try:
        began = time.monotonic()
        with pytest.raises(StoreLocked, match=f"pid {os.getpid()}"):
            lock_database(path, wait=0.2)
        assert time.monotonic() - began >= 0.2
        with pytest.raises(StoreLocked):
            Store(path, lock_wait=0)
    finally:
        lock.close()
    lock_database(path, wait=0).close()  # free again once the holder closed it


def test_shared_store_refuses_an_episode_computed_from_a_history_another_worker_changed(
        shared_pair: tuple[Store, Store]) -> None:
    a, b = shared_pair
    created(a)
    [start] = b.visible_messages("i1", 9)
    # Worker B runs the first episode; worker A computed one from the same (empty) history.
    b.commit_episode(EpisodeCommit("i1", "e1", RuntimeStatus.RUNNING, 2.0, 0,
                                   new_events=['{"EventType":12}', '{"EventType":0}'],
                                   consumed=[start.msg_id]))
    a.enqueue(NewMessage("i1", "event", {"EventType": 14}, 3.0), LIVE)
    [event] = a.visible_messages("i1", 9)
    with pytest.raises(StaleHistory):
        a.commit_episode(EpisodeCommit("i1", "e1", RuntimeStatus.COMPLETED, 3.0, 0,
                                       new_events=['{"EventType":12}'], consumed=[event.msg_id],
                                       dead_execution="e1"))
    # Nothing of the refused episode was written: the event waits for a rerun.
    assert a.history_length("i1") == 2
    assert a.get("i1").status == RuntimeStatus.RUNNING
    assert [m.msg_id for m in b.visible_messages("i1", 9)] == [event.msg_id]
    a.commit_episode(EpisodeCommit("i1", "e1", RuntimeStatus.COMPLETED, 3.0, 2,
                                   new_events=['{"EventType":12}'], consumed=[event.msg_id],
                                   dead_execution="e1"))
    assert b.get("i1").status == RuntimeStatus.COMPLETED


def test_shared_store_refuses_an_episode_of_an_execution_that_was_replaced(
        shared_pair: tuple[Store, Store]) -> None:
    a, b = shared_pair
    created(a)
    b.purge(["i1"])
    b.create(NewInstance("i1", "e2", "orch", None, 2.0, {"EventType": 0}), TERMINAL)
    with pytest.raises(StaleHistory):
        a.commit_episode(EpisodeCommit("i1", "e1", RuntimeStatus.RUNNING, 3.0, 0))
    assert a.get("i1").execution_id == "e2"


def test_shared_store_write_transactions_wait_for_each_other(
        shared_pair: tuple[Store, Store]) -> None:
    a, b = shared_pair
    created(a)
    written = threading.Event()

    def other_worker() -> None:
        b.enqueue(NewMessage("i1", "event", {"EventType": 14}, 2.0), LIVE)
        written.set()

    with a._locked():  # worker A is inside a write transaction
        thread = threading.Thread(target=other_worker)
        thread.start()
        assert not written.wait(0.3), "worker B wrote while worker A held the write lock"
    thread.join(5)
    assert written.is_set()
    assert len(a.visible_messages("i1", 9)) == 2


def test_wal_stays_bounded_under_writes_that_never_pause(store: Store) -> None:
    # Background checkpoints alone never catch up with a writer that never pauses, so the WAL
    # would only grow; the writer's own autocheckpoint lets it restart from the beginning.
    # The largest size seen counts, not the last: the store also truncates a WAL past its size
    # limit after a commit, so an unbounded WAL would look small at some moments.
    wal = Path(store.path + "-wal")
    deadline = time.monotonic() + 2.0
    i = largest = 0
    while time.monotonic() < deadline:
        created(store, f"w{i}")
        store.enqueue(NewMessage(f"w{i}", "event", {"EventType": 15, "Input": "x" * 500}, 2.0),
                      LIVE)
        largest = max(largest, wal.stat().st_size)
        i += 1
    page = store.db.execute("PRAGMA page_size").fetchone()[0]
    assert largest < 2 * AUTOCHECKPOINT_PAGES * page, (largest, i)
