"""The product's promises, each proven over real HTTP against the real app on devhost.

- No lost stop: an acknowledged stop always completes the run (before the orchestrator waits,
  and across a kill -9 of the host).
- No double completion: of many concurrent stops exactly one is acknowledged, and a run ends
  with exactly one outcome even when its timer and a stop race.
- Idempotent start: any number of concurrent starts of one input make exactly one run.

Each race is forced, not hoped for: devhost's test-only episode hold (``devhost/core/hold.py``) keeps
every episode back while the proof lines up the messages, and each proof asserts from the
recorded inbox and history that the race it is named after happened.
"""
from __future__ import annotations

import asyncio
import collections
import sqlite3
import time
import uuid
from typing import Any, Callable

import aiohttp
import pytest

from devhost.core.history import EventType
from devhost.host.process import DevhostProcess
from tests.devhost.support import Api, stored_history
from tests.proofs.races import Hold, episodes, inbox, instance_id, kinds, raised_payloads, until

pytestmark = pytest.mark.e2e

STARTED, COMPLETED = EventType.EXECUTION_STARTED, EventType.EXECUTION_COMPLETED
RAISED, FIRED = EventType.EVENT_RAISED, EventType.TIMER_FIRED
WEBHOOK = "/runtime/webhooks/durabletask/instances"


def key(prefix: str = "g") -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def session(limit: int = 0) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit),
                                 timeout=aiohttp.ClientTimeout(total=90))


async def check(api: Api, k: str) -> dict[str, Any]:
    code, _, body = await api.request("GET", f"/api/check/{k}")
    assert code == 200, body
    return body


async def completed(api: Api, k: str) -> dict[str, Any]:
    """The run's status once Completed (polled against a deadline)."""
    deadline = time.monotonic() + 30
    while (body := await check(api, k))["runtimeStatus"] != "Completed":
        assert time.monotonic() < deadline, body
        await asyncio.sleep(0.01)
    return body


async def waiting(api: Api, k: str) -> None:
    """Until the run's first episode has run: it is waiting for the event."""
    deadline = time.monotonic() + 30
    while (await check(api, k))["customStatus"] is None:
        assert time.monotonic() < deadline, k
        await asyncio.sleep(0.01)


def completions(host: DevhostProcess, k: str) -> int:
    """How many times the run recorded an ExecutionCompleted (exactly once when it ended)."""
    return sum(1 for ev in stored_history(host.db, instance_id(k))
               if ev["EventType"] == COMPLETED)


async def test_stop_before_orchestrator_waits_is_not_lost(
        app_devhost: Callable[..., DevhostProcess], hold: Hold) -> None:
    host = app_devhost()
    keys = [key("early") for _ in range(5)]
    async with session() as http:
        api = Api(http, host.url)
        with hold:
            for k in keys:
                assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
            stops = [asyncio.create_task(api.request("POST", f"/api/stop/{k}", body={"k": k}))
                     for k in keys]
            await until(lambda: all(kinds(host.db, k) == ["start", "event"] for k in keys),
                        "every stop's event queued behind its run's start")
            # The race: no episode has run, so the orchestrator has not waited yet.
            assert all(stored_history(host.db, instance_id(k)) == [] for k in keys)
        answers = await asyncio.gather(*stops)
        assert [code for code, _, _ in answers] == [202] * len(keys)
        for k, (_, _, body) in zip(keys, answers, strict=True):
            assert body["confirmed"] is True and body["customStatus"]["outcome"] == "stopped"
            assert (await completed(api, k))["output"] == {"outcome": "stopped", "event": {"k": k}}
            first = episodes(host.db, k)[0]  # the stop was delivered with the start, in one episode
            assert STARTED in first and RAISED in first, first
            assert completions(host, k) == 1


async def test_acknowledged_stop_survives_kill_9_right_after_the_202(
        app_devhost: Callable[..., DevhostProcess]) -> None:
    """The app answers a stop 202 only once the run has taken the event and recorded which stop
    won (the episode is committed), so a kill right after it must find that durable and the run
    completes with that stop's payload (the unprocessed-event half is the next proof)."""
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
            assert (await check(api, k))["customStatus"]["outcome"] == "stopped"
            body = await completed(api, k)
            assert body["output"] == {"outcome": "stopped", "event": k}


async def test_event_acknowledged_by_the_host_survives_kill_9_before_it_is_processed(
        app_devhost: Callable[..., DevhostProcess], hold: Hold) -> None:
    """The host-level half of 'no lost stop': a raiseEvent answered 202 and killed before any
    episode delivered it still completes the run, with that payload, after a restart."""
    host = app_devhost()
    keys = [key("raw") for _ in range(5)]
    async with session() as http:
        api = Api(http, host.url)
        for k in keys:
            assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
        for k in keys:
            await waiting(api, k)
        hold.engage()
        raised = await asyncio.gather(*(api.request(
            "POST", f"{WEBHOOK}/{instance_id(k)}/raiseEvent/Workflow", body={"raw": k})
            for k in keys))
        assert [r[0] for r in raised] == [202] * len(keys)
        # The race: acknowledged and queued, not delivered by any episode.
        for k in keys:
            assert kinds(host.db, k) == ["event"]
            assert raised_payloads(host.db, k) == []
        host.kill()
        hold.release()
        host.start()
        api = Api(http, host.url)
        for k in keys:
            body = await completed(api, k)
            assert body["output"] == {"outcome": "stopped", "event": {"raw": k}}
            assert completions(host, k) == 1


async def test_fifty_concurrent_stops_give_exactly_one_202_and_one_outcome(
        app_devhost: Callable[..., DevhostProcess], hold: Hold) -> None:
    host = app_devhost()
    stops = 50
    async with session() as http:
        api = Api(http, host.url)
        k = key("stops")
        assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
        await waiting(api, k)
        with hold:
            answers_pending = [asyncio.create_task(
                api.request("POST", f"/api/stop/{k}", body={"stop": i})) for i in range(stops)]
            await until(lambda: kinds(host.db, k) == ["event"] * stops,
                        f"all {stops} stop events queued")
            # The race: every stop is raised before any of them is processed.
            assert all(RAISED not in episode for episode in episodes(host.db, k))
        answers = await asyncio.gather(*answers_pending)
        codes = collections.Counter(code for code, _, _ in answers)
        assert codes == {202: 1, 409: stops - 1}, codes
        [(_, _, winner)] = [a for a in answers if a[0] == 202]
        body = await completed(api, k)
        # The winner is the first event the episode delivered; the losers' bodies name it.
        assert body["output"]["event"] == raised_payloads(host.db, k)[0]["payload"]
        assert body["customStatus"]["stoppedBy"] == winner["customStatus"]["stoppedBy"]
        assert raised_payloads(host.db, k)[0]["stopId"] == winner["customStatus"]["stoppedBy"]
        assert all(b["customStatus"]["stoppedBy"] == winner["customStatus"]["stoppedBy"]
                   for c, _, b in answers if c == 409)
        [taken] = [e for e in episodes(host.db, k) if RAISED in e]
        assert taken.count(RAISED) == stops
        assert completions(host, k) == 1


@pytest.mark.parametrize("first", ["event", "timer"])
async def test_timer_and_stop_racing_give_exactly_one_outcome(
        app_devhost: Callable[..., DevhostProcess], hold: Hold, first: str) -> None:
    """The event and the due timer land in one episode, in the given order; the one that
    arrived first wins and the stop's answer agrees: 202 stopped, or 410 timed out."""
    timeout = 3  # seconds: room for the stop to be queued well before the deadline on a busy box
    host = app_devhost(timeout_seconds=timeout)
    k = key("race")
    async with session() as http:
        api = Api(http, host.url)
        assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
        await waiting(api, k)
        with hold:
            [(_, due, _)] = [m for m in inbox(host.db, k) if m[0] == "timer"]

            def timer_is_due() -> bool:
                return time.time() > due  # devhost stamps messages with the wall clock

            if first == "timer":
                await until(timer_is_due, "the timer is due", timeout=timeout + 30)
            stop = asyncio.create_task(api.request("POST", f"/api/stop/{k}", body="late"))
            await until(lambda: "event" in kinds(host.db, k), "the stop's event queued")
            await until(timer_is_due, "the timer is due", timeout=timeout + 30)
            [(_, raised_at, _)] = [m for m in inbox(host.db, k) if m[0] == "event"]
            # The race: both are queued and due, the event before or after the timer's time.
            assert (raised_at < due) == (first == "event"), (raised_at, due)
        code, _, answer = await stop
        body = await completed(api, k)
        [last] = [e for e in episodes(host.db, k) if FIRED in e]
        assert RAISED in last, last  # one episode delivered both
        if first == "event":
            assert last.index(RAISED) < last.index(FIRED)
            assert code == 202, answer
            assert answer["customStatus"]["outcome"] == "stopped"
            assert body["output"] == {"outcome": "stopped", "event": "late"}
        else:
            assert last.index(FIRED) < last.index(RAISED)
            assert code == 410, answer
            assert answer["customStatus"]["outcome"] == "timed_out"
            assert body["output"] == {"outcome": "timed_out"}
        assert completions(host, k) == 1


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
        listing = (await api.request("GET", f"{WEBHOOK}?instanceIdPrefix=workflow-{k}"))[2]
        assert [i["instanceId"] for i in listing] == [f"workflow-{k}"]
        assert len([e for e in stored_history(host.db, instance_id(k))
                    if e["EventType"] == STARTED]) == 1  # one ExecutionStarted: one run


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


async def test_check_is_a_point_read_never_a_listing(
        app_devhost: Callable[..., DevhostProcess]) -> None:
    """Every lookup reads the one instance id derived from the key. Proven by a store holding,
    next to the key's run, a run no listing can render (its stored output is not JSON, so any
    listing that includes it fails): check, start and stop still answer from their point reads.
    A listing lookup, by prefix, by time window or of everything, would answer 502."""
    host = app_devhost()
    k = key("point")
    async with session() as http:
        api = Api(http, host.url)
        assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
        await waiting(api, k)
        with sqlite3.connect(host.db, timeout=30) as db:
            db.execute(
                "INSERT INTO instances (instance_id, execution_id, name, status, input, output, "
                "custom_status, created_at, updated_at) SELECT ?, 'poison', name, 'Completed', "
                "input, '{not json', NULL, created_at, updated_at FROM instances "
                "WHERE instance_id=?", (instance_id(k) + "x", instance_id(k)))
        listed = await api.request("GET", f"{WEBHOOK}?instanceIdPrefix={instance_id(k)}")
        assert listed[0] >= 400, listed  # the poison works: a listing cannot be answered
        body = await check(api, k)
        assert (body["instanceId"], body["runtimeStatus"]) == (instance_id(k), "Running")
        assert (await api.request("POST", f"/api/start/{k}"))[0] == 409
        code, _, stopped = await api.request("POST", f"/api/stop/{k}", body="point")
        assert (code, stopped["confirmed"]) == (202, True)
        assert (await completed(api, k))["output"] == {"outcome": "stopped", "event": "point"}
