"""Which CPU each worker of ``--workers N`` runs on.

A worker is one process whose threads take turns on one GIL: the event loop hands each batch of
orchestrator episodes to an orchestrator thread and blocks until it ends (item 7 of issue 15:
orchestrator code never runs on the loop). When the scheduler puts the two threads on
different CPUs, every hand-over is a cross-CPU wake-up, which on a virtual machine costs an
interrupt through the hypervisor and leaves both CPUs idle meanwhile. Pinning each worker to
one CPU keeps its hand-overs on that CPU (the threads never need two: one of them always waits
for the other) and spreads the workers over the CPUs the process may use: on the 2-core CI
machine, +4 to +10 % lifecycles/s with 2 workers at the same CPU per lifecycle
(docs/performance.md).

Guarantees: with ``--workers`` 2 or more, worker ``i`` runs only on the ``i``-th CPU (wrapping)
of the set the devhost process was allowed when it started (``taskset`` and cgroup limits are
respected: no CPU outside that set is used); ``--no-pin`` leaves every worker on the whole set.
A lone devhost is never pinned. Where the platform cannot pin (not Linux), nothing changes.
The cost: a worker's sync activities and HTTP functions share that worker's CPU, so code
that releases the GIL for long computations (a C extension) no longer runs beside the loop on
another CPU; run such apps with ``--no-pin``.
"""
from __future__ import annotations

import os
from collections.abc import Collection


def allowed_cpus() -> list[int] | None:
    """The CPUs this process may run on, in order; None where the platform cannot tell."""
    getter = getattr(os, "sched_getaffinity", None)
    return sorted(getter(0)) if getter is not None else None


def plan(workers: int, allowed: Collection[int] | None) -> tuple[int, ...]:
    """The CPU of each of ``workers`` workers: the allowed CPUs in order, wrapping; empty when
    nothing is to be pinned (one worker, a platform that cannot tell, a single CPU)."""
    if workers < 2 or not allowed or len(allowed) < 2:
        return ()
    ordered = sorted(allowed)
    return tuple(ordered[i % len(ordered)] for i in range(workers))


def pin(cpu: int) -> bool:
    """Pin the calling process (and every thread it starts afterwards) to ``cpu``; False where
    the platform cannot pin."""
    setter = getattr(os, "sched_setaffinity", None)
    if setter is None:
        return False
    setter(0, {cpu})
    return True
