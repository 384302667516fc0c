"""devhost.store: every transition is all-or-nothing, and the store refuses what would corrupt it."""
from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from devhost.status import LIVE, TERMINAL, RuntimeStatus
from devhost.store import (EpisodeCommit, InstanceAlreadyRunning, InstanceGone, InstanceNotFound,
                           MessagesAlreadyConsumed, NewInstance, NewMessage, Store, StoreLocked)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(str(tmp_path / "store.sqlite3"))
    yield opened
    opened.close()


def created(store: Store, instance_id: str = "i1") -> None:
    store.create(NewInstance(instance_id, "e1", "orch", None, 1.0, {"EventType": 0}), TERMINAL)


def test_second_store_on_the_same_file_is_refused_naming_the_file(store: Store) -> None:
    with pytest.raises(StoreLocked, match="store.sqlite3"):
        Store(store.path)


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
                                       finished=True))
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
