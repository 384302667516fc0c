"""Status-read latency while long histories replay: does replay keep off the HTTP path?

:func:`measure` starts a devhost on ``bench/replay_app``, grows ``orchestrations`` histories of
about ``2 * fan_out`` events each, then keeps all of them replaying (a ``Tick`` event to each
every ``tick_interval`` seconds, so the engine always has a long replay to do) while it reads the
status of an idle instance over HTTP, one read at a time, for ``seconds``. It returns the read
latencies' percentiles (ms) and how many episodes ran meanwhile; nothing here asserts a speed.

``python -m bench.replay_load [--size tiny|full]`` prints the figures as JSON.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from bench.load import percentile
from devhost.process import DevhostProcess

APP = Path(__file__).resolve().parent / "replay_app"
API = "/runtime/webhooks/durabletask"
#: The issue's scenario (4 orchestrations, 4-6k-event histories) and a quick one for tests.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(orchestrations=2, fan_out=150, seconds=1.0),
    "medium": dict(orchestrations=4, fan_out=1000, seconds=4.0),
    "full": dict(orchestrations=4, fan_out=2200, seconds=10.0),
}


async def _status(session: aiohttp.ClientSession, base: str, instance_id: str) -> dict[str, Any]:
    async with session.get(f"{base}{API}/instances/{instance_id}?showInput=false") as resp:
        return await resp.json()


async def _wait_custom(session: aiohttp.ClientSession, base: str, instance_id: str,
                       wanted: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (await _status(session, base, instance_id)).get("customStatus") == wanted:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{instance_id} did not reach custom status {wanted!r} in {timeout}s: "
                       f"{await _status(session, base, instance_id)}")


async def status_reads_during_replay(base: str, orchestrations: int, fan_out: int,
                                     seconds: float, tick_interval: float = 0.02,
                                     prepare_timeout: float = 300.0) -> dict[str, Any]:
    """Run the scenario against the devhost at ``base`` (see module docstring)."""
    async with aiohttp.ClientSession() as session:
        async def start(name: str, instance_id: str, value: Any) -> None:
            # The body is the JSON of the client's df_dumps text, as the Python client sends.
            async with session.post(f"{base}{API}/orchestrators/{name}/{instance_id}",
                                    json=None if value is None else json.dumps(value)) as resp:
                assert resp.status == 202, await resp.text()

        ids = [f"replay-{i}" for i in range(orchestrations)]
        await start("idle", "idle", None)
        for iid in ids:
            await start("long_history", iid, fan_out)
        for iid in ids:
            await _wait_custom(session, base, iid, "ready", prepare_timeout)
        unloaded = []
        for _ in range(50):
            began = time.perf_counter()
            await _status(session, base, "idle")
            unloaded.append(time.perf_counter() - began)

        stop = asyncio.Event()
        raised = 0

        async def ticker(iid: str) -> None:
            nonlocal raised
            while not stop.is_set():
                async with session.post(f"{base}{API}/instances/{iid}/raiseEvent/Tick",
                                        json=1) as resp:
                    assert resp.status == 202, await resp.text()
                raised += 1
                await asyncio.sleep(tick_interval)

        tickers = [asyncio.create_task(ticker(iid)) for iid in ids]
        loaded: list[float] = []
        await asyncio.sleep(0.5)  # let the replays get going
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            began = time.perf_counter()
            await _status(session, base, "idle")
            loaded.append(time.perf_counter() - began)
            await asyncio.sleep(0.005)
        stop.set()
        await asyncio.gather(*tickers)
        lengths = []
        for iid in ids:
            async with session.get(f"{base}{API}/instances/{iid}?showHistory=true") as resp:
                lengths.append(len((await resp.json())["historyEvents"]))
        return {
            "orchestrations": orchestrations,
            "history_events": [min(lengths), max(lengths)],
            "ticks_raised": raised,
            "status_reads": len(loaded),
            "unloaded_p50_ms": round(percentile(unloaded, 0.5), 2),
            "p50_ms": round(percentile(loaded, 0.5), 2),
            "p99_ms": round(percentile(loaded, 0.99), 2),
            "max_ms": round(max(loaded) * 1000, 2),
        }


def measure(size: str = "full", workers: int = 1) -> dict[str, Any]:
    """Start a devhost on a fresh database, run the scenario of ``size``, stop it."""
    with tempfile.TemporaryDirectory() as tmp:
        host = DevhostProcess(APP, Path(tmp) / "replay.sqlite3", workers=workers).start()
        try:
            return asyncio.run(status_reads_during_replay(host.url, **SIZES[size]))
        finally:
            host.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(measure(args.size, args.workers)))


if __name__ == "__main__":
    main()
