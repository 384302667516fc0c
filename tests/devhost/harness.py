"""An in-process engine on a fake clock: one store + engine + management API per ``Harness``.

Two harnesses on one file (``shared=True``) are two workers of ``devhost --workers 2`` on one
loop, each with its own connection, cache and clock: a test interleaves their steps by hand.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from devhost.app.loader import LoadedApp
from devhost.core.engine import Engine
from devhost.core.store import Store, lock_database
from devhost.tools.management import ManagementApi

ORIGIN = "http://127.0.0.1:7071"


class FakeClock:
    """Epoch seconds that move only when told to."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Harness:
    """One store + engine + management API on a database file that outlives restarts."""

    def __init__(self, path: Path, clock: FakeClock, loaded: LoadedApp, shared: bool = False,
                 **engine_options: Any) -> None:
        self.path, self.clock, self.loaded = path, clock, loaded
        self.store = Store(str(path), shared=shared, checkpoint=not shared)
        self.engine = Engine(self.store, loaded, clock=clock, **engine_options)
        self.api = ManagementApi(self.store, self.engine, loaded)

    async def settle(self, rounds: int = 20, timeout: float = 30.0) -> None:
        """Let scheduled drains run (loop callbacks and tasks; no time passes on the fake
        clock), and wait (real time, up to ``timeout``) for episodes running on alone on
        their threads (a long one: see ``Engine._await_alone``)."""
        deadline = time.monotonic() + timeout
        while True:
            for _ in range(rounds):
                await asyncio.sleep(0)
            if not self.engine.episodes_running_alone or time.monotonic() > deadline:
                return
            await asyncio.sleep(0.002)

    async def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.engine.poll()
        await self.settle()

    def call(self, method: str, path: str, body: Any = None, *, data: bytes | None = None
             ) -> tuple[int, Any]:
        """One management request; ``body`` is sent as JSON (None: no body), ``data`` raw."""
        if data is None:
            data = b"" if body is None else json.dumps(body).encode()
        reply = self.api.handle(method, path, {}, {"Content-Type": "application/json"}, data,
                                ORIGIN)
        return reply.status, json.loads(reply.body) if reply.body else None

    def begin(self, name: str, value: Any, instance_id: str) -> None:
        """Start as the Python client does (body = JSON of the ``df_dumps`` text), without
        letting the engine run yet."""
        encoded = None if value is None else json.dumps(value)
        code, body = self.call("POST", f"/orchestrators/{name}/{instance_id}", encoded)
        assert code == 202, body

    async def start(self, name: str, value: Any, instance_id: str) -> None:
        self.begin(name, value, instance_id)
        await self.settle()

    def raise_event(self, instance_id: str, name: str, value: Any = None) -> None:
        # Always a JSON body, "null" for None: the SDK never sends an empty one, and the host
        # answers an empty one 400 "Invalid JSON content".
        code, body = self.call("POST", f"/instances/{instance_id}/raiseEvent/{name}",
                               data=json.dumps(value).encode())
        assert code == 202, body

    def status(self, instance_id: str) -> dict[str, Any]:
        code, body = self.call("GET", f"/instances/{instance_id}")
        assert code in (200, 202), code
        return body

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        return [json.loads(text) for text in self.store.history(instance_id)]

    def inbox(self, instance_id: str) -> list[tuple[str, str | None]]:
        """(kind, execution id) of every inbox row of the instance, due or not."""
        return [(r[0], r[1]) for r in self.store.db.execute(
            "SELECT kind, execution_id FROM inbox WHERE instance_id=? ORDER BY msg_id",
            (instance_id,))]

    async def close(self) -> None:
        await self.engine.close()
        self.store.close()

    async def restart(self) -> None:
        """What a process restart does: drop all memory, reopen the file, recover."""
        await self.close()
        self.store = Store(str(self.path))
        self.engine = Engine(self.store, self.loaded, clock=self.clock)
        self.api = ManagementApi(self.store, self.engine, self.loaded)
        self.engine.recover()
        await self.settle()


@asynccontextmanager
async def one_worker(path: Path, loaded: LoadedApp, start: float) -> AsyncIterator[Harness]:
    """One engine on a fresh file, its clock at ``start``; closed afterwards."""
    harness = Harness(path, FakeClock(start), loaded)
    try:
        yield harness
    finally:
        await harness.close()


@asynccontextmanager
async def two_workers(path: Path, loaded: LoadedApp,
                      start: float) -> AsyncIterator[tuple[Harness, Harness]]:
    """Two workers' engines on one file, holding its lock as ``devhost --workers 2`` does."""
    lock = lock_database(str(path))
    a = Harness(path, FakeClock(start), loaded, shared=True)
    b = Harness(path, FakeClock(start), loaded, shared=True)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()
        lock.close()
