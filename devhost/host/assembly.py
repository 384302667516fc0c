"""Assembles loader, store, engine and server into one running devhost.

Guarantees: :meth:`Devhost.start` returns once the port is bound and every pending instance,
timer and activity of the database has been re-armed; :meth:`Devhost.stop` stops accepting
requests, lets in-flight requests and activities finish within the grace period (their results
are committed), cancels what is left (its work stays queued) and releases the database.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from devhost.app.appfiles import load_settings
from devhost.app.loader import LoadedApp, load_app
from devhost.core.engine import Engine
from devhost.core.store import Store, WorkItem
from devhost.host import connections, fastpath, shutdown
from devhost.host.server import DevServer
from devhost.tools.management import RPC_PATH, ManagementApi
from devhost.triggers.runner import Triggers

log = logging.getLogger("devhost")


@dataclass(frozen=True)
class Config:
    """Command-line settings of one devhost process."""

    app_dir: str = "."
    host: str = "127.0.0.1"
    port: int = 7071
    db_path: str | None = None
    synchronous: str = "NORMAL"
    #: Worker processes sharing the port and the database (see :mod:`devhost.host.supervisor`).
    workers: int = 1
    #: Which worker this process is (0 also resumes the database's pending work).
    worker_index: int = 0
    #: Start the project's Azurite when a queue trigger needs the development storage and
    #: nothing listens on its port (``make run`` asks for it; tests bring their own).
    start_azurite: bool = False
    #: Seconds a shutdown waits for running requests, activities and queue/timer functions
    #: (see devhost.host.shutdown).
    grace: float = shutdown.DEFAULT_GRACE
    #: Set by the supervisor: the last activity row left before the workers started. Worker 0
    #: re-dispatches only those; a later row was scheduled by a live worker, which runs it
    #: (another worker may serve requests before worker 0 has recovered).
    work_through: int | None = None
    #: Pin each worker of ``workers`` >= 2 to one CPU (see :mod:`devhost.host.affinity`).
    pin_workers: bool = True
    #: Set by the supervisor: the CPU of each worker, by index (empty: not pinned).
    worker_cpus: tuple[int, ...] = ()

    @property
    def shared(self) -> bool:
        return self.workers > 1

    def database(self) -> str:
        """The SQLite file: ``--db`` or ``<app>/.devhost/devhost.sqlite3`` (git-ignored)."""
        return self.db_path or os.path.join(os.path.abspath(self.app_dir), ".devhost",
                                            "devhost.sqlite3")


class Devhost:
    """One devhost: call :meth:`start` then :meth:`stop` on the same event loop."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.app: LoadedApp | None = None
        self.store: Store | None = None
        self.engine: Engine | None = None
        self._runner: web.AppRunner | None = None
        self.port = config.port
        self.recovered = (0, 0)
        self.fastpath: list[str] = []
        self.triggers: Triggers | None = None

    async def start(self) -> None:
        """Load the app, open the store, bind the port and resume pending work.

        Raises: AppLoadError, StoreLocked, OSError (port in use).
        """
        load_settings(self.config.app_dir)
        self.app = load_app(self.config.app_dir)
        self.store = Store(self.config.database(), self.config.synchronous,
                           shared=self.config.shared,
                           checkpoint=self.config.worker_index == 0)
        try:
            self.engine = Engine(self.store, self.app)
            management = ManagementApi(self.store, self.engine, self.app)
            server = DevServer(self.app, self.engine, management, self.config.host)
            self._runner = connections.LimitedRunner(server.build(), connections.Limits(),
                                                     access_log=None, handle_signals=False,
                                                     shutdown_timeout=self.config.grace)
            await self._runner.setup()
            # Workers each listen on the same port; the kernel spreads connections among them.
            site = web.TCPSite(self._runner, self.config.host, self.config.port,
                               reuse_address=True, reuse_port=self.config.shared or None)
            await site.start()
            addresses = self._runner.addresses  # the bound port for port 0
            if addresses:
                self.port = addresses[0][1]
            server.rpc_origin = f"http://127.0.0.1:{self.port}" \
                if self.config.host in ("0.0.0.0", "127.0.0.1", "localhost", "::") \
                else f"http://{self.config.host}:{self.port}"
            self.fastpath = fastpath.install(management.serve,
                                             f"{server.rpc_origin}{RPC_PATH}/")
            if self.config.worker_index == 0:
                self.recovered = self.engine.recover(self.config.work_through)
                # Timer and queue triggers run in one worker only: a timer fires once per
                # occurrence, and one listener per queue is what the host runs per instance.
                self.triggers = Triggers(self.app, self.config.database(),
                                         lambda: server.binding_for(server.rpc_origin),
                                         start_azurite=self.config.start_azurite)
                await self.triggers.start()
        except BaseException:
            if self.triggers is not None:
                await self.triggers.stop()
            self.store.close()
            raise

    async def stop(self) -> list[WorkItem]:
        """Stop accepting requests and fetching queue messages, give running requests,
        activities and queue/timer functions the grace period, then release everything
        (idempotent).

        Returns: the activity calls that did not finish in time (they run again at next start).
        """
        unfinished: list[WorkItem] = []
        # All drain at once, so the whole shutdown takes at most one grace period.
        waits: list[Awaitable[Any]] = []
        if self.triggers is not None:
            waits.append(self.triggers.stop(self.config.grace))
        if self._runner is not None:
            waits.append(self._runner.cleanup())
            self._runner = None
        if self.engine is not None:
            waits.append(self.engine.close(self.config.grace))
        results = await asyncio.gather(*waits)
        self.triggers = None
        if self.engine is not None:
            unfinished = results[-1]
            self.engine = None
        try:
            from azure.durable_functions.models.utils import http_utils
            await http_utils._close_session()
        except (ImportError, AttributeError):  # SDK layout changed: nothing to close
            pass
        if self.store is not None:
            self.store.close()
            self.store = None
        return unfinished
