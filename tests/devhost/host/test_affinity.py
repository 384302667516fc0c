"""devhost.host.affinity: each worker of --workers N runs on one CPU of those allowed."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from devhost.host import affinity
from devhost.host.process import REPO, DevhostProcess


def test_workers_are_spread_over_the_allowed_cpus_in_order_wrapping() -> None:
    assert affinity.plan(2, {3, 1}) == (1, 3)
    assert affinity.plan(5, [0, 2, 4]) == (0, 2, 4, 0, 2)


@pytest.mark.parametrize("workers, allowed", [(1, {0, 1}), (2, {0}), (2, set()), (2, None)])
def test_nothing_is_pinned_for_one_worker_one_cpu_or_an_unknown_set(
        workers: int, allowed: set[int] | None) -> None:
    assert affinity.plan(workers, allowed) == ()


def _cpus_of(pid: int) -> set[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Cpus_allowed_list:"):
            cpus: set[int] = set()
            for part in line.split(":", 1)[1].strip().split(","):
                low, _, high = part.partition("-")
                cpus.update(range(int(low), int(high or low) + 1))
            return cpus
    raise AssertionError(f"no Cpus_allowed_list for {pid}")


def _workers_of(supervisor: int) -> list[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return [int(pid) for pid in children]


needs_two_cpus = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2
    or not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
    reason="needs Linux and at least two allowed CPUs")


@needs_two_cpus
@pytest.mark.timeout(60)
def test_each_worker_and_every_thread_it_starts_run_on_their_own_cpu(tmp_path: Path) -> None:
    expected = affinity.plan(2, os.sched_getaffinity(0))
    host = DevhostProcess(REPO, tmp_path / "d.sqlite3", workers=2, log_level=None).start()
    try:
        workers = _workers_of(host.proc.pid)
        assert len(workers) == 2
        pinned = sorted(_cpus_of(pid).pop() for pid in workers if len(_cpus_of(pid)) == 1)
        assert pinned == sorted(expected)
        for pid in workers:  # the loop's threads too (orchestrator, activity, checkpointer)
            for tid in os.listdir(f"/proc/{pid}/task"):
                assert _cpus_of(int(tid)) == _cpus_of(pid)
        assert f"pinned to CPU {expected[0]}, {expected[1]}" in host.output()
    finally:
        host.stop()


@needs_two_cpus
@pytest.mark.timeout(60)
def test_no_pin_leaves_every_worker_on_every_allowed_cpu(tmp_path: Path) -> None:
    allowed = os.sched_getaffinity(0)
    host = DevhostProcess(REPO, tmp_path / "d.sqlite3", workers=2, log_level=None,
                          args=("--no-pin",)).start()
    try:
        workers = _workers_of(host.proc.pid)
        assert len(workers) == 2
        assert all(_cpus_of(pid) == allowed for pid in workers)
        assert "not pinned to CPUs" in host.output()
    finally:
        host.stop()
