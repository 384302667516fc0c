"""SQLite state of devhost: instances, their histories, an inbox of messages and pending work.

Guarantees:
- Every method that changes state is one ``BEGIN IMMEDIATE`` transaction: a kill -9 at any
  instant leaves either all of it or none of it (WAL journal; ``synchronous=NORMAL`` survives a
  process crash, ``FULL`` also a power cut).
- A method returns only after COMMIT, so callers acknowledge (HTTP 202) only durable state.
- One devhost per database file: a second one is refused with :class:`StoreLocked`.
- Shared mode (``shared=True``, one store per worker process of one devhost): write
  transactions of the workers serialise on a lock file (a blocked worker wakes the instant the
  lock is free, unlike SQLite's sleeping busy handler), and :meth:`Store.commit_episode` refuses
  an episode computed from a history another worker has changed since (:class:`EpisodeConflict`).

Each store is used from its event-loop thread only; it is not thread-safe by design, because
devhost serialises a process's state transitions on that thread instead of taking locks.
"""
from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Iterator, Sequence

from devhost.app.status import RuntimeStatus
from devhost.core.history import dumps as _dumps

log = logging.getLogger("devhost.store")

#: ``PRAGMA application_id`` of a devhost store ("dvhs"): tells devhost's database from any
#: other SQLite file before anything is written to it.
APPLICATION_ID = 0x64766873
#: ``PRAGMA user_version``: the store's schema version.
SCHEMA_VERSION = 1
_SQLITE_MAGIC = b"SQLite format 3\x00"

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    execution_id TEXT NOT NULL,
    name TEXT NOT NULL,
    version TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    parent_instance_id TEXT,
    parent_execution_id TEXT,
    parent_task_id INTEGER
);
CREATE INDEX IF NOT EXISTS instances_by_created ON instances (created_at, instance_id);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    PRIMARY KEY (instance_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    msg_id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT,
    visible_at REAL NOT NULL,
    kind TEXT NOT NULL,
    task_id INTEGER,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_by_instance ON inbox (instance_id, msg_id);
-- Only control rows: a Suspended instance looks for them without reading its waiting events.
CREATE INDEX IF NOT EXISTS inbox_control ON inbox (instance_id, msg_id)
    WHERE kind IN ('terminate', 'suspend', 'resume');
CREATE TABLE IF NOT EXISTS work (
    work_id INTEGER PRIMARY KEY AUTOINCREMENT,
    instance_id TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    task_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    input TEXT
);
CREATE INDEX IF NOT EXISTS work_by_instance ON work (instance_id);
"""


#: The timer monitor's table (:mod:`devhost.triggers.timers`), in the same database file.
TIMER_SCHEMA = """
CREATE TABLE IF NOT EXISTS timer_schedule_status (
    function_name TEXT PRIMARY KEY,
    last TEXT,
    next TEXT,
    last_updated TEXT NOT NULL
)
"""


#: The columns of ``instances`` in :class:`Instance` field order (named, never ``SELECT *``).
INSTANCE_COLUMNS = ("instance_id, execution_id, name, version, status, input, output, "
                    "custom_status, created_at, updated_at, parent_instance_id, "
                    "parent_execution_id, parent_task_id")
_MESSAGE_COLUMNS = "msg_id, instance_id, execution_id, visible_at, kind, task_id, payload"
_WORK_COLUMNS = "work_id, instance_id, execution_id, task_id, name, input"


class StoreLocked(RuntimeError):
    """Another devhost process holds this database file."""


class NotADevhostStore(RuntimeError):
    """The file is not a devhost database devhost may use (another program's SQLite file, a
    text file, an empty file, a read-only file or directory); nothing was changed."""


def _schema_signature(db: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's columns (name, type, not null, primary key position), by table name."""
    tables = [r[0] for r in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
    return {t: [(c[1], c[2], c[3], c[5]) for c in db.execute(f'PRAGMA table_info("{t}")')]
            for t in tables}


def _devhost_signature() -> dict[str, list[tuple[Any, ...]]]:
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA + ";" + TIMER_SCHEMA)
        return _schema_signature(db)
    finally:
        db.close()


def check_database(path: str, create: bool) -> None:
    """Refuse, before anything is written (no WAL switch, no table, no ``.lock``), a ``path``
    devhost must not use. Accepted: a devhost store (its ``application_id``, or, for a store
    that predates it, only devhost's tables with exactly its columns), and with ``create`` a
    missing or empty file, which becomes one. The header is read as bytes; SQLite opens the
    file (read only) only for a store without an application id.

    Raises: NotADevhostStore with a one-line reason.
    """
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    try:
        with open(path, "rb") as fh:
            header = fh.read(100)
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if not create:
            raise NotADevhostStore(f"no devhost database at {path}") from None
        header, mode = b"", None
    except OSError as exc:
        raise NotADevhostStore(f"cannot read {path}: {exc.strerror or exc}") from None
    if os.path.isdir(directory) and not os.stat(directory).st_mode & 0o222:
        raise NotADevhostStore(f"the directory {directory} is read-only; devhost needs to "
                               f"write its lock and journal files beside the database")
    if mode is not None and not mode & 0o222:
        raise NotADevhostStore(f"{path} is read-only; devhost needs to write to its database")
    if not header:
        if create:
            return
        raise NotADevhostStore(f"{path} is empty, not a devhost database")
    if not header.startswith(_SQLITE_MAGIC) or len(header) < 100:
        raise NotADevhostStore(f"{path} is not a SQLite database, so not a devhost one")
    application_id = int.from_bytes(header[68:72], "big")
    if application_id == APPLICATION_ID:
        return
    if application_id != 0:
        raise NotADevhostStore(f"{path} is another program's SQLite database "
                               f"(application id {application_id:#010x}), not devhost's")
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            found = _schema_signature(db)
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise NotADevhostStore(f"{path} cannot be read as a SQLite database: {exc}") from None
    ours = _devhost_signature()
    # Some or all of devhost's tables (the timer monitor may have written its table first),
    # each exactly as devhost creates it, and nothing else.
    if not found or any(ours.get(table) != columns for table, columns in found.items()):
        tables = ", ".join(sorted(found)) or "no tables"
        raise NotADevhostStore(f"{path} is a SQLite database of another program ({tables}), "
                               f"not devhost's")


class InstanceNotFound(LookupError):
    """No instance has this id."""


class InstanceGone(RuntimeError):
    """The instance has finished (Completed, Failed, Terminated or Canceled)."""


class EpisodeConflict(RuntimeError):
    """An episode was computed from state that changed before it committed; nothing was
    written, and rerunning it from the current state is safe."""


class MessagesAlreadyConsumed(EpisodeConflict):
    """An episode's inbox messages were deleted by someone else before it committed."""


class StaleHistory(EpisodeConflict):
    """The instance's execution, status or history changed after the episode read it."""


class InstanceAlreadyRunning(RuntimeError):
    """An instance with this id is Pending, Running, Suspended or ContinuedAsNew."""

    def __init__(self, instance_id: str, status: str) -> None:
        super().__init__(
            f"An Orchestration instance with the status {status} already exists "
            f"(instance id '{instance_id}').")
        self.status = status


@dataclass(frozen=True)
class Instance:
    """One row of ``instances``; JSON columns hold JSON text exactly as the host stores it."""

    instance_id: str
    execution_id: str
    name: str
    version: str
    status: RuntimeStatus
    input: str | None
    output: str | None
    custom_status: str | None
    created_at: float
    updated_at: float
    parent_instance_id: str | None
    parent_execution_id: str | None
    parent_task_id: int | None

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Instance:
        values = list(row)
        values[4] = RuntimeStatus(values[4])
        return cls(*values)


@dataclass(frozen=True)
class Message:
    """One inbox row: an event waiting to be delivered to an instance's next episode."""

    msg_id: int
    instance_id: str
    execution_id: str | None
    visible_at: float
    kind: str
    task_id: int | None
    payload: dict[str, Any]
    #: ``payload`` as stored: the same JSON text its serialisation would give.
    text: str = ""


@dataclass(frozen=True)
class NewMessage:
    """An inbox row to insert (``execution_id`` None: for whichever execution is current)."""

    instance_id: str
    kind: str
    payload: dict[str, Any]
    visible_at: float
    execution_id: str | None = None
    task_id: int | None = None


@dataclass(frozen=True)
class WorkItem:
    """A scheduled activity invocation that has not completed yet."""

    work_id: int
    instance_id: str
    execution_id: str
    task_id: int
    name: str
    input: str | None


@dataclass(frozen=True)
class NewInstance:
    """A (sub-)orchestration instance to create in the same transaction as an episode."""

    instance_id: str
    execution_id: str
    name: str
    input: str | None
    created_at: float
    start_event: dict[str, Any]
    parent_instance_id: str | None = None
    parent_execution_id: str | None = None
    parent_task_id: int | None = None


@dataclass(frozen=True)
class ChildStart:
    """A sub-orchestration start, decided at commit time against the child's current row.

    The store creates ``child`` when no instance has its id or the existing one's status is in
    ``replaceable`` (that one is replaced); otherwise it queues ``refused(existing_status)``
    instead. The check and the write are one transaction, so of two parents starting one child
    id, exactly one gets it.
    """

    child: NewInstance
    replaceable: frozenset[RuntimeStatus]
    refused: Callable[[RuntimeStatus], NewMessage]


@dataclass
class EpisodeCommit:
    """Everything one orchestration episode changes, written in one transaction.

    The episode read the instance at (``execution_id``, ``expected_status``, ``history_base``
    history rows); the commit applies only if all three still hold (else StaleHistory) and
    every message in ``consumed`` is still there (else MessagesAlreadyConsumed). The new events
    are appended after ``history_base`` (or, with ``reset_history``, replace the history).
    ``dead_execution``: inbox rows and work addressed to that execution are deleted (the
    engine's decision that they died with it); rows addressed to no execution stay.
    """

    instance_id: str
    execution_id: str
    status: RuntimeStatus
    updated_at: float
    history_base: int
    expected_status: RuntimeStatus | None = None
    new_events: list[str] = field(default_factory=list)
    reset_history: bool = False
    new_execution_id: str | None = None
    new_input: str | None = None
    output: str | None = None
    set_output: bool = False
    custom_status: str | None = None
    set_custom_status: bool = False
    consumed: list[int] = field(default_factory=list)
    new_work: list[tuple[int, str, str | None]] = field(default_factory=list)
    cancel_timers: list[int] = field(default_factory=list)
    messages: list[NewMessage] = field(default_factory=list)
    children: list[ChildStart] = field(default_factory=list)
    dead_execution: str | None = None


#: Bytes of WAL file kept after a checkpoint has emptied it (the rest is truncated away).
WAL_SIZE_LIMIT = 64 * 1024 * 1024
#: WAL pages after which the committing writer checkpoints what the background thread left
#: (4,000 pages of 4 KiB: 16 MB; SQLite's default is 1,000).
AUTOCHECKPOINT_PAGES = 4000


class Checkpointer:
    """A daemon thread that checkpoints the WAL every ``interval`` seconds on its own connection.

    PASSIVE checkpoints never block writers or readers; SQLite's step releases the GIL, so the
    copying and the fsync overlap with the event loop. Durability is unaffected: a committed
    transaction is in the WAL, whether or not it was checkpointed yet. Under steady writes
    these checkpoints never catch up completely, so they cannot restart the WAL on their own;
    the writers' autocheckpoint (``AUTOCHECKPOINT_PAGES``) does that.
    """

    def __init__(self, path: str, interval: float = 0.2) -> None:
        self.path, self.interval = path, interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="devhost-checkpoint",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            while not self._stopped.wait(self.interval):
                try:
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # e.g. the disk is full: retried next round
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            db.close()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)


def lock_database(path: str, wait: float = 2.0) -> IO[str]:
    """Take the one-devhost-per-database lock of ``path`` (held while the returned file stays
    open, also by forked workers that inherit it).

    Waits up to ``wait`` seconds, so a devhost restarted right after a kill -9 does not trip
    over the dying processes of the previous one. Raises: StoreLocked.
    """
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    lock_file = open(path + ".lock", "a+")  # noqa: SIM115 (held, locked, for the store's lifetime)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError:
            if time.monotonic() >= deadline:
                lock_file.seek(0)
                holder = lock_file.read().strip() or "unknown"
                lock_file.close()
                raise StoreLocked(
                    f"database {path} is in use by another devhost (pid {holder}); "
                    f"stop it or pass a different --db") from None
            time.sleep(0.02)
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(str(os.getpid()))
    lock_file.flush()
    return lock_file


class Store:
    """The SQLite database behind one devhost process (see module docstring for guarantees).

    ``shared``: this process is one of several workers of one devhost; the supervisor holds the
    database lock (:func:`lock_database`) and the workers' write transactions take turns.
    ``checkpoint``: run the WAL checkpointer (one per database: the other workers pass False).
    """

    def __init__(self, path: str, synchronous: str = "NORMAL", *, shared: bool = False,
                 checkpoint: bool = True, lock_wait: float = 2.0,
                 wal_limit: int = WAL_SIZE_LIMIT, create: bool = True) -> None:
        """Open (``create``: or create) the devhost store at ``path``.

        Raises: NotADevhostStore (:func:`check_database`; nothing changed), StoreLocked.
        """
        check_database(path, create)
        self.path = os.path.abspath(path)
        self._wal_path = self.path + "-wal"
        self._wal_limit = wal_limit
        self.shared = shared
        self._lock_file: IO[str] | None = None
        self._write_lock: IO[str] | None = None
        if shared:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            # Opened by this process itself: a lock on an inherited descriptor would be shared
            # with the other workers instead of excluding them.
            self._write_lock = open(self.path + ".write-lock", "a+")  # noqa: SIM115 (held while open)
        else:
            self._lock_file = lock_database(self.path, lock_wait)
        self._batching = False
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous}")
        self.db.execute("PRAGMA busy_timeout=5000")
        # Checkpoints (copying the WAL into the database file, with an fsync) mostly run on a
        # background thread (Checkpointer), off the event loop and outside the write lock. But
        # the WAL can only restart from its beginning after a checkpoint that no write overtook,
        # which under steady load only a writer's own checkpoint achieves: so the COMMIT that
        # takes the WAL past AUTOCHECKPOINT_PAGES finishes the (by then small) rest, and the WAL
        # stays that size instead of growing without bound.
        self.db.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        self.db.execute(f"PRAGMA journal_size_limit={wal_limit}")
        with self._locked():
            self.db.executescript(SCHEMA)
            # New stores, and those that predate the id (recognised by their schema), carry it.
            self.db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._checkpointer = Checkpointer(self.path) if checkpoint else None

    def close(self) -> None:
        """Close the database and release this process's locks."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self.db.close()
        for lock in (self._lock_file, self._write_lock):
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_UN)
                lock.close()

    def _bound_wal(self) -> None:
        """After a commit: if the WAL file is past its limit, checkpoint it whole and truncate
        it now. Only a transaction larger than the limit gets it there (autocheckpoints keep
        steady writes near AUTOCHECKPOINT_PAGES), and ``journal_size_limit`` would trim it
        only when a later writer restarts the WAL; one 99 MB event otherwise left 299 MB.
        Safe at any instant: a checkpoint copies committed pages into the database file
        before the WAL is cut. Best effort: if a reader keeps it busy, the next commit retries.
        """
        try:
            if os.stat(self._wal_path).st_size <= self._wal_limit:
                return
        except FileNotFoundError:
            return
        busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.info("WAL past %d bytes; a reader kept the truncating checkpoint from finishing",
                     self._wal_limit)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclude the other workers' write transactions (a no-op for a lone devhost)."""
        if self._write_lock is None:
            yield
            return
        fcntl.flock(self._write_lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._write_lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Make the reads inside the block see one consistent state. Only shared stores need
        it: a lone devhost has no other writer."""
        if not self.shared or self._batching or self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        if self._batching:
            # Inside batch(): a savepoint keeps this transition all-or-nothing on its own.
            self.db.execute("SAVEPOINT transition")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK TO transition")
                self.db.execute("RELEASE transition")
                raise
            self.db.execute("RELEASE transition")
            return
        with self._locked():
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
            self.db.execute("COMMIT")
            self._bound_wal()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Commit every transition made inside the block in one transaction (one WAL write
        instead of one per transition). Each transition stays atomic by itself; none is durable
        before the block ends, so nothing inside may be acknowledged to a caller until then.
        """
        if self._batching:
            yield
            return
        with self._locked():
            self.db.execute("BEGIN IMMEDIATE")
            self._batching = True
            try:
                yield
            except BaseException:
                self._batching = False
                self.db.execute("ROLLBACK")
                raise
            self._batching = False
            self.db.execute("COMMIT")
            self._bound_wal()

    # ---- reads -------------------------------------------------------------------------------

    def get(self, instance_id: str) -> Instance | None:
        row = self.db.execute(f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id=?",
                              (instance_id,)).fetchone()
        return Instance.from_row(row) if row else None

    def latest_time(self) -> float:
        """The latest time any instance was created or changed (0.0 for an empty store): every
        episode stamps ``updated_at`` with its OrchestratorStarted time."""
        row = self.db.execute("SELECT MAX(updated_at) FROM instances").fetchone()
        return row[0] or 0.0

    def history_length(self, instance_id: str) -> int:
        """How many history events the instance has (its events are numbered from 0)."""
        row = self.db.execute("SELECT MAX(seq) FROM history WHERE instance_id=?",
                              (instance_id,)).fetchone()
        return 0 if row[0] is None else row[0] + 1

    def history(self, instance_id: str) -> list[str]:
        """The instance's history events as JSON texts, oldest first."""
        return [r[0] for r in self.db.execute(
            "SELECT event FROM history WHERE instance_id=? ORDER BY seq", (instance_id,))]

    def visible_messages(self, instance_id: str, at: float) -> list[Message]:
        """The instance's inbox rows visible at ``at``, oldest first."""
        return [Message(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[6])
                for r in self.db.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM inbox WHERE instance_id=? AND visible_at<=? "
                    f"ORDER BY msg_id", (instance_id, at))]

    def visible_control(self, instance_id: str, at: float) -> list[Message]:
        """The instance's terminate/suspend/resume rows visible at ``at``, oldest first: what a
        Suspended instance can act on. Reads only those rows (a partial index), however many
        events wait behind them."""
        return [Message(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6]), r[6])
                for r in self.db.execute(
                    f"SELECT {_MESSAGE_COLUMNS} FROM inbox WHERE instance_id=? "
                    f"AND kind IN ('terminate', 'suspend', 'resume') AND visible_at<=? "
                    f"ORDER BY msg_id", (instance_id, at))]

    def next_wake(self, instance_id: str) -> float | None:
        row = self.db.execute("SELECT MIN(visible_at) FROM inbox WHERE instance_id=?",
                              (instance_id,)).fetchone()
        return row[0]

    def wakes_after(self, at: float) -> list[tuple[float, str]]:
        """(time, instance) of every message due after ``at``, one per distinct time: the timer
        heap rebuilt from what is really pending. Every time, not only an instance's earliest:
        an episode re-arms nothing, so a later timer left out would never fire."""
        return [(r[1], r[0]) for r in self.db.execute(
            "SELECT DISTINCT instance_id, visible_at FROM inbox WHERE visible_at>?", (at,))]

    def wake_times(self) -> list[tuple[str, float]]:
        """(instance, time) of every inbox message, one per distinct time: what to resume after
        restart (every time, for the reason given in :meth:`wakes_after`)."""
        return list(self.db.execute("SELECT DISTINCT instance_id, visible_at FROM inbox"))

    def pending_work(self, through: int | None = None) -> list[WorkItem]:
        """Every scheduled activity not yet completed (with ``work_id`` up to ``through``, when
        given): re-dispatched after a restart."""
        if through is None:
            rows = self.db.execute(f"SELECT {_WORK_COLUMNS} FROM work ORDER BY work_id")
        else:
            rows = self.db.execute(f"SELECT {_WORK_COLUMNS} FROM work WHERE work_id <= ? "
                                   f"ORDER BY work_id", (through,))
        return [WorkItem(*r) for r in rows]

    def last_work_id(self) -> int:
        """The highest ``work_id`` now in the table (0 if none). Ids are never reused
        (AUTOINCREMENT): every row scheduled later has a higher one."""
        return self.db.execute("SELECT COALESCE(MAX(work_id), 0) FROM work").fetchone()[0]

    def query(self, *, created_from: float | None = None, created_to: float | None = None,
              statuses: Sequence[str] | None = None, prefix: str | None = None,
              top: int = 100, continuation: str | None = None,
              ) -> tuple[list[Instance], str | None]:
        """One page of instances ordered by creation time, and the token for the next page.

        Raises: ValueError for a malformed continuation token.
        """
        sql, args = self._where(created_from, created_to, statuses, prefix)
        if continuation:
            try:
                after_created, after_id = json.loads(base64.urlsafe_b64decode(continuation))
                after_created = float(after_created)
                after_id = str(after_id)
            except Exception as exc:  # any garbage token is the caller's error
                raise ValueError(f"invalid continuation token: {continuation!r}") from exc
            sql += " AND (created_at > ? OR (created_at = ? AND instance_id > ?))"
            args += [after_created, after_created, after_id]
        rows = self.db.execute(
            f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE {sql} "
            f"ORDER BY created_at, instance_id LIMIT ?",
            args + [top + 1]).fetchall()
        page = [Instance.from_row(r) for r in rows[:top]]
        token = None
        if len(rows) > top:
            last = page[-1]
            token = base64.urlsafe_b64encode(
                _dumps([repr(last.created_at), last.instance_id]).encode()).decode()
        return page, token

    @staticmethod
    def _where(created_from: float | None, created_to: float | None,
               statuses: Sequence[str] | None, prefix: str | None) -> tuple[str, list[Any]]:
        sql = "1=1"
        args: list[Any] = []
        if created_from is not None:
            sql += " AND created_at >= ?"
            args.append(created_from)
        if created_to is not None:
            sql += " AND created_at <= ?"
            args.append(created_to)
        if statuses:
            sql += f" AND status IN ({','.join('?' * len(statuses))})"
            args.extend(statuses)
        if prefix:
            sql += " AND substr(instance_id, 1, ?) = ?"
            args += [len(prefix), prefix]
        return sql, args

    # ---- client transitions --------------------------------------------------------------------

    def create(self, new: NewInstance, overridable: frozenset[RuntimeStatus]) -> None:
        """Create (or replace a finished) instance and queue its ExecutionStarted message.

        Raises: InstanceAlreadyRunning when the existing instance's status is not overridable.
        """
        with self._tx() as db:
            row = db.execute("SELECT status FROM instances WHERE instance_id=?",
                             (new.instance_id,)).fetchone()
            if row is not None:
                if RuntimeStatus(row[0]) not in overridable:
                    raise InstanceAlreadyRunning(new.instance_id, row[0])
                self._delete_instance(db, new.instance_id)
            self._insert_instance(db, new)

    def enqueue(self, message: NewMessage, allow: frozenset[RuntimeStatus]) -> Instance:
        """Queue a message for a live instance; returns the instance as it was.

        Raises: InstanceNotFound, InstanceGone (status outside ``allow``).
        """
        with self._tx() as db:
            row = db.execute(f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id=?",
                             (message.instance_id,)).fetchone()
            if row is None:
                raise InstanceNotFound(message.instance_id)
            inst = Instance.from_row(row)
            if inst.status not in allow:
                raise InstanceGone(message.instance_id)
            self._insert_message(db, message)
            return inst

    def purge(self, instance_ids: Sequence[str]) -> int:
        """Delete instances with their history, messages and work; returns how many existed."""
        with self._tx() as db:
            deleted = 0
            for iid in instance_ids:
                deleted += self._delete_instance(db, iid)
            return deleted

    def ids_matching(self, created_from: float | None, created_to: float | None,
                     statuses: Sequence[str] | None) -> list[str]:
        sql, args = self._where(created_from, created_to, statuses, None)
        return [r[0] for r in self.db.execute(
            f"SELECT instance_id FROM instances WHERE {sql}", args)]

    # ---- engine transitions --------------------------------------------------------------------

    def complete_work(self, work_id: int, message: NewMessage) -> bool:
        """Record an activity's result: delete its work row and queue the completion message.

        Returns False (and changes nothing) when the work row is gone: the instance finished,
        continued as new, was purged or terminated meanwhile, or this is a duplicate delivery.
        """
        with self._tx() as db:
            if db.execute("DELETE FROM work WHERE work_id=?", (work_id,)).rowcount == 0:
                return False
            self._insert_message(db, message)
            return True

    def commit_episode(self, c: EpisodeCommit) -> list[WorkItem]:
        """Write one episode atomically; returns the work items it scheduled (with their ids)."""
        with self._tx() as db:
            iid = c.instance_id
            row = db.execute(
                "SELECT execution_id, status, (SELECT MAX(seq) FROM history WHERE instance_id=?) "
                "FROM instances WHERE instance_id=?", (iid, iid)).fetchone()
            if row is None or row[0] != c.execution_id or \
                    (c.expected_status is not None and row[1] != c.expected_status.value) or \
                    (0 if row[2] is None else row[2] + 1) != c.history_base:
                # Another writer moved the instance on since this episode read it.
                raise StaleHistory(f"{iid}: the history changed while the episode ran")
            if c.consumed:
                gone = db.executemany("DELETE FROM inbox WHERE msg_id=?",
                                      [(m,) for m in c.consumed]).rowcount
                if gone != len(c.consumed):
                    # Another writer consumed some of them first: committing would deliver
                    # them twice. Roll back; the episode is rerun from what is left.
                    raise MessagesAlreadyConsumed(f"{iid}: {len(c.consumed) - gone} of the "
                                                  f"episode's messages were already consumed")
            base = c.history_base
            if c.reset_history:
                db.execute("DELETE FROM history WHERE instance_id=?", (iid,))
                base = 0
            db.executemany("INSERT INTO history (instance_id, seq, event) VALUES (?,?,?)",
                           [(iid, base + i, text) for i, text in enumerate(c.new_events)])
            sets = ["status=?", "updated_at=?"]
            args: list[Any] = [c.status.value, c.updated_at]
            if c.set_output:
                sets.append("output=?")
                args.append(c.output)
            if c.set_custom_status:
                sets.append("custom_status=?")
                args.append(c.custom_status)
            if c.new_execution_id is not None:
                sets += ["execution_id=?", "input=?"]
                args += [c.new_execution_id, c.new_input]
            db.execute(f"UPDATE instances SET {', '.join(sets)} WHERE instance_id=?",
                       args + [iid])
            if c.dead_execution is not None:
                # Activity results still in flight then find no work row and are dropped.
                db.execute("DELETE FROM inbox WHERE instance_id=? AND execution_id=?",
                           (iid, c.dead_execution))
                db.execute("DELETE FROM work WHERE instance_id=? AND execution_id=?",
                           (iid, c.dead_execution))
            # Task ids are unique within an execution: (execution, task id) names one timer.
            for task_id in c.cancel_timers:
                db.execute("DELETE FROM inbox WHERE instance_id=? AND execution_id=? "
                           "AND task_id=?", (iid, c.execution_id, task_id))
            for start in c.children:
                row = db.execute("SELECT status FROM instances WHERE instance_id=?",
                                 (start.child.instance_id,)).fetchone()
                if row is not None and RuntimeStatus(row[0]) not in start.replaceable:
                    self._insert_message(db, start.refused(RuntimeStatus(row[0])))
                    continue
                if row is not None:
                    self._delete_instance(db, start.child.instance_id)
                self._insert_instance(db, start.child)
            for message in c.messages:
                self._insert_message(db, message)
            scheduled = []
            for task_id, name, text in c.new_work:
                cur = db.execute(
                    "INSERT INTO work (instance_id, execution_id, task_id, name, input) "
                    "VALUES (?,?,?,?,?)", (iid, c.new_execution_id or c.execution_id,
                                           task_id, name, text))
                assert cur.lastrowid is not None  # sqlite3 sets it after every INSERT
                scheduled.append(WorkItem(cur.lastrowid, iid, c.new_execution_id or
                                          c.execution_id, task_id, name, text))
            return scheduled

    def drop_messages(self, msg_ids: Sequence[int]) -> None:
        """Delete these inbox rows (the engine decided nobody will ever take them)."""
        with self._tx() as db:
            db.executemany("DELETE FROM inbox WHERE msg_id=?", [(m,) for m in msg_ids])

    # ---- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _insert_message(db: sqlite3.Connection, m: NewMessage) -> None:
        db.execute("INSERT INTO inbox (instance_id, execution_id, visible_at, kind, task_id, "
                   "payload) VALUES (?,?,?,?,?,?)",
                   (m.instance_id, m.execution_id, m.visible_at, m.kind, m.task_id,
                    _dumps(m.payload)))

    @staticmethod
    def _insert_instance(db: sqlite3.Connection, n: NewInstance) -> None:
        db.execute(f"INSERT INTO instances ({INSTANCE_COLUMNS}) "
                   f"VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                   (n.instance_id, n.execution_id, n.name, "", RuntimeStatus.PENDING.value,
                    n.input, None, None, n.created_at, n.created_at, n.parent_instance_id,
                    n.parent_execution_id, n.parent_task_id))
        Store._insert_message(db, NewMessage(n.instance_id, "start", n.start_event,
                                             n.created_at, n.execution_id))

    @staticmethod
    def _delete_instance(db: sqlite3.Connection, instance_id: str) -> int:
        n = db.execute("DELETE FROM instances WHERE instance_id=?", (instance_id,)).rowcount
        db.execute("DELETE FROM history WHERE instance_id=?", (instance_id,))
        db.execute("DELETE FROM inbox WHERE instance_id=?", (instance_id,))
        db.execute("DELETE FROM work WHERE instance_id=?", (instance_id,))
        return n
