"""The app's HTTP contract end to end: the real app, unmodified, on a real devhost over HTTP.

Every test runs three times: with devhost's SDK fast path, without it (``DEVHOST_FASTPATH=0``:
the Durable client then talks to devhost over loopback HTTP, as it does to the real host), so
the shortcut is held to the same observable behaviour, and with two worker processes
(``--workers 2``), whose requests and episodes for one key land in either process.
"""
from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import aiohttp
import pytest

from devhost.core.history import EventType
from tests.devhost.support import Api, stored_history
from devhost.host.process import REPO, DevhostProcess

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module", params=["fastpath", "plain", "two-workers"])
def host(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[DevhostProcess]:
    env = {"WORKFLOW_TIMEOUT_SECONDS": "0",
           "DEVHOST_FASTPATH": "0" if request.param == "plain" else "1"}
    process = DevhostProcess(REPO, tmp_path_factory.mktemp("app") / "db.sqlite3", env=env,
                             workers=2 if request.param == "two-workers" else 1)
    yield process.start()
    process.stop()


@pytest.fixture
async def api(host: DevhostProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, host.url)


def key() -> str:
    return f"k{uuid.uuid4().hex[:12]}"


async def wait_status(api: Api, k: str, wanted: str, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        code, _, body = await api.request("GET", f"/api/check/{k}")
        assert code == 200, body
        if body["runtimeStatus"] == wanted:
            return body
        assert time.monotonic() < deadline, f"{k} stuck in {body}"
        await asyncio.sleep(0.02)


async def test_start_check_stop_lifecycle_follows_the_contract(api: Api) -> None:
    k = key()
    code, headers, body = await api.request("POST", f"/api/start/{k}")
    assert code == 202
    assert headers["Location"] == f"/api/check/{k}"
    assert headers["Retry-After"].isdigit()
    assert headers["Content-Type"].startswith("application/json")
    assert body["input"] == k and body["instanceId"] == f"workflow-{k}"
    assert body["runtimeStatus"] in ("Pending", "Running")

    running = await wait_status(api, k, "Running")
    assert running["customStatus"] == {"waitingFor": "Workflow", "until": None}
    assert running["createdTime"].endswith("Z") and running["output"] is None

    code, headers, body = await api.request("POST", f"/api/stop/{k}", body={"reason": "done", "n": 2})
    assert code == 202
    assert headers["Location"] == f"/api/check/{k}"
    # Answered once the run has taken the event: Completed for the template, Running while
    # steps after the event go on.
    assert body["confirmed"] is True and body["runtimeStatus"] in ("Running", "Completed")
    assert body["customStatus"]["outcome"] == "stopped" and body["customStatus"]["stoppedBy"]

    recorded = body["customStatus"]
    body = await wait_status(api, k, "Completed")
    assert body["output"] == {"outcome": "stopped", "event": {"reason": "done", "n": 2}}
    # The record the stop answered from outlives any later step (a custom status set after
    # the wait must keep it): later stops and check keep naming the winner.
    assert {n: body["customStatus"][n] for n in ("outcome", "stoppedBy")} == \
        {n: recorded[n] for n in ("outcome", "stoppedBy")}


async def test_get_is_accepted_for_start_and_stop_like_the_original(api: Api) -> None:
    k = key()
    assert (await api.request("GET", f"/api/start/{k}"))[0] == 202
    code, _, body = await api.request("GET", f"/api/stop/{k}")
    assert code == 202 and body["confirmed"] is True
    assert (await wait_status(api, k, "Completed"))["output"] == {"outcome": "stopped", "event": None}


async def test_second_start_while_running_is_409_with_the_existing_run(api: Api) -> None:
    k = key()
    assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
    code, _, body = await api.request("POST", f"/api/start/{k}")
    assert code == 409
    assert body["instanceId"] == f"workflow-{k}" and body["runtimeStatus"] in ("Pending", "Running")
    assert "error" in body
    code, _, listing = await api.request(
        "GET", f"/runtime/webhooks/durabletask/instances?instanceIdPrefix=workflow-{k}")
    assert code == 200 and [i["instanceId"] for i in listing] == [f"workflow-{k}"]


async def test_start_after_the_run_finished_starts_a_fresh_run(api: Api) -> None:
    k = key()
    await api.request("POST", f"/api/start/{k}")
    assert (await api.request("POST", f"/api/stop/{k}", body=1))[0] == 202
    await wait_status(api, k, "Completed")
    code, _, _ = await api.request("POST", f"/api/start/{k}")
    assert code == 202
    fresh = await wait_status(api, k, "Running")
    assert fresh["output"] is None
    assert (await api.request("POST", f"/api/stop/{k}", body=2))[0] == 202
    assert (await wait_status(api, k, "Completed"))["output"]["event"] == 2


async def test_unknown_input_is_404_for_check_and_stop(api: Api) -> None:
    k = key()
    for method, path in (("GET", f"/api/check/{k}"), ("POST", f"/api/stop/{k}")):
        code, headers, body = await api.request(method, path)
        assert code == 404, (path, body)
        assert headers["Content-Type"].startswith("application/json") and body["error"]


async def test_stop_of_a_finished_run_is_410(api: Api) -> None:
    k = key()
    await api.request("POST", f"/api/start/{k}")
    await api.request("POST", f"/api/stop/{k}")
    await wait_status(api, k, "Completed")
    code, _, body = await api.request("POST", f"/api/stop/{k}", body={"late": True})
    assert code == 410 and body["error"]
    code, _, body = await api.request("GET", f"/api/check/{k}")
    assert body["output"] == {"outcome": "stopped", "event": None}


@pytest.mark.parametrize("raw", [b"{bad json", b"\xff\xfe", b'{"a": NaN}'])
async def test_malformed_stop_body_is_400_and_the_run_keeps_waiting(api: Api, raw: bytes) -> None:
    k = key()
    await api.request("POST", f"/api/start/{k}")
    code, _, body = await api.request("POST", f"/api/stop/{k}", data=raw)
    assert code == 400 and "JSON" in body["error"]
    assert (await wait_status(api, k, "Running"))["output"] is None


@pytest.mark.parametrize("raw_input", [
    "a%20b", "a%2Fb", "a%5Cb", "a%3Fb", "a%23b", "%00x", "x" * 65, "%C3%A9t%C3%A9", "-lead", "_lead",
])
async def test_bad_input_is_400_with_the_rule_on_every_route(api: Api, raw_input: str) -> None:
    for method, route in (("POST", "start"), ("GET", "check"), ("POST", "stop")):
        code, headers, body = await api.request(method, f"/api/{route}/{raw_input}")
        assert code == 400, (route, raw_input, body)
        assert headers["Content-Type"].startswith("application/json")
        assert "key" in body["error"]


async def test_responses_never_carry_management_urls_or_keys(api: Api) -> None:
    k = key()
    bodies = [await api.request("POST", f"/api/start/{k}"),
              await api.request("POST", f"/api/start/{k}"),
              await api.request("GET", f"/api/check/{k}"),
              await api.request("POST", f"/api/stop/{k}")]
    for _, _, body in bodies:
        text = str(body)
        assert "runtime/webhooks" not in text and "code=" not in text and "durabletask" not in text


async def test_check_shows_only_the_requested_instance(api: Api) -> None:
    first, second = key(), key()
    await api.request("POST", f"/api/start/{first}", body=None)
    await api.request("POST", f"/api/start/{second}")
    await api.request("POST", f"/api/stop/{first}", body={"who": first})
    body = (await api.request("GET", f"/api/check/{second}"))[2]
    assert body["input"] == second and body["output"] is None


@pytest.fixture(scope="module")
def timeout_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevhostProcess]:
    process = DevhostProcess(REPO, tmp_path_factory.mktemp("timeout") / "db.sqlite3",
                             env={"WORKFLOW_TIMEOUT_SECONDS": "1"})
    yield process.start()
    process.stop()


async def test_workflow_times_out_with_the_setting_and_stop_is_then_410(
        timeout_host: DevhostProcess) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(session, timeout_host.url)
        k = key()
        assert (await api.request("POST", f"/api/start/{k}"))[0] == 202
        running = await wait_status(api, k, "Running")
        assert running["customStatus"]["until"].endswith("Z")
        done = await wait_status(api, k, "Completed", timeout=10)
        assert done["output"] == {"outcome": "timed_out"}
        assert (await api.request("POST", f"/api/stop/{k}"))[0] == 410


async def test_stop_before_the_timeout_wins_and_cancels_the_timer(
        timeout_host: DevhostProcess) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(session, timeout_host.url)
        k = key()
        await api.request("POST", f"/api/start/{k}")
        code, _, body = await api.request("POST", f"/api/stop/{k}", body="early")
        assert code == 202 and body["confirmed"] is True
        done = await wait_status(api, k, "Completed")
        assert done["output"] == {"outcome": "stopped", "event": "early"}
        # Nothing is left to fire after the stop: the run had a timer (TimerCreated), it never
        # fired, and no timer message remains in the store. (That the orchestrator cancels it is
        # unit-tested on its actions in tests/test_orchestrator.py.)
        history = stored_history(timeout_host.db, f"workflow-{k}")
        assert EventType.TIMER_CREATED in [ev["EventType"] for ev in history]
        assert EventType.TIMER_FIRED not in [ev["EventType"] for ev in history]
        with sqlite3.connect(f"file:{timeout_host.db}?mode=ro", uri=True) as db:
            assert db.execute("SELECT kind FROM inbox WHERE instance_id=?",
                              (f"workflow-{k}",)).fetchall() == []
        assert (await api.request("GET", f"/api/check/{k}"))[2]["output"]["event"] == "early"


async def test_waiting_workflow_survives_kill_9_and_stops_after_restart(tmp_path: Path) -> None:
    process = DevhostProcess(REPO, tmp_path / "db.sqlite3", env={"WORKFLOW_TIMEOUT_SECONDS": "0"})
    process.start()
    try:
        async with aiohttp.ClientSession() as session:
            k = key()
            assert (await Api(session, process.url).request("POST", f"/api/start/{k}"))[0] == 202
            await wait_status(Api(session, process.url), k, "Running")
            process.kill()
            process.start()
            api = Api(session, process.url)
            code, _, _ = await api.request("POST", f"/api/stop/{k}", body={"after": "restart"})
            assert code == 202
            done = await wait_status(api, k, "Completed")
            assert done["output"] == {"outcome": "stopped", "event": {"after": "restart"}}
    finally:
        process.stop()
