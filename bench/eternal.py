"""Status reads and a terminate while an orchestration continues as new forever, no await in a
generation (issue 15 item 8: on 0b5d982 such a loop kept devhost's event loop to itself, status
reads of other instances took 4 to 20 s and its terminate 28 s).

Against ``bench/replay_app``: start ``eternal`` and an idle ``long_history`` instance (no
timers), wait until the loop has run ``warmup`` generations, read the idle instance's status
through the management webhook one request at a time (``reads`` times or ``deadline``
seconds), then terminate the loop and time until its status reads Terminated.

Guarantees: every read answers Running (200 or 202) and the loop ends Terminated; anything else raises
:class:`bench.load.LoadError`.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

import aiohttp

from bench.load import LoadError, percentile

WEBHOOK = "/runtime/webhooks/durabletask"


async def _json(session: aiohttp.ClientSession, method: str, url: str,
                body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    async with session.request(method, url, data=data, headers=headers) as resp:
        text = await resp.text()
        return resp.status, json.loads(text) if text else None


async def run(url: str, reads: int, deadline: float, warmup: int = 50) -> dict[str, float]:
    """The figures (ms): status read p50/p99 during the loop, terminate -> Terminated, and the
    generations the loop ran meanwhile."""
    tag = uuid.uuid4().hex[:8]
    loop_id, idle_id = f"eternal-{tag}", f"idle-{tag}"
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for name, value, iid in (("long_history", 0, idle_id), ("eternal", 0, loop_id)):
            code, body = await _json(session, "POST",
                                     f"{url}/durabletask/orchestrators/{name}/{iid}",
                                     json.dumps(value))
            if code != 202:
                raise LoadError(f"start {name}: {code} {body}")
        generations = 0
        give_up = time.monotonic() + deadline
        while generations < warmup:
            _, body = await _json(session, "GET", f"{url}{WEBHOOK}/instances/{loop_id}")
            generations = int(json.loads((body or {}).get("input") or "0"))
            if time.monotonic() > give_up:
                raise LoadError(f"the loop ran {generations} generations in {deadline} s")
            await asyncio.sleep(0.01)
        first = generations
        took: list[float] = []
        stop_at = time.monotonic() + deadline
        while len(took) < reads and time.monotonic() < stop_at:
            began = time.perf_counter()
            code, body = await _json(session, "GET", f"{url}{WEBHOOK}/instances/{idle_id}")
            took.append(time.perf_counter() - began)
            if code not in (200, 202) or body["runtimeStatus"] != "Running":
                raise LoadError(f"status read answered {code} {body}")
        began = time.perf_counter()
        code, body = await _json(session, "POST",
                                 f"{url}{WEBHOOK}/instances/{loop_id}/terminate?reason=bench")
        if code != 202:
            raise LoadError(f"terminate answered {code} {body}")
        while True:
            _, body = await _json(session, "GET", f"{url}{WEBHOOK}/instances/{loop_id}")
            if body["runtimeStatus"] == "Terminated":
                break
            if time.perf_counter() - began > deadline:
                raise LoadError(f"the loop was not Terminated {deadline} s after terminate")
            await asyncio.sleep(0.001)
        terminated = time.perf_counter() - began
        last = int(json.loads(body.get("input") or "0"))
    return {"eternal_status_read_p50_ms": percentile(took, 0.5),
            "eternal_status_read_p99_ms": percentile(took, 0.99),
            "eternal_status_reads": float(len(took)),
            "eternal_terminate_ms": terminated * 1000,
            "eternal_generations": float(last - first)}
