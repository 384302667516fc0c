"""Test any v2 Durable Functions app end to end, in process, in virtual time.

    from devhost.testing import run_app

    async with run_app("path/to/app", settings={"WORKFLOW_TIMEOUT_SECONDS": "604800"}) as host:
        r = await host.post("/api/start/k")
        assert r.status == 202 and r.json()["instanceId"] == "workflow-k"
        await host.advance(days=7, seconds=1)     # the week passes in milliseconds
        status = await host.client.get_status("workflow-k")

Guarantees:
- The app runs as under ``python -m devhost``: the same loader, engine, management API and HTTP
  server (routing, the Host rule, the body limit), its HTTP, orchestrator, activity and timer
  functions, on a fresh store in a temporary directory that is deleted afterwards. The Durable
  client (``host.client`` and the apps' own ``durable_client_input``) is answered in process.
- Virtual time: the Durable clock (``context.current_utc_datetime``, durable timers, status
  timestamps) and the timer triggers read one clock that starts at the real now and moves only
  in :meth:`TestHost.advance`. ``advance`` visits every moment something falls due, in order,
  and runs what falls due there until nothing is ready, so a timer set by an episode at a due
  moment is itself due at the right virtual time. Activities and requests run at their real
  speed; :meth:`TestHost.advance` and :meth:`TestHost.idle` return when no episode is ready, no
  activity and no timer function is running.
- ``settings`` are in ``os.environ`` for the run (``local.settings.json`` is not read, so tests
  do not depend on a developer's local file); the environment, the working directory,
  ``sys.path`` and ``sys.modules["function_app"]`` are restored afterwards, so the same app can
  run again with other settings.
- Not run: queue triggers (they need Azurite; ``host.skipped`` names them). Code that reads the
  wall clock itself (``datetime.now()`` in an activity or an HTTP or timer function) sees the
  real time, not the virtual one.
"""
from __future__ import annotations

import asyncio
import contextlib
import heapq
import importlib
import json as jsonlib
import os
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import azure.durable_functions as df
import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from devhost.app import ncrontab
from devhost.app.bindings import TimerFunction
from devhost.app.loader import LoadedApp, load_app
from devhost.core.engine import Engine
from devhost.core.store import Store
from devhost.host.fastpath import InprocTransport
from devhost.host.server import DevServer
from devhost.tools.management import RPC_PATH, ManagementApi
from devhost.triggers.timers import ScheduleMonitor, TimerRunner, call, resolve_setting_references

__all__ = ["Response", "TestHost", "VirtualClock", "run_app"]

#: Real seconds :meth:`TestHost.idle` waits for running work before it names what is stuck.
IDLE_TIMEOUT = 30.0
#: Histories keep whole microseconds: a timer due within this of the target of an advance
#: counts as due by then (a deadline of "now + 7 days" is due after ``advance(days=7)``).
RESOLUTION = 1e-6
_UNSET: Any = object()


@dataclass(frozen=True)
class Response:
    """An HTTP answer of the app or devhost: ``status``, ``headers`` (case-insensitive),
    ``body`` bytes, ``text`` and ``json()``."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        """The body parsed as JSON. Raises: ValueError when it is not JSON."""
        return jsonlib.loads(self.body)


class VirtualClock:
    """Epoch seconds that move only when told to (the engine's ``clock``)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def datetime(self) -> datetime:
        return datetime.fromtimestamp(self.now, timezone.utc)


class _VirtualTimers:
    """Runs the app's timer triggers with :class:`~devhost.triggers.timers.TimerRunner` on the virtual
    clock: each runner parks in :meth:`wait_until` until :meth:`release` reaches its due time."""

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self._waits: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0
        self.tasks: list[asyncio.Task[None]] = []
        self.names: list[str] = []

    async def wait_until(self, due: datetime) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waits, (due.timestamp(), self._seq, future))
        self._seq += 1
        await future

    def next_due(self) -> float | None:
        while self._waits and self._waits[0][2].done():
            heapq.heappop(self._waits)
        return self._waits[0][0] if self._waits else None

    def release(self) -> None:
        """Wake every runner whose occurrence has come."""
        while self._waits and self._waits[0][0] <= self.clock.now:
            _, _, future = heapq.heappop(self._waits)
            if not future.done():
                future.set_result(None)

    def running(self) -> list[str]:
        """Timer functions not parked: running, or about to run or park."""
        parked = sum(1 for _, _, f in self._waits if not f.done())
        live = [name for name, task in zip(self.names, self.tasks, strict=True) if not task.done()]
        return live if len(live) > parked else []

    def start(self, fn: TimerFunction, schedule: ncrontab.Schedule,
              monitor: ScheduleMonitor | None, binding: Callable[[], str]) -> None:
        async def invoke(timer_fn: TimerFunction, request: func.TimerRequest) -> None:
            await call(timer_fn, request, binding() if timer_fn.client_param else None)

        runner = TimerRunner(fn, schedule, monitor, invoke, clock=self.clock.datetime,
                             wait_until=self.wait_until)
        self.names.append(fn.name)
        self.tasks.append(asyncio.get_running_loop().create_task(runner.run(),
                                                                 name=f"timer:{fn.name}"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


class _ClientRouter:
    """Answers the Durable client's calls for each live host in process (the fast path's
    :class:`~devhost.host.fastpath.InprocTransport`), whatever ``DEVHOST_FASTPATH`` says: installed
    into the SDK's client module while at least one host runs, then the previous functions are
    put back. Calls to any other URL go to those previous functions."""

    _NAMES = ("post_async_request", "get_async_request", "delete_async_request")

    def __init__(self) -> None:
        self.hosts: dict[str, InprocTransport] = {}
        self.saved: dict[str, Callable[..., Any]] = {}

    def _module(self) -> Any:
        return importlib.import_module("azure.durable_functions.models.DurableOrchestrationClient")

    def _pick(self, url: str) -> InprocTransport | None:
        return next((t for base, t in self.hosts.items() if url.startswith(base)), None)

    async def _post(self, url: str, *args: Any, **kwargs: Any) -> list[Any]:
        transport = self._pick(url)
        if transport is None:
            return await self.saved["post_async_request"](url, *args, **kwargs)
        return await transport.post(url, *args, **kwargs)

    async def _get(self, url: str, *args: Any, **kwargs: Any) -> list[Any]:
        transport = self._pick(url)
        if transport is None:
            return await self.saved["get_async_request"](url, *args, **kwargs)
        return await transport.get(url, *args, **kwargs)

    async def _delete(self, url: str, *args: Any, **kwargs: Any) -> list[Any]:
        transport = self._pick(url)
        if transport is None:
            return await self.saved["delete_async_request"](url, *args, **kwargs)
        return await transport.delete(url, *args, **kwargs)

    def add(self, rpc_base: str, management: ManagementApi) -> None:
        module = self._module()
        if not self.hosts:
            self.saved = {n: getattr(module, n) for n in self._NAMES}
            module.post_async_request = self._post
            module.get_async_request = self._get
            module.delete_async_request = self._delete
        self.hosts[rpc_base] = InprocTransport(management.serve, rpc_base, self.saved)

    def remove(self, rpc_base: str) -> None:
        self.hosts.pop(rpc_base, None)
        if not self.hosts and self.saved:
            module = self._module()
            for name, fn in zip(self._NAMES, (self._post, self._get, self._delete), strict=True):
                if getattr(module, name) == fn:
                    setattr(module, name, self.saved[name])
            self.saved = {}


_ROUTER = _ClientRouter()


class TestHost:
    """One app running under :func:`run_app`. Requests go to its HTTP server on 127.0.0.1;
    :attr:`client` is a ``DurableOrchestrationClient`` bound to it."""

    __test__ = False  # not a pytest test class

    def __init__(self, app: LoadedApp, store: Store, engine: Engine,
                 management: ManagementApi, clock: VirtualClock, base_url: str,
                 session: aiohttp.ClientSession, timers: _VirtualTimers, binding: str,
                 skipped: list[str], idle_timeout: float) -> None:
        self.app, self.store, self.engine, self.management = app, store, engine, management
        self.clock, self.base_url, self._session, self._timers = clock, base_url, session, timers
        #: The ``durableClient`` binding JSON the app's client functions receive.
        self.binding = binding
        #: Functions of the app that do not run here, each with the reason.
        self.skipped = skipped
        self.idle_timeout = idle_timeout
        self.client = df.DurableOrchestrationClient(binding)

    @property
    def now(self) -> datetime:
        """The virtual time (UTC)."""
        return self.clock.datetime()

    async def request(self, method: str, path: str, *, json: Any = _UNSET,
                      data: bytes | str | None = None, headers: Mapping[str, str] | None = None,
                      params: Mapping[str, str] | None = None) -> Response:
        """Send one request (``path`` such as ``/api/start/k``; ``json=`` sends that value as
        JSON, ``None`` included; ``data=`` raw bytes or text) and read the whole answer."""
        kwargs: dict[str, Any] = {"headers": dict(headers or {}), "params": params}
        if json is not _UNSET:
            kwargs["data"] = jsonlib.dumps(json).encode("utf-8")
            kwargs["headers"].setdefault("Content-Type", "application/json")
        elif data is not None:
            kwargs["data"] = data
        async with self._session.request(method, self.base_url + path, **kwargs) as answer:
            body = await answer.read()
            return Response(answer.status, CIMultiDictProxy(CIMultiDict(answer.headers)), body)

    async def get(self, path: str, **kwargs: Any) -> Response:
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> Response:
        return await self.request("POST", path, **kwargs)

    async def put(self, path: str, **kwargs: Any) -> Response:
        return await self.request("PUT", path, **kwargs)

    async def delete(self, path: str, **kwargs: Any) -> Response:
        return await self.request("DELETE", path, **kwargs)

    async def idle(self) -> None:
        """Return once nothing is ready or running (episodes, activities, timer functions).

        Raises: TimeoutError after :attr:`idle_timeout` real seconds, naming what still runs.
        """
        deadline = time.monotonic() + self.idle_timeout
        spins = 0
        while True:
            if self.engine.idle() and not self._timers.running():
                # Twice in a row, a loop turn apart: a finished task may wake an instance in
                # a callback that has not run yet.
                await asyncio.sleep(0)
                if self.engine.idle() and not self._timers.running():
                    return
            if time.monotonic() > deadline:
                activities = [f"{w.name} ({w.instance_id})"
                              for w in self.engine.running_activities()]
                raise TimeoutError(
                    f"still busy after {self.idle_timeout:g} s: activities {activities}, "
                    f"timer functions {self._timers.running()}, engine idle: "
                    f"{self.engine.idle()}")
            spins += 1
            # Yield first (episodes and async functions run on this loop); once it takes
            # longer, something runs on a thread (an activity): do not spin against it.
            await asyncio.sleep(0 if spins < 100 else 0.001)

    async def advance(self, delta: timedelta | None = None, /, **amount: float) -> None:
        """Move the virtual clock forward by ``delta`` or ``timedelta(**amount)`` (``days=7,
        seconds=1``), visiting each moment something falls due on the way (durable timers,
        timer triggers, retries) and running it until idle there; returns idle at the end.
        ``advance()`` runs what is due now. Raises: ValueError for a negative amount."""
        step = (delta or timedelta()) + timedelta(**amount)
        if step < timedelta():
            raise ValueError(f"time only moves forward; got {step}")
        target = self.clock.now + step.total_seconds()
        await self.idle()
        while True:
            due = [t for t in (self.engine.next_wakeup(), self._timers.next_due())
                   if t is not None]
            if not due or min(due) > target + RESOLUTION:
                break
            self.clock.now = max(self.clock.now, min(due))
            self._release()
            await self.idle()
        self.clock.now = max(self.clock.now, target)
        self._release()
        await self.idle()

    def _release(self) -> None:
        self.engine.poll()
        self._timers.release()


def _apply_settings(settings: Mapping[str, str]) -> None:
    for name, value in settings.items():
        if not isinstance(value, str):
            raise TypeError(f"app settings are strings (as in Azure): {name}={value!r} is a "
                            f"{type(value).__name__}")
        os.environ[name] = value


@contextlib.contextmanager
def _process_state() -> Iterator[None]:
    """Put back what loading an app changes in the process: environment, working directory,
    ``sys.path`` and the ``function_app`` module."""
    environ = dict(os.environ)
    cwd = os.getcwd()
    path = list(sys.path)
    module = sys.modules.get("function_app")
    try:
        yield
    finally:
        for name in set(os.environ) - set(environ):
            del os.environ[name]
        for name, value in environ.items():
            if os.environ.get(name) != value:
                os.environ[name] = value
        os.chdir(cwd)
        sys.path[:] = path
        if module is None:
            sys.modules.pop("function_app", None)
        else:
            sys.modules["function_app"] = module


@contextlib.asynccontextmanager
async def run_app(app_dir: str | os.PathLike[str], *, settings: Mapping[str, str] | None = None,
                  idle_timeout: float = IDLE_TIMEOUT) -> AsyncIterator[TestHost]:
    """Run the v2 app in ``app_dir`` (its ``function_app.py``) in process on a fresh store and a
    virtual clock starting now; yields its :class:`TestHost`. See the module docstring for what
    runs and what is restored afterwards.

    Raises: devhost.app.loader.AppLoadError when the app cannot be loaded; TypeError for a setting
    that is not a string.
    """
    with _process_state(), tempfile.TemporaryDirectory(prefix="devhost-testing-") as scratch:
        _apply_settings(settings or {})
        app = load_app(os.fspath(app_dir))
        clock = VirtualClock(float(int(time.time())))  # whole seconds: readable times
        database = os.path.join(scratch, "devhost.sqlite3")
        store = Store(database, checkpoint=False)
        async with contextlib.AsyncExitStack() as stack:
            stack.callback(store.close)
            engine = Engine(store, app, clock=clock)
            stack.push_async_callback(engine.close)
            management = ManagementApi(store, engine, app)
            server = DevServer(app, engine, management)
            runner = web.AppRunner(server.build(), access_log=None, handle_signals=False)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            origin = f"http://127.0.0.1:{port}"
            server.rpc_origin = origin
            rpc_base = f"{origin}{RPC_PATH}/"
            _ROUTER.add(rpc_base, management)
            stack.callback(_ROUTER.remove, rpc_base)
            binding = server.binding_for(origin)
            skipped = list(app.warnings) + [
                f"{q.name}: queue trigger (devhost.testing runs no queue listener)"
                for q in app.queues]
            schedules: list[tuple[TimerFunction, ncrontab.Schedule]] = []
            for fn in app.timers:
                try:
                    schedules.append((fn, ncrontab.parse(resolve_setting_references(fn.schedule))))
                except ValueError as exc:
                    skipped.append(f"{fn.name}: {exc}; the function will not run")
            monitor: ScheduleMonitor | None = None
            if any(fn.use_monitor for fn, _ in schedules):
                monitor = ScheduleMonitor(database)
                stack.callback(monitor.close)
            timers = _VirtualTimers(clock)
            stack.push_async_callback(timers.stop)
            for fn, schedule in schedules:
                timers.start(fn, schedule, monitor if fn.use_monitor else None, lambda: binding)
            session = await stack.enter_async_context(aiohttp.ClientSession())
            host = TestHost(app, store, engine, management, clock, origin, session, timers,
                            binding, skipped, idle_timeout)
            await host.idle()
            yield host
