"""The dashboard's searches (devhost.tools.catalog): newest first, keyset pages that never skip or
repeat, counts per status for the same search, purge of exactly what a search matches."""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from devhost.app.status import RuntimeStatus
from devhost.core import history as h
from devhost.core.store import NewInstance, Store
from devhost.tools import catalog
from devhost.tools.catalog import Search

T0 = 1_800_000_000.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(str(tmp_path / "catalog.sqlite3"))
    yield s
    s.close()


def add(store: Store, instance_id: str, name: str, at: float,
        status: RuntimeStatus = RuntimeStatus.PENDING) -> None:
    start = h.event(h.EventType.EXECUTION_STARTED, T0 + at, Name=name)
    store.create(NewInstance(instance_id, "e", name, None, T0 + at, start), frozenset())
    if status != RuntimeStatus.PENDING:
        store.db.execute("UPDATE instances SET status=? WHERE instance_id=?",
                         (status.value, instance_id))


def all_pages(store: Store, search: Search, top: int) -> list[list[str]]:
    pages, token = [], None
    while True:
        rows, token = catalog.page(store, search, top, token)
        pages.append([r.instance_id for r in rows])
        if token is None:
            return pages


def test_pages_walk_every_instance_once_newest_first_even_with_equal_times(store: Store) -> None:
    for i in range(53):
        add(store, f"i{i:03d}", "chain", at=i // 4)  # four instances share each creation time
    pages = all_pages(store, Search(), top=10)
    flat = [iid for page in pages for iid in page]
    assert [len(p) for p in pages] == [10, 10, 10, 10, 10, 3]
    assert sorted(flat) == sorted(f"i{i:03d}" for i in range(53))  # none skipped, none twice
    assert flat == sorted(flat, reverse=True)  # newest first (ids break ties, descending)


def test_a_page_token_stays_valid_while_newer_instances_arrive(store: Store) -> None:
    for i in range(6):
        add(store, f"old{i}", "chain", at=i)
    first, token = catalog.page(store, Search(), 3)
    add(store, "newest", "chain", at=100)
    rest, _ = catalog.page(store, Search(), 10, token)
    assert [r.instance_id for r in first] == ["old5", "old4", "old3"]
    assert [r.instance_id for r in rest] == ["old2", "old1", "old0"]


def test_name_prefix_and_time_range_narrow_counts_ignore_only_the_status_filter(
        store: Store) -> None:
    add(store, "order-1", "ProcessOrder", 0, RuntimeStatus.COMPLETED)
    add(store, "order-2", "ProcessOrder", 10, RuntimeStatus.FAILED)
    add(store, "order-3", "processorder_v2", 20, RuntimeStatus.RUNNING)
    add(store, "Order-4", "ProcessOrder", 30, RuntimeStatus.RUNNING)
    add(store, "mail-1", "SendMail", 40, RuntimeStatus.RUNNING)

    by_name = Search(name="PROCESSorder")
    assert {r.instance_id for r in catalog.page(store, by_name)[0]} == \
        {"order-1", "order-2", "order-3", "Order-4"}
    by_prefix = Search(prefix="order-")  # case-sensitive, like the host's instanceIdPrefix
    assert {r.instance_id for r in catalog.page(store, by_prefix)[0]} == \
        {"order-1", "order-2", "order-3"}
    window = Search(created_from=T0 + 10, created_to=T0 + 30)
    assert [r.instance_id for r in catalog.page(store, window)[0]] == \
        ["Order-4", "order-3", "order-2"]

    running = Search(statuses=(RuntimeStatus.RUNNING,), prefix="order-")
    assert [r.instance_id for r in catalog.page(store, running)[0]] == ["order-3"]
    counts = catalog.counts(store, running)
    assert counts == {**{s.value: 0 for s in RuntimeStatus},
                      "Completed": 1, "Failed": 1, "Running": 1}
    assert catalog.summary(["Running"], counts) == 1 and catalog.summary([], counts) == 3


def test_purge_deletes_exactly_what_the_search_matches(store: Store) -> None:
    add(store, "a-1", "chain", 0, RuntimeStatus.COMPLETED)
    add(store, "a-2", "chain", 1, RuntimeStatus.RUNNING)
    add(store, "b-1", "chain", 2, RuntimeStatus.COMPLETED)
    forgotten: list[str] = []
    search = Search(statuses=(RuntimeStatus.COMPLETED,), prefix="a-")
    assert catalog.purge(store, search, forgotten.append) == 1
    assert forgotten == ["a-1"]
    assert store.get("a-1") is None and store.history("a-1") == []
    assert store.get("a-2") is not None and store.get("b-1") is not None


@pytest.mark.parametrize("query, problem", [
    ({"runtimeStatus": "Running,Sleeping"}, "runtimeStatus 'Sleeping'"),
    ({"createdTimeFrom": "yesterday"}, "createdTimeFrom 'yesterday'"),
])
def test_bad_search_parameters_are_named(query: dict, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        Search.from_query(query)


def test_bad_page_size_and_token_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="top"):
        catalog.page(store, Search(), 0)
    with pytest.raises(ValueError, match="page token"):
        catalog.page(store, Search(), 10, "not-a-token")
