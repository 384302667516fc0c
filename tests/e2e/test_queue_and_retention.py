"""The queue-triggered stop and scheduled retention, end to end: a real devhost serving the
product app's functions, against a real Azurite started per test on a free port.

Without npm (so no Azurite) these tests are skipped with the reason; ``.ci/run`` sets
``DEVHOST_REQUIRE_AZURITE=1``, which turns that skip into a failure.
"""
from __future__ import annotations

import asyncio
import base64
import json
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devhost.core.history import EventType
from devhost.host.process import DevhostProcess
from tests.azurite_support import Queues, azurite_binary, storage  # noqa: F401 (fixtures)
from tests.devhost.support import Api, stored_history

pytestmark = pytest.mark.e2e

APP = Path(__file__).resolve().parent / "apps" / "queued"
STOP_QUEUE = "workflow-stop"
POISON_QUEUE = "workflow-stop-poison"
HANG_QUEUE = "workflow-stop-hang"
LEASE_SECONDS = "2"


async def eventually(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """Poll ``check`` until it returns something truthy, failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}; last value {last!r}")


@pytest.fixture
def start_host(storage: str, tmp_path: Path) -> Iterator[Callable[..., DevhostProcess]]:
    hosts: list[DevhostProcess] = []

    def start(env: dict[str, str] | None = None, db: Path | None = None) -> DevhostProcess:
        host = DevhostProcess(APP, db or tmp_path / "devhost.sqlite3", env={
            "AzureWebJobsStorage": storage, "DEVHOST_QUEUE_LEASE_SECONDS": LEASE_SECONDS,
            "WORKFLOW_TIMEOUT_SECONDS": "0", "HANG_MARKER": str(tmp_path / "hang.txt"),
            **(env or {})})
        hosts.append(host)
        return host.start()

    yield start
    for host in hosts:
        host.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def key() -> str:
    return f"q-{uuid.uuid4().hex[:10]}"


async def run_of(api: Api, k: str) -> tuple[int, Any]:
    status, _, body = await api.request("GET", f"/api/check/{k}")
    return status, body


async def finished_run(api: Api, k: str) -> dict[str, Any]:
    async def done() -> Any:
        status, body = await run_of(api, k)
        return body if status == 200 and body["runtimeStatus"] == "Completed" else None
    return await eventually(done, f"run {k} to complete")


async def test_a_queued_stop_ends_the_run_with_its_payload(
        start_host: Callable[..., DevhostProcess], storage: str,
        session: aiohttp.ClientSession) -> None:
    host = start_host()
    api, queues, k = Api(session, host.url), Queues(storage), key()
    assert (await api.request("POST", f"/api/start/{k}"))[0] == 202

    queues.send(STOP_QUEUE, json.dumps({"input": k, "event": {"approved": True, "by": "queue"}}))

    run = await finished_run(api, k)
    assert run["output"] == {"outcome": "stopped", "event": {"approved": True, "by": "queue"}}
    await eventually(lambda: queues.count(STOP_QUEUE) == 0, "the message to be deleted")
    assert queues.texts(POISON_QUEUE) == []


async def test_two_queued_stops_and_one_http_stop_race_and_exactly_one_wins(
        start_host: Callable[..., DevhostProcess], storage: str,
        session: aiohttp.ClientSession) -> None:
    host = start_host()
    api, queues, k = Api(session, host.url), Queues(storage), key()
    assert (await api.request("POST", f"/api/start/{k}"))[0] == 202

    queues.send(STOP_QUEUE, json.dumps({"input": k, "event": {"by": "queue-1"}}))
    queues.send(STOP_QUEUE, json.dumps({"input": k, "event": {"by": "queue-2"}}))
    http_status, _, http_body = await api.request("POST", f"/api/stop/{k}", body={"by": "http"})

    run = await finished_run(api, k)
    winner = run["output"]["event"]["by"]
    assert winner in {"queue-1", "queue-2", "http"}
    # The HTTP stop's answer agrees with the run's one outcome.
    assert (http_status, winner == "http") in {(202, True), (409, False)}, http_body
    completions = [e for e in stored_history(host.db, f"workflow-{k}")
                   if e.get("EventType") == EventType.EXECUTION_COMPLETED]
    assert len(completions) == 1
    # The losing queued stops completed their messages (logged as lost), none was poisoned.
    await eventually(lambda: queues.count(STOP_QUEUE) == 0, "both messages to be deleted")
    assert queues.texts(POISON_QUEUE) == []


async def test_a_bad_message_ends_in_the_poison_queue_unchanged_after_max_dequeue_count(
        start_host: Callable[..., DevhostProcess], storage: str,
        session: aiohttp.ClientSession) -> None:
    start_host()
    queues = Queues(storage)
    bad_json = base64.b64encode(b'{"input": "aaron", "event": NaN}').decode()
    not_base64 = "this is not base64!"
    queues.send(STOP_QUEUE, bad_json, base64_encode=False)
    queues.send(STOP_QUEUE, not_base64, base64_encode=False)

    poisoned = await eventually(lambda: sorted(queues.texts(POISON_QUEUE))
                                if len(queues.texts(POISON_QUEUE)) == 2 else None,
                                "both messages in the poison queue")
    assert poisoned == sorted([bad_json, not_base64])
    assert queues.count(STOP_QUEUE) == 0


async def test_kill_9_mid_message_redelivers_it_and_the_run_completes_once(
        start_host: Callable[..., DevhostProcess], storage: str,
        session: aiohttp.ClientSession, tmp_path: Path) -> None:
    host = start_host()
    api, queues, k = Api(session, host.url), Queues(storage), key()
    assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
    marker = tmp_path / "hang.txt"

    queues.send(HANG_QUEUE, json.dumps({"input": k, "event": {"n": 1}}))
    await eventually(lambda: marker.exists() and marker.read_text(), "the first delivery")
    host.kill()  # the function has stopped the run but the message was never deleted
    host.start(same_port=True)

    await eventually(lambda: len(marker.read_text().splitlines()) == 2, "the redelivery")
    first, second = marker.read_text().splitlines()
    # The redelivery finds the wait over: the run finished ("already finished"), or, while steps
    # after the event still run, the first delivery's event named as the winner ("lost").
    assert first == "1 stopped"
    assert second in ("2 already finished", "2 lost to another stop"), second
    run = await finished_run(api, k)
    assert run["output"] == {"outcome": "stopped", "event": {"n": 1}}
    completions = [e for e in stored_history(host.db, f"workflow-{k}")
                   if e.get("EventType") == EventType.EXECUTION_COMPLETED]
    assert len(completions) == 1
    await eventually(lambda: queues.count(HANG_QUEUE) == 0, "the message to be deleted")
    assert queues.texts(f"{HANG_QUEUE}-poison") == []


def backdate(db: Path, instance_ids: list[str], days: float) -> None:
    """Make runs look ``days`` older (devhost's store keeps creation times as epoch seconds):
    the settable clock of this test, instead of waiting for real days."""
    with sqlite3.connect(db) as conn:
        conn.executemany("UPDATE instances SET created_at = created_at - ?, "
                         "updated_at = updated_at - ? WHERE instance_id = ?",
                         [(days * 86400, days * 86400, i) for i in instance_ids])


def timer_last_updated(db: Path) -> str | None:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT last_updated FROM timer_schedule_status "
                           "WHERE function_name = 'purge_finished_runs'").fetchone()
    return row[0] if row else None


async def test_retention_purges_exactly_the_old_finished_runs(
        start_host: Callable[..., DevhostProcess], session: aiohttp.ClientSession,
        tmp_path: Path) -> None:
    db = tmp_path / "devhost.sqlite3"
    host = start_host(db=db)
    api = Api(session, host.url)
    old_done, old_live, new_done = key(), key(), key()
    for k in (old_done, old_live, new_done):
        assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
    for k in (old_done, new_done):
        assert (await api.request("POST", f"/api/stop/{k}"))[0] == 202
    host.stop()
    backdate(db, [f"workflow-{old_done}", f"workflow-{old_live}"], days=3)

    host = start_host(env={"WORKFLOW_RETENTION_DAYS": "2",
                           "WORKFLOW_RETENTION_SCHEDULE": "*/1 * * * * *"}, db=db)
    api = Api(session, host.url)

    async def purged() -> bool:
        return (await run_of(api, old_done))[0] == 404
    await eventually(purged, "the old finished run to be purged")
    seen = timer_last_updated(db)
    await eventually(lambda: timer_last_updated(db) != seen, "one more retention run")

    status, body = await run_of(api, old_done)
    assert status == 404 and body["error"] == f"no workflow was started for key '{old_done}'"
    assert (await run_of(api, old_live))[1]["runtimeStatus"] == "Running"
    assert (await run_of(api, new_done))[1]["runtimeStatus"] == "Completed"
    # A purged key starts afresh.
    assert (await api.request("POST", f"/api/start/{old_done}"))[0] == 202

