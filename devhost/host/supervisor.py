"""Several devhost worker processes behind one port and one database (``--workers N``).

One Python process saturates one core (the GIL); a devhost with N workers forks N processes
that each load the app, listen on the same port (``SO_REUSEPORT``: the kernel spreads the
connections) and run their own engine on the shared SQLite store (see the shared mode of
:mod:`devhost.core.store` and :mod:`devhost.core.engine`).

Guarantees:
- The supervisor holds the one-devhost-per-database lock for all its workers; a second devhost
  on the same database is refused as with one worker.
- A pending activity is run by one worker: worker 0 re-dispatches only the rows left before
  the workers started (the supervisor reads the last one first), since another worker may
  already be serving requests and scheduling activities while worker 0 recovers.
- With ``pin_workers`` (the default), worker ``i`` runs on one CPU only
  (:mod:`devhost.host.affinity`).
- Workers die with the supervisor, also when it is killed with SIGKILL (``PR_SET_PDEATHSIG``),
  so a kill -9 of the supervisor is a crash of the whole devhost, never a half-alive one.
- SIGTERM or SIGINT is forwarded to every worker as SIGTERM (each one drains for the grace
  period, see :mod:`devhost.host.shutdown`; a second signal stops them at once); the supervisor waits
  for all of them and exits 0 if all stopped cleanly. If one worker exits on its own, the others
  are stopped and the supervisor exits with that worker's failure code.
"""
from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import os
import signal
import socket
import sys
import traceback
from collections.abc import Coroutine
from typing import Any, Callable

from devhost.core.store import NotADevhostStore, Store, StoreLocked, check_database, lock_database
from devhost.host import affinity
from devhost.host.assembly import Config

_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the workers outlive a killed supervisor
        pass
    if os.getppid() != parent:  # the supervisor died before prctl took effect
        os._exit(1)


def _reserve_port(host: str) -> socket.socket:
    """A bound, non-listening SO_REUSEPORT socket: a free port all workers can then share."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, 0))
    return sock


def run(config: Config, serve: Callable[[Config], Coroutine[Any, Any, int]]) -> int:
    """Fork ``config.workers`` processes that each run ``serve(config)`` with their own
    ``worker_index``, and wait for them. Returns the exit code for the command line."""
    try:
        check_database(config.database(), create=True)  # before the lock file is created
        lock = lock_database(config.database())
    except (StoreLocked, NotADevhostStore) as exc:
        print(f"devhost: {exc}", file=sys.stderr)
        return 2
    # The schema, once, before the workers race for it; and the activity rows left by the
    # last run, which worker 0 alone re-dispatches.
    store = Store(config.database(), config.synchronous, shared=True, checkpoint=False)
    try:
        config = dataclasses.replace(config, work_through=store.last_work_id())
    finally:
        store.close()
    reserved = _reserve_port(config.host) if config.port == 0 else None
    port = reserved.getsockname()[1] if reserved else config.port
    supervisor = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    workers: dict[int, int] = {}
    if config.pin_workers:
        config = dataclasses.replace(
            config, worker_cpus=affinity.plan(config.workers, affinity.allowed_cpus()))
    for index in range(config.workers):
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _die_with_parent(supervisor)
                if config.worker_cpus:
                    affinity.pin(config.worker_cpus[index])
                code = asyncio.run(serve(dataclasses.replace(config, port=port,
                                                             worker_index=index)))
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        workers[pid] = index

    stopping = False

    def stop_all(signum: int = signal.SIGTERM, frame: object = None) -> None:
        nonlocal stopping
        stopping = True
        for pid in workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    code = 0
    while workers:
        pid, status = os.wait()
        if pid not in workers:
            continue
        del workers[pid]
        exit_code = os.waitstatus_to_exitcode(status)
        if not stopping:
            # A worker that exits on its own (a failed start, a crash) takes the rest down.
            code = exit_code if exit_code > 0 else 1
            stop_all()
        elif exit_code > 0 and code == 0:
            # A worker that failed while stopping. One killed by the forwarded SIGTERM before
            # it had installed its handlers (still starting) had nothing to finish: clean.
            code = exit_code
    if reserved is not None:
        reserved.close()
    lock.close()
    return code
