"""The one load client of the benchmark: closed-loop HTTP drivers on a single asyncio loop.

Guarantees: every lifecycle is verified (start 202, stop 202, check reaches Completed with the
posted payload as ``output.event``); a wrong answer raises :class:`LoadError` instead of being
counted. Request loops are bounded by a count and by ``deadline`` seconds.
"""
from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field

import aiohttp


class LoadError(RuntimeError):
    """The server answered something a correct lifecycle never gets."""


@dataclass
class Run:
    """Outcome of one load run: wall time and per-phase latencies in seconds."""

    done: int = 0
    wall: float = 0.0
    start: list[float] = field(default_factory=list)
    stop_to_completed: list[float] = field(default_factory=list)
    check: list[float] = field(default_factory=list)
    polls: int = 0

    @property
    def rate(self) -> float:
        return self.done / self.wall if self.wall else 0.0


def percentile(samples: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``samples`` in milliseconds (nearest rank)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))] * 1000


class Samples:
    """Per-lifecycle latencies (seconds) collected by concurrent driver threads (the peers)."""

    def __init__(self) -> None:
        self.start: list[float] = []
        self.send_to_done: list[float] = []
        self._lock = threading.Lock()

    def add(self, start: float, send_to_done: float) -> None:
        with self._lock:
            self.start.append(start)
            self.send_to_done.append(send_to_done)


def _session(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, force_close=False),
        timeout=aiohttp.ClientTimeout(total=60))


async def hello(url: str, requests: int, concurrency: int, deadline: float = 120.0) -> Run:
    """``requests`` GETs of ``url`` by ``concurrency`` workers."""
    run = Run()
    counter = itertools.count()
    async with _session(concurrency) as http:
        async def worker() -> None:
            while next(counter) < requests and time.perf_counter() < end:
                async with http.get(url) as r:
                    await r.read()
                    if r.status != 200:
                        raise LoadError(f"hello answered {r.status}")
                run.done += 1
        end = time.perf_counter() + deadline
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        run.wall = time.perf_counter() - t0
    return run


async def lifecycles(base: str, count: int, concurrency: int, prefix: str,
                     deadline: float = 300.0, poll_interval: float = 0.001) -> Run:
    """``count`` start -> stop -> Completed lifecycles through the app's own endpoints."""
    run = Run()
    counter = itertools.count()
    async with _session(concurrency) as http:
        async def one(i: int) -> None:
            key = f"{prefix}-{i}"
            payload = {"n": i}
            t0 = time.perf_counter()
            async with http.post(f"{base}/api/start/{key}") as r:
                await r.read()
                if r.status != 202:
                    raise LoadError(f"start {key}: {r.status} {await r.text()}")
            t1 = time.perf_counter()
            async with http.post(f"{base}/api/stop/{key}", json=payload) as r:
                await r.read()
                if r.status != 202:
                    raise LoadError(f"stop {key}: {r.status} {await r.text()}")
            while True:
                run.polls += 1
                async with http.get(f"{base}/api/check/{key}") as r:
                    body = await r.json()
                    if r.status != 200:
                        raise LoadError(f"check {key}: {r.status} {body}")
                status = body["runtimeStatus"]
                if status == "Completed":
                    break
                if status not in ("Pending", "Running"):
                    raise LoadError(f"check {key}: unexpected status {body}")
                if time.perf_counter() > end:
                    raise LoadError(f"{key} did not complete before the deadline")
                await asyncio.sleep(poll_interval)
            t2 = time.perf_counter()
            if body["output"] != {"outcome": "stopped", "event": payload}:
                raise LoadError(f"{key}: wrong output {body['output']}")
            run.start.append(t1 - t0)
            run.stop_to_completed.append(t2 - t1)
            run.done += 1

        async def worker() -> None:
            while (i := next(counter)) < count:
                await one(i)

        end = time.perf_counter() + deadline
        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        run.wall = time.perf_counter() - t0
    return run


async def checks(base: str, keys: list[str], repeat: int) -> Run:
    """Sequential check requests (one at a time): the point-read latency."""
    run = Run()
    async with _session(1) as http:
        for i in range(repeat):
            key = keys[i % len(keys)]
            t0 = time.perf_counter()
            async with http.get(f"{base}/api/check/{key}") as r:
                await r.read()
                if r.status != 200:
                    raise LoadError(f"check {key}: {r.status}")
            run.check.append(time.perf_counter() - t0)
            run.done += 1
    return run


async def scan_checks(base: str, keys: list[str], orchestrator: str,
                      window_minutes: float = 20.0) -> Run:
    """The original demo's lookup, one key at a time: list every instance created within
    ±``window_minutes``, page through all of them (host page size 100, continuation token)
    and match orchestrator name and input."""
    run = Run()
    async with _session(1) as http:
        for key in keys:
            t0 = time.perf_counter()
            now = time.time()
            fmt = "%Y-%m-%dT%H:%M:%S.000000Z"
            query = {"createdTimeFrom": time.strftime(fmt, time.gmtime(now - window_minutes * 60)),
                     "createdTimeTo": time.strftime(fmt, time.gmtime(now + window_minutes * 60)),
                     "top": "100"}
            token, found = None, None
            while True:
                headers: dict[str, str] = {"x-ms-continuation-token": token} if token else {}
                async with http.get(f"{base}/runtime/webhooks/durabletask/instances",
                                    params=query, headers=headers) as r:
                    page = await r.json()
                    token = r.headers.get("x-ms-continuation-token")
                for status in page:
                    if status["name"] == orchestrator and f'"key": "{key}"' in (status["input"] or ""):
                        found = status
                if not token:
                    break
            if found is None:
                raise LoadError(f"scan did not find {key}")
            run.check.append(time.perf_counter() - t0)
            run.done += 1
    return run
