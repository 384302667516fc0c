"""The DBOS peer: the app's lifecycle run by DBOS Transact (PyPI ``dbos`` 3.x) on SQLite.

The lifecycle is the one :func:`bench.load.lifecycles` drives through the app: a workflow is
started with the business key as its workflow ID and waits for one message on the topic
``"Workflow"`` (``DBOS.recv``); the client ends it with ``DBOS.send(key, payload,
topic="Workflow")`` and waits until the workflow is done with the output
``{"outcome": "stopped", "event": payload}``. Every lifecycle is verified twice: the awaited
result must equal that output, and afterwards the system database must hold status SUCCESS
with that output for every key; any mismatch raises :class:`PeerMismatch`, so a figure is
never produced from wrong answers.

DBOS is a process-wide singleton, so the benchmark runs this module in a subprocess:
``python -m bench.peer_dbos --lifecycles 2000 --concurrency 8 --json`` prints exactly one JSON
object (the dict :func:`run` returns) as its last stdout line. DBOS's settings are tuned in its
favour and reported in that object: listener polling every 1 ms (DBOS's minimum), WAL with
synchronous=NORMAL (devhost's own durability), one pooled connection; each constant below says
why, with the figures measured.

How DBOS waits, which shapes the figures (read from dbos 3.4's ``_sys_db.py``):

* SQLite has no LISTEN/NOTIFY, so a ``recv`` that is already parked is woken only by the
  notification listener thread, which sleeps ``notification_listener_polling_interval_sec``
  (DBOS default 1.0 s) and then runs one query per parked waiter. A send to a parked workflow
  therefore costs up to one polling interval (about half of it on average; a closed loop of
  one driver can phase-lock to the ticks and pay nearly all of it). ``send`` itself never wakes
  the waiter on SQLite, even in the same process: its notify hook is a no-op there.
* A send that lands before the workflow reaches ``recv`` is found by ``recv``'s own first
  check and costs no wait. Driving start and send back to back (``park=False``, as the app's
  load client does) races the two, so its latencies mix both cases; ``park=True`` waits,
  untimed, until the workflow is parked before sending, measuring the event-to-waiting-workflow
  path alone.
* The client's wait uses the in-process handle: ``WorkflowHandleFuture.get_result`` blocks on
  the executor future, which resolves only after the SUCCESS row has been committed; no
  status polling is involved.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.load import Samples, percentile

EVENT = "Workflow"
# Measured on the 2-core machine (2000 lifecycles, pool of 1, quiet machine): 1, 8, 32 and 64
# drivers gave 68, 73, 69 and 71 lifecycles/s. DBOS is CPU-bound in Python (SQLAlchemy
# statement building, ~15 ms of CPU per lifecycle), so more drivers add only queueing: loaded
# send->done p99 grows from 29 ms (1) to 260 ms (8), 960 ms (32) and 1.9 s (64).
DEFAULT_CONCURRENCY = 8
# DBOS's own default is 1.0 s, which would make the peer's send->done latency a measure of
# that setting (about one interval per lifecycle driven one at a time). 1 ms is the least DBOS
# accepts, so the peer gets its best latency; on the 2-core machine it cost no measurable
# throughput against 10 ms (the idle listener only sleeps; per waiter it runs one query a tick).
DEFAULT_POLL_INTERVAL_S = 0.001
# How long a workflow's recv waits before giving up (its output's event is then None, which
# verification rejects). Bounded so a lost send cannot pin an executor thread for long.
RECV_TIMEOUT_S = 60.0
# Untimed lifecycles run first so imports, connection pool and SQLite caches are warm.
WARMUP = 20
# Pause between "is it parked yet?" checks when park=True.
PARK_POLL_S = 0.001
MODES = ("threads", "async")
# SQLite settings for DBOS's system database: "dbos" leaves DBOS's own (rollback journal,
# synchronous=FULL: several fsyncs per commit); "devhost" applies devhost's default store settings
# (devhost/core/store.py: WAL, synchronous=NORMAL), so both sides pay the same durability price.
SQLITE_SETTINGS = ("devhost", "dbos")
# DBOS's default system-database pool is 20 connections. On SQLite they only contend for the
# one write lock, and a loser waits in SQLite's busy handler, which sleeps in steps of up to
# 100 ms: measured, 20 connections gave 46 (8 drivers) and 64 (32) lifecycles/s with p99s of
# 1-2 s, 1 connection 73 and 69 with p99s 2-4x shorter (2 was worse than either). One connection queues callers in
# SQLAlchemy's pool instead; these lifecycles never need two connections at once.
DEFAULT_POOL_SIZE = 1
_LIST_CHUNK = 500


class PeerMismatch(AssertionError):
    """A DBOS lifecycle ended with something other than the expected output."""


def expected_output(payload: Any) -> dict[str, Any]:
    """The output every lifecycle must end with: the app's contract."""
    return {"outcome": "stopped", "event": payload}


def _register() -> tuple[Callable[[], dict[str, Any]], Callable[..., Any]]:
    """Register the lifecycle workflow (sync and async variants) with DBOS's global registry.

    Registration must precede ``DBOS.launch``; doing it here rather than at import keeps the
    module importable without side effects, and re-registering under the same names from the
    same module is allowed by DBOS."""
    from dbos import DBOS

    @DBOS.workflow(name="peer_dbos_lifecycle")
    def lifecycle() -> dict[str, Any]:
        return expected_output(DBOS.recv(EVENT, timeout_seconds=RECV_TIMEOUT_S))

    @DBOS.workflow(name="peer_dbos_lifecycle_async")
    async def lifecycle_async() -> dict[str, Any]:
        return expected_output(await DBOS.recv_async(EVENT, timeout_seconds=RECV_TIMEOUT_S))

    return lifecycle, lifecycle_async


@contextlib.contextmanager
def _sqlite_pragmas(db_file: Path, pragmas: list[str]) -> Iterator[list[int]]:
    """While active, run ``pragmas`` on every new DB-API connection to ``db_file``; yields a
    one-item list counting the connections so configured.

    DBOS creates its engine itself and offers no per-connection hook short of replacing its
    engine (which would drop DBOS's own connect-time setup), so this listens on every
    SQLAlchemy pool and acts only on connections whose main database is ``db_file``."""
    import sqlalchemy as sa

    target = os.path.realpath(db_file)
    configured = [0]

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        rows = dbapi_conn.execute("PRAGMA database_list").fetchall()
        if any(r[1] == "main" and r[2] and os.path.realpath(r[2]) == target for r in rows):
            for pragma in pragmas:
                dbapi_conn.execute(pragma)
            configured[0] += 1

    sa.event.listen(sa.pool.Pool, "connect", on_connect)
    try:
        yield configured
    finally:
        sa.event.remove(sa.pool.Pool, "connect", on_connect)


def _parked(steps: Iterable[Mapping[str, Any]]) -> bool:
    # recv records its durable timeout as a "DBOS.sleep" step only after registering its
    # waiter and making its first check for a message, so from then on a send reaches it
    # through the notification listener alone.
    return any(s["function_name"] == "DBOS.sleep" for s in steps)


def _check(key: str, payload: Any, result: Any) -> None:
    if result != expected_output(payload):
        raise PeerMismatch(f"{key}: result {result!r}, expected {expected_output(payload)!r}")


def _threads_phase(wf: Callable[[], Any], keys: list[str], concurrency: int,
                   park: bool) -> tuple[Samples, float]:
    """Run ``keys`` lifecycles on ``concurrency`` driver threads; (samples, wall seconds)."""
    from dbos import DBOS, SetWorkflowID

    samples = Samples()

    def one(i: int) -> None:
        key = keys[i]
        payload = {"n": i}
        t0 = time.perf_counter()
        with SetWorkflowID(key):
            handle = DBOS.start_workflow(wf)
        t1 = time.perf_counter()
        if park:
            while not _parked(DBOS.list_workflow_steps(key)):
                time.sleep(PARK_POLL_S)
            t1_send = time.perf_counter()
        else:
            t1_send = t1
        DBOS.send(key, payload, topic=EVENT)
        result = handle.get_result()
        t2 = time.perf_counter()
        _check(key, payload, result)
        samples.add(t1 - t0, t2 - t1_send)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="peer-driver") as pool:
        # list() re-raises the first driver failure here.
        list(pool.map(one, range(len(keys))))
    return samples, time.perf_counter() - t0


def _async_phase(wf: Callable[..., Any], keys: list[str], concurrency: int,
                 park: bool) -> tuple[Samples, float]:
    """As :func:`_threads_phase`, with ``concurrency`` coroutine drivers on one event loop
    using DBOS's async API (workflows then run as tasks on this loop, database calls in
    DBOS's thread pool)."""
    from dbos import DBOS, SetWorkflowID

    samples = Samples()

    async def one(i: int) -> None:
        key = keys[i]
        payload = {"n": i}
        t0 = time.perf_counter()
        with SetWorkflowID(key):
            handle = await DBOS.start_workflow_async(wf)
        t1 = time.perf_counter()
        if park:
            while not _parked(await DBOS.list_workflow_steps_async(key)):
                await asyncio.sleep(PARK_POLL_S)
            t1_send = time.perf_counter()
        else:
            t1_send = t1
        await DBOS.send_async(key, payload, topic=EVENT)
        result = await handle.get_result()
        t2 = time.perf_counter()
        _check(key, payload, result)
        samples.add(t1 - t0, t2 - t1_send)

    async def main() -> float:
        counter = itertools.count()

        async def driver() -> None:
            while (i := next(counter)) < len(keys):
                await one(i)

        t0 = time.perf_counter()
        await asyncio.gather(*(driver() for _ in range(concurrency)))
        return time.perf_counter() - t0

    wall = asyncio.run(main())
    return samples, wall


def _verify_stored(keys: list[str]) -> None:
    """Check the system database itself: every key SUCCESS with the expected output."""
    from dbos import DBOS

    seen = 0
    for lo in range(0, len(keys), _LIST_CHUNK):
        chunk = keys[lo:lo + _LIST_CHUNK]
        statuses = DBOS.list_workflows(workflow_ids=chunk, load_input=False)
        by_id = {s.workflow_id: s for s in statuses}
        for offset, key in enumerate(chunk):
            status = by_id.get(key)
            if status is None:
                raise PeerMismatch(f"{key}: no workflow in the system database")
            want = expected_output({"n": lo + offset})
            if status.status != "SUCCESS" or status.output != want:
                raise PeerMismatch(
                    f"{key}: stored {status.status} {status.output!r}, expected SUCCESS {want!r}")
            seen += 1
    if seen != len(keys):
        raise PeerMismatch(f"verified {seen} of {len(keys)} workflows")


def run(lifecycles: int, concurrency: int, workdir: str | os.PathLike[str], unloaded: int = 50,
        *, poll_interval_s: float = DEFAULT_POLL_INTERVAL_S, mode: str = "threads",
        park: bool = False, sqlite: str = "devhost", pool_size: int | None = DEFAULT_POOL_SIZE,
        warmup: int = WARMUP) -> dict[str, float]:
    """Launch DBOS on a fresh SQLite system database under ``workdir``, measure, shut down.

    Phases, each with its own unique keys (``peer-warm-i``, ``peer-one-i``, ``peer-cN-i``):
    ``warmup`` untimed lifecycles; ``unloaded`` lifecycles one at a time (start latency =
    ``start_workflow`` returning; send->done = from just before ``send`` to the awaited result);
    then ``lifecycles`` lifecycles by ``concurrency`` closed-loop drivers, whose wall time gives
    the throughput. ``mode`` picks sync API on threads or async API on one event loop;
    ``park`` makes each driver wait (untimed) until its workflow is parked in ``recv`` before
    sending; ``poll_interval_s`` is DBOS's ``notification_listener_polling_interval_sec``;
    ``sqlite`` picks the SQLite settings (see ``SQLITE_SETTINGS``); ``pool_size`` is DBOS's
    ``sys_db_pool_size`` (None: DBOS's own default, 20 connections).

    Returns floats only: ``peer_dbos_lifecycles_per_s``, ``peer_dbos_send_to_done_p50_ms`` /
    ``_p99_ms`` and ``peer_dbos_start_p50_ms`` / ``_p99_ms`` (unloaded), the same latencies
    under load (``peer_dbos_loaded_*``), ``peer_dbos_launch_ms`` and the settings used (as
    numbers: booleans 0/1, ``peer_dbos_pool_size`` 0 for DBOS's default).
    Raises :class:`PeerMismatch` if any lifecycle ends with a wrong output, and
    ``RuntimeError`` if a DBOS instance already exists in this process. DBOS is destroyed
    (instance and registry) before returning, on success or failure.
    """
    if lifecycles < 1 or concurrency < 1 or unloaded < 1 or warmup < 0:
        raise ValueError("lifecycles, concurrency and unloaded must be >= 1, warmup >= 0")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    if sqlite not in SQLITE_SETTINGS:
        raise ValueError(f"sqlite must be one of {SQLITE_SETTINGS}, not {sqlite!r}")
    import dbos._dbos as dbos_internal
    from dbos import DBOS

    if getattr(dbos_internal, "_dbos_global_instance", None) is not None:
        # Destroying someone else's DBOS would break them; reusing it would mix configs.
        raise RuntimeError("a DBOS instance already exists in this process; "
                           "run the peer in a subprocess (python -m bench.peer_dbos)")

    Path(workdir).mkdir(parents=True, exist_ok=True)
    # A new directory per run: the database is always fresh and nothing is ever deleted.
    db_file = Path(tempfile.mkdtemp(prefix="peer-dbos-", dir=workdir)) / "dbos_system.sqlite"
    pragmas = (["PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL"]
               if sqlite == "devhost" else [])
    config: dict[str, Any] = {
        "name": "peer-dbos-bench",
        "system_database_url": f"sqlite:///{db_file}",
        "notification_listener_polling_interval_sec": poll_interval_s,
        # INFO logs a line per launch and shutdown; keep stdout/stderr for results and errors.
        "log_level": "WARNING",
    }
    if pool_size is not None:
        config["sys_db_pool_size"] = pool_size
    sync_wf, async_wf = _register()
    phase = _threads_phase if mode == "threads" else _async_phase
    wf = sync_wf if mode == "threads" else async_wf
    with contextlib.ExitStack() as stack:
        configured = stack.enter_context(_sqlite_pragmas(db_file, pragmas))
        # Registered after the pragma listener, so it runs first on the way out.
        stack.callback(DBOS.destroy, destroy_registry=True)
        t0 = time.perf_counter()
        DBOS(config=config)  # type: ignore[arg-type]  # DBOSConfig is a TypedDict
        DBOS.launch()
        launch_s = time.perf_counter() - t0
        if pragmas and not configured[0]:
            raise RuntimeError("the SQLite pragmas never reached DBOS's connections")

        if warmup:
            phase(wf, [f"peer-warm-{i}" for i in range(warmup)], min(4, concurrency), park)
        one_keys = [f"peer-one-{i}" for i in range(unloaded)]
        one, _ = phase(wf, one_keys, 1, park)
        loaded_keys = [f"peer-c{concurrency}-{i}" for i in range(lifecycles)]
        loaded, wall = phase(wf, loaded_keys, concurrency, park)
        # Untimed: the awaited results were checked inline, this checks what DBOS stored.
        _verify_stored(one_keys)
        _verify_stored(loaded_keys)

    return {
        "peer_dbos_lifecycles_per_s": lifecycles / wall,
        "peer_dbos_send_to_done_p50_ms": percentile(one.send_to_done, 0.5),
        "peer_dbos_send_to_done_p99_ms": percentile(one.send_to_done, 0.99),
        "peer_dbos_start_p50_ms": percentile(one.start, 0.5),
        "peer_dbos_start_p99_ms": percentile(one.start, 0.99),
        "peer_dbos_loaded_send_to_done_p50_ms": percentile(loaded.send_to_done, 0.5),
        "peer_dbos_loaded_send_to_done_p99_ms": percentile(loaded.send_to_done, 0.99),
        "peer_dbos_loaded_start_p50_ms": percentile(loaded.start, 0.5),
        "peer_dbos_loaded_start_p99_ms": percentile(loaded.start, 0.99),
        "peer_dbos_launch_ms": launch_s * 1000,
        "peer_dbos_lifecycles": float(lifecycles),
        "peer_dbos_concurrency": float(concurrency),
        "peer_dbos_poll_interval_ms": poll_interval_s * 1000,
        "peer_dbos_parked": float(park),
        "peer_dbos_sqlite_wal": float(sqlite == "devhost"),
        "peer_dbos_pool_size": float(pool_size or 0),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: run once and print the result; the last stdout line is always the JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench.peer_dbos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lifecycles", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--unloaded", type=int, default=50)
    parser.add_argument("--workdir", default=None,
                        help="where the SQLite system database goes (default: a temp dir)")
    parser.add_argument("--poll-interval", type=float, default=DEFAULT_POLL_INTERVAL_S,
                        help="DBOS notification_listener_polling_interval_sec (DBOS default 1.0)")
    parser.add_argument("--mode", choices=MODES, default="threads")
    parser.add_argument("--park", action="store_true",
                        help="send only once the workflow is parked in recv")
    parser.add_argument("--sqlite", choices=SQLITE_SETTINGS, default="devhost",
                        help="devhost: WAL + synchronous=NORMAL, as devhost's store; "
                             "dbos: DBOS's own (rollback journal, synchronous=FULL)")
    parser.add_argument("--pool-size", type=int, default=DEFAULT_POOL_SIZE,
                        help="DBOS sys_db_pool_size; 0 keeps DBOS's own default (20)")
    parser.add_argument("--json", action="store_true",
                        help="print only the JSON object (for the benchmark runner)")
    args = parser.parse_args(argv)

    def go(workdir: str) -> dict[str, float]:
        return run(args.lifecycles, args.concurrency, workdir, args.unloaded,
                   poll_interval_s=args.poll_interval, mode=args.mode, park=args.park,
                   sqlite=args.sqlite, pool_size=args.pool_size or None)

    if args.workdir is None:
        with tempfile.TemporaryDirectory(prefix="peer-dbos-") as tmp:
            result = go(tmp)
    else:
        result = go(args.workdir)
    if not args.json:
        from importlib.metadata import version

        print(f"dbos {version('dbos')}, mode={args.mode}, park={args.park}, "
              f"sqlite={args.sqlite}")
        for name, value in result.items():
            print(f"  {name:40} {value:12.3f}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
