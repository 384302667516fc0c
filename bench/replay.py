"""Status reads of an idle instance while other orchestrations replay long histories.

Replay cost grows with history (the SDK replays every event on every episode), so an engine that
replays on the event loop serving HTTP makes every request wait behind it (issue 8: a status
read went from p50 1.3 ms to p50 156 ms / p99 288 ms while 4 orchestrations replayed 4-6k-event
histories). This measures exactly that through devhost's public surface only, so it runs
unchanged on any devhost engine, against the small app in ``bench/replay_app``:

1. start ``busy`` ``long_history`` orchestrations, each of which creates ``timers`` timers due
   at once (2 history events each, delivered together) and then waits; plus one idle instance;
2. read the idle instance's status through an HTTP function that calls the Durable client's
   ``get_status`` (as the product's ``/api/check`` does), one request at a time, up to
   ``reads`` times or ``deadline`` seconds, with nothing else running (the baseline);
3. the same reads while each busy orchestration gets an event named ``noise`` every
   ``raise_every`` seconds through the management webhook: the orchestrator never waits for
   it, so each one costs an episode that replays the whole history and lengthens it.

Guarantees: every read must answer 200 Running, and before and after the reads every busy
orchestration's history must hold every timer and every raised event (read back with
``showHistory``); anything else raises :class:`bench.load.LoadError`, so no figure comes from a
broken run.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import LoadError, percentile

#: The app this measurement runs on.
APP = Path(__file__).resolve().parent / "replay_app"
WEBHOOK = "/runtime/webhooks/durabletask"
NOISE = "noise"


@dataclass
class ReplayRun:
    """Latencies (seconds) of the idle reads, and what the busy orchestrations went through."""

    idle_reads: list[float] = field(default_factory=list)
    replay_reads: list[float] = field(default_factory=list)
    raised: dict[str, int] = field(default_factory=dict)
    history: dict[str, int] = field(default_factory=dict)

    def figures(self) -> dict[str, float]:
        """The benchmark's figures (ms, counts)."""
        return {
            "status_read_p50_ms_idle": percentile(self.idle_reads, 0.5),
            "status_read_p99_ms_idle": percentile(self.idle_reads, 0.99),
            "status_read_p50_ms_during_replay": percentile(self.replay_reads, 0.5),
            "status_read_p99_ms_during_replay": percentile(self.replay_reads, 0.99),
            "status_reads_during_replay": float(len(self.replay_reads)),
            "replay_history_events_min": float(min(self.history.values())),
            "replay_history_events_max": float(max(self.history.values())),
            "replay_events_raised": float(sum(self.raised.values())),
        }


async def _raise(http: aiohttp.ClientSession, base: str, iid: str, n: int) -> None:
    async with http.post(f"{base}{WEBHOOK}/instances/{iid}/raiseEvent/{NOISE}",
                         json={"n": n}) as r:
        await r.read()
        if r.status != 202:
            raise LoadError(f"raise to {iid}: {r.status}")


async def _history(http: aiohttp.ClientSession, base: str, iid: str) -> list[dict[str, Any]]:
    async with http.get(f"{base}{WEBHOOK}/instances/{iid}?showHistory=true") as r:
        body = await r.json()
        if r.status not in (200, 202):
            raise LoadError(f"history of {iid}: {r.status}")
    return body["historyEvents"]


async def _read(http: aiohttp.ClientSession, base: str, iid: str) -> float:
    t0 = time.perf_counter()
    async with http.get(f"{base}/api/status/{iid}") as r:
        body = await r.json()
    elapsed = time.perf_counter() - t0
    if r.status != 200 or body.get("runtimeStatus") != "Running":
        raise LoadError(f"status of idle {iid}: {r.status} {body}")
    return elapsed


async def _reads(http: aiohttp.ClientSession, base: str, iid: str, count: int,
                 deadline: float) -> list[float]:
    out: list[float] = []
    end = time.perf_counter() + deadline
    while len(out) < count and time.perf_counter() < end:
        out.append(await _read(http, base, iid))
    return out


async def _settle(http: aiohttp.ClientSession, base: str, result: ReplayRun, timers: int,
                  timeout: float = 300.0) -> None:
    """Wait until every timer has fired and every raised event is in its orchestration's
    history; record the history lengths."""
    end = time.perf_counter() + timeout
    for iid, raised in result.raised.items():
        while True:
            events = await _history(http, base, iid)
            kinds = [e.get("EventType") for e in events]
            fired = kinds.count("TimerFired")
            delivered = sum(1 for e in events
                            if e.get("EventType") == "EventRaised" and e.get("Name") == NOISE)
            if delivered > raised or fired > timers:
                raise LoadError(f"{iid}: {delivered} events of {raised} raised, "
                                f"{fired} timers of {timers}")
            if delivered == raised and fired == timers:
                result.history[iid] = len(events)
                break
            if time.perf_counter() > end:
                raise LoadError(f"{iid}: {delivered} of {raised} raised events and {fired} of "
                                f"{timers} timers delivered after {timeout}s")
            await asyncio.sleep(0.1)


async def run(base: str, *, busy: int = 4, timers: int = 2250, reads: int = 1000,
              raise_every: float = 0.05, deadline: float = 30.0,
              prefix: str = "replay") -> ReplayRun:
    """Run the three steps above against a devhost serving :data:`APP` at ``base``.

    Raises: LoadError when any answer is wrong or the histories do not settle.
    """
    result = ReplayRun()
    busy_ids = [f"{prefix}-busy-{i}" for i in range(busy)]
    idle_id = f"{prefix}-idle"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=16),
                                     timeout=aiohttp.ClientTimeout(total=300)) as http:
        for iid, n in [(i, timers) for i in busy_ids] + [(idle_id, 0)]:
            # The input as the Python client sends it: the JSON text of the df_dumps string.
            async with http.post(f"{base}{WEBHOOK}/orchestrators/long_history/{iid}",
                                 json=json.dumps(n)) as r:
                await r.read()
                if r.status != 202:
                    raise LoadError(f"start {iid}: {r.status}")
        result.raised = {iid: 0 for iid in busy_ids}
        await _settle(http, base, result, timers)
        # The idle one has no timers: its first episode goes straight to the wait.
        await _settle(http, base, ReplayRun(raised={idle_id: 0}), 0)
        result.idle_reads = await _reads(http, base, idle_id, reads, deadline)

        stop = asyncio.Event()

        async def drive(iid: str) -> None:
            while not stop.is_set():
                await _raise(http, base, iid, result.raised[iid])
                result.raised[iid] += 1
                try:
                    await asyncio.wait_for(stop.wait(), raise_every)
                except TimeoutError:
                    pass

        drivers = [asyncio.create_task(drive(iid)) for iid in busy_ids]
        try:
            result.replay_reads = await _reads(http, base, idle_id, reads, deadline)
        finally:
            stop.set()
            await asyncio.gather(*drivers)
        await _settle(http, base, result, timers)
    return result
