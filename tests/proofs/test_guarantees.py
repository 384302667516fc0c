"""The product's promises, each proven over real HTTP against the real app on devhost.

- No lost stop: an acknowledged stop always completes the run (before the orchestrator waits,
  and across a kill -9 of the host).
- No double completion: of many concurrent stops exactly one is acknowledged, and a run ends
  with exactly one outcome even when its timer and a stop race.
- Idempotent start: any number of concurrent starts of one input make exactly one run.
"""
from __future__ import annotations

import asyncio
import collections
import uuid
from pathlib import Path
from typing import Any, Callable

import aiohttp
import pytest

from tests.devhost.support import Api, stored_history
from devhost.process import DevhostProcess

pytestmark = pytest.mark.e2e

COMPLETED_EVENT = 1  # EventType.ExecutionCompleted


def key(prefix: str = "g") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def session(limit: int = 0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit),
                                 timeout=aiohttp.ClientTimeout(total=60))


async def check(api: Api, k: str) -> dict[str, Any]:
    code, _, body = await api.request("GET", f"/api/check/{k}")
    assert code == 200, body
    return body


def completions(db: Path, k: str) -> int:
    """How many times the run recorded an ExecutionCompleted (exactly once when it ended)."""
    return sum(1 for ev in stored_history(db, f"workflow-{k}") if ev["EventType"] == COMPLETED_EVENT)


async def test_stop_before_orchestrator_waits_is_not_lost(
        app_devhost: Callable[..., DevhostProcess]) -> None:
    host = app_devhost()
    async with session() as http:
        api = Api(http, host.url)
        keys = [key("early") for _ in range(30)]

        async def start_then_stop_at_once(k: str) -> tuple[int, int]:
            started = (await api.request("POST", f"/api/start/{k}"))[0]
            # No wait in between: the event reaches the run before its first episode.
            stopped = (await api.request("POST", f"/api/stop/{k}", body={"k": k}))[0]
            return started, stopped

        answers = await asyncio.gather(*(start_then_stop_at_once(k) for k in keys))
        assert answers == [(202, 202)] * len(keys)
        for k in keys:
            body = await check(api, k)
            assert body["runtimeStatus"] == "Completed"
            assert body["output"] == {"outcome": "stopped", "event": {"k": k}}


async def test_acknowledged_stop_survives_kill_9_right_after_the_202(
        app_devhost: Callable[..., DevhostProcess]) -> None:
    host = app_devhost()
    async with session() as http:
        keys = [key("crash") for _ in range(5)]
        api = Api(http, host.url)
        for k in keys:
            assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
            assert (await api.request("POST", f"/api/stop/{k}", body=k))[0] == 202
        host.kill()
        host.start()
        api = Api(http, host.url)
        for k in keys:
            body = await check(api, k)
            assert body["runtimeStatus"] == "Completed"
            assert body["output"] == {"outcome": "stopped", "event": k}


async def test_event_acknowledged_by_the_host_survives_kill_9_before_it_is_processed(
        app_devhost: Callable[..., DevhostProcess]) -> None:
    """The host-level half of 'no lost stop': a raiseEvent answered 202 and killed at once
    (before or during its episode) still completes the run after restart."""
    host = app_devhost()
    async with session() as http:
        api = Api(http, host.url)
        keys = [key("raw") for _ in range(10)]
        for k in keys:
            assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
        raised = await asyncio.gather(*(api.request(
            "POST", f"/runtime/webhooks/durabletask/instances/workflow-{k}/raiseEvent/Workflow",
            body={"raw": k}) for k in keys))
        assert [r[0] for r in raised] == [202] * len(keys)
        host.kill()
        host.start()
        api = Api(http, host.url)
        for k in keys:
            deadline = asyncio.get_running_loop().time() + 10
            while (body := await check(api, k))["runtimeStatus"] != "Completed":
                assert asyncio.get_running_loop().time() < deadline, body
                await asyncio.sleep(0.02)
            assert body["output"] == {"outcome": "stopped", "event": {"raw": k}}


async def test_fifty_concurrent_stops_give_exactly_one_202_and_one_outcome(
        app_devhost: Callable[..., DevhostProcess], tmp_path: Path) -> None:
    host = app_devhost()
    async with session() as http:
        api = Api(http, host.url)
        k = key("stops")
        assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
        answers = await asyncio.gather(*(
            api.request("POST", f"/api/stop/{k}", body={"stop": i}) for i in range(50)))
        codes = collections.Counter(code for code, _, _ in answers)
        assert codes[202] == 1, codes
        assert set(codes) <= {202, 409, 410}, codes
        [(_, _, winner)] = [a for a in answers if a[0] == 202]
        body = await check(api, k)
        assert body["output"] == winner["output"]
        assert body["output"]["event"] in [{"stop": i} for i in range(50)]
        assert completions(host.db, k) == 1


async def test_timer_and_stop_racing_give_exactly_one_outcome(
        app_devhost: Callable[..., DevhostProcess]) -> None:
    host = app_devhost(timeout_seconds=1)
    async with session() as http:
        api = Api(http, host.url)
        keys = [key("race") for _ in range(16)]

        async def start_then_stop_near_the_deadline(i: int, k: str) -> int:
            assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
            await asyncio.sleep(0.8 + 0.03 * i)  # 0.8 s .. 1.25 s: straddles the 1 s timer
            return (await api.request("POST", f"/api/stop/{k}", body=i))[0]

        codes = await asyncio.gather(*(start_then_stop_near_the_deadline(i, k)
                                       for i, k in enumerate(keys)))
        for i, (k, code) in enumerate(zip(keys, codes)):
            deadline = asyncio.get_running_loop().time() + 10
            while (body := await check(api, k))["runtimeStatus"] != "Completed":
                assert asyncio.get_running_loop().time() < deadline, body
                await asyncio.sleep(0.02)
            if code == 202:
                assert body["output"] == {"outcome": "stopped", "event": i}
            else:
                assert code == 410, code
                assert body["output"] == {"outcome": "timed_out"}
            assert completions(host.db, k) == 1


async def test_thousand_concurrent_starts_of_one_input_make_one_instance(
        app_devhost: Callable[..., DevhostProcess]) -> None:
    host = app_devhost()
    async with session() as http:
        api = Api(http, host.url)
        k = key("start")
        answers = await asyncio.gather(*(api.request("POST", f"/api/start/{k}")
                                         for _ in range(1000)))
        codes = collections.Counter(code for code, _, _ in answers)
        assert codes == {202: 1, 409: 999}, codes
        listing = (await api.request(
            "GET", f"/runtime/webhooks/durabletask/instances?instanceIdPrefix=workflow-{k}"))[2]
        assert [i["instanceId"] for i in listing] == [f"workflow-{k}"]
        assert len([e for e in stored_history(host.db, f"workflow-{k}")
                    if e["EventType"] == 0]) == 1  # one ExecutionStarted: one run


async def test_twenty_inputs_times_fifty_starts_make_twenty_instances(
        app_devhost: Callable[..., DevhostProcess]) -> None:
    host = app_devhost()
    async with session() as http:
        api = Api(http, host.url)
        keys = [key("many") for _ in range(20)]
        answers = await asyncio.gather(*(api.request("POST", f"/api/start/{k}")
                                         for _ in range(50) for k in keys))
        by_key: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for (code, _, body) in answers:
            by_key[body["input"]][code] += 1
        assert {k: dict(c) for k, c in by_key.items()} == {k: {202: 1, 409: 49} for k in keys}
