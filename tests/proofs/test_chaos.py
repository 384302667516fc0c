"""Chaos: devhost is killed (-9) and restarted at random moments while lifecycles run.

Size knobs (environment): ``CHAOS_LIFECYCLES`` (default 60), ``CHAOS_KILLS`` (default 4),
``CHAOS_SEED`` (default: random, printed on failure). ``make chaos`` runs a few hundred.

Clients behave as real ones must: on a connection error they retry the same request. Every run
ends with the payload its own stop sent, so whatever a retry was answered (202, or 409/410
because an earlier attempt of the same stop had already won), the run's output is checked.
"""
from __future__ import annotations

import asyncio
import collections
import os
import random
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.devhost.support import Api, stored_history
from devhost.host.process import REPO, DevhostProcess

pytestmark = pytest.mark.e2e

LIFECYCLES = int(os.environ.get("CHAOS_LIFECYCLES", "60"))
KILLS = int(os.environ.get("CHAOS_KILLS", "4"))
SEED = int(os.environ.get("CHAOS_SEED", str(random.SystemRandom().randrange(10**6))))
CONCURRENCY = 8
DEADLINE_SECONDS = 60 + LIFECYCLES * 0.5
#: Seconds one kill-and-restart cycle takes on average (random pause + ~1 s start-up): the
#: lifecycles are paced to run through all of them, so kills land mid-request.
CYCLE_SECONDS = 1.6
_RETRYABLE = (aiohttp.ClientError, ConnectionError, asyncio.TimeoutError)


async def persist(api: Api, method: str, path: str, body: Any, done: set[int],
                  deadline: float, retries: collections.Counter[str]) -> int:
    """Send until the host answers one of ``done``; connection failures are retried (and
    counted in ``retries``, one counter per test run)."""
    while True:
        assert time.monotonic() < deadline, f"{method} {path} never succeeded"
        try:
            code, _, answer = await api.request(method, path, body=body)
        except _RETRYABLE:
            retries["interrupted"] += 1
            await asyncio.sleep(0.05)
            continue
        if code in done:
            return code
        # 503/502 while the host restarts are retryable too; anything else is a bug.
        assert code in (502, 503), (method, path, code, answer)
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("workers", [1, 2], ids=["one-worker", "two-workers"])
async def test_kill_9_at_random_moments_loses_no_acknowledged_stop_and_completes_nothing_twice(
        tmp_path: Path, workers: int) -> None:
    rng = random.Random(SEED)
    host = DevhostProcess(REPO, tmp_path / "chaos.sqlite3", env={"WORKFLOW_TIMEOUT_SECONDS": "0"},
                          workers=workers)
    host.start()
    keys = [f"chaos{i}-{uuid.uuid4().hex[:6]}" for i in range(LIFECYCLES)]
    acknowledged: dict[str, int] = {}
    retries: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + DEADLINE_SECONDS
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            api = Api(http, host.url)  # restarts keep the port, so the URL stays valid
            queue: asyncio.Queue[str] = asyncio.Queue()
            for k in keys:
                queue.put_nowait(k)

            pause = KILLS * CYCLE_SECONDS / max(1, LIFECYCLES // CONCURRENCY) / 2

            async def lifecycles() -> None:
                while not queue.empty():
                    k = queue.get_nowait()
                    await persist(api, "POST", f"/api/start/{k}", None, {202, 409}, deadline, retries)
                    await asyncio.sleep(rng.uniform(0, 2 * pause))
                    code = await persist(api, "POST", f"/api/stop/{k}", {"key": k},
                                         {202, 409, 410}, deadline, retries)
                    if code == 202:
                        acknowledged[k] = code
                    await asyncio.sleep(rng.uniform(0, 2 * pause))

            async def killer() -> None:
                for _ in range(KILLS):
                    await asyncio.sleep(rng.uniform(0.2, 1.0))
                    await asyncio.to_thread(host.kill)
                    await asyncio.to_thread(host.start, 30.0, True)

            await asyncio.gather(killer(), *(lifecycles() for _ in range(CONCURRENCY)))

            outputs: dict[str, Any] = {}
            for k in keys:
                while True:
                    assert time.monotonic() < deadline, f"{k} did not complete (seed {SEED})"
                    try:
                        code, _, body = await api.request("GET", f"/api/check/{k}")
                    except _RETRYABLE:
                        await asyncio.sleep(0.05)
                        continue
                    assert code == 200, (k, body)
                    if body["runtimeStatus"] == "Completed":
                        outputs[k] = body["output"]
                        break
                    await asyncio.sleep(0.02)
    finally:
        host.stop()

    assert acknowledged, f"no stop was acknowledged at all (seed {SEED})"
    assert retries, f"no request was interrupted: the kills missed the traffic (seed {SEED})"
    wrong = {k: o for k, o in outputs.items() if o != {"outcome": "stopped", "event": {"key": k}}}
    assert not wrong, f"runs ended with the wrong outcome (seed {SEED}): {wrong}"
    twice = {k: n for k in keys
             if (n := sum(ev["EventType"] == 1 for ev in stored_history(host.db, f"workflow-{k}")))
             != 1}
    assert not twice, f"runs completed other than once (seed {SEED}): {twice}"
