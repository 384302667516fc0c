"""devhost.host.heap: a serving process's startup heap is out of every later collection."""
from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from devhost.host import heap


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


@pytest.fixture
def settled() -> Iterator[int]:
    try:
        yield heap.settle()
    finally:
        gc.unfreeze()  # the test process's heap goes back to the collector


def test_objects_alive_at_settle_are_never_examined_again() -> None:
    early = _Node()
    assert any(o is early for o in gc.get_objects())
    try:
        frozen = heap.settle()
        assert frozen > 1000  # the interpreter, pytest, devhost: everything loaded
        assert not any(o is early for o in gc.get_objects())
    finally:
        gc.unfreeze()
    assert any(o is early for o in gc.get_objects())


def test_cycles_made_after_settle_are_still_collected(settled: int) -> None:
    for _ in range(100):
        _Node()
    assert gc.collect() >= 100
    late = _Node()
    assert any(o is late for o in gc.get_objects())


def test_a_frozen_object_is_still_freed_when_its_last_reference_goes(settled: int) -> None:
    class Plain:
        pass

    # Made before the freeze below: frozen with everything else.
    gc.unfreeze()
    plain = Plain()
    ref = weakref.ref(plain)
    heap.settle()
    assert not any(o is plain for o in gc.get_objects())
    del plain
    assert ref() is None  # reference counting freed it at once, no collection needed
