"""End to end: the capabilities app runs unmodified under a real ``python -m devhost`` process.

Every test drives devhost over HTTP on 127.0.0.1, through the app's own triggers (which use the
real SDK client, i.e. the ``rpcBaseUrl`` path) and through the public webhooks. One devhost
serves the module; every test uses fresh instance ids.
"""
from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest

from devhost.core.history import EventType
from tests.devhost.support import CAPABILITIES, RPC, WEBHOOK, Api, fresh_id, stored_history
from devhost.host.process import DevhostProcess

pytestmark = pytest.mark.e2e


#: local.settings.json of the served copy (the file name is git-ignored, so it is written here).
LOCAL_SETTINGS = {"IsEncrypted": False,
                  "Values": {"FUNCTIONS_WORKER_RUNTIME": "python",
                             "CAPABILITIES_GREETING": "hello from local.settings.json",
                             "CAPABILITIES_PRESET": "from local.settings.json"}}


@pytest.fixture(scope="module", params=["fastpath", "loopback-http", "two-workers"])
def host(request: pytest.FixtureRequest, module_devhost_factory: Callable[..., DevhostProcess],
         tmp_path_factory: pytest.TempPathFactory) -> DevhostProcess:
    """The app served with devhost's in-process client shortcut, with the SDK's own HTTP
    calls to ``rpcBaseUrl`` (``DEVHOST_FASTPATH=0``), and by two worker processes sharing the
    port and the database (``--workers 2``: requests, episodes and activities of one instance
    land in either process)."""
    env = {"CAPABILITIES_PRESET": "from the environment"}
    if request.param == "loopback-http":
        env["DEVHOST_FASTPATH"] = "0"
    app_dir = tmp_path_factory.mktemp("capabilities")
    for name in ("function_app.py", "host.json"):
        shutil.copy(CAPABILITIES / name, app_dir / name)
    (app_dir / "local.settings.json").write_text(json.dumps(LOCAL_SETTINGS))
    return module_devhost_factory(app_dir, env=env,
                                  workers=2 if request.param == "two-workers" else 1)


@pytest.fixture
async def api(host: DevhostProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, host.url)


def _event_ids(history: list[dict[str, Any]], kind: EventType) -> list[int]:
    return [ev["EventId"] for ev in history if ev["EventType"] == kind]


# ---- orchestration patterns ------------------------------------------------------------------

async def test_chaining_runs_sync_then_async_activity_and_passes_results_on(api: Api) -> None:
    started = await api.start("chain", "Ann")
    status = await api.wait_for(started["id"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == ["Hello Ann", "Hi Hello Ann"]
    # Python-started input is stored as the df_dumps text, exactly like the real host.
    assert status["input"] == '"Ann"'


async def test_fan_out_of_20_activities_fans_in_every_result(api: Api, host: DevhostProcess) -> None:
    started = await api.start("fan_out", 20)
    status = await api.wait_for(started["id"])
    assert status["output"] == {"sum": 2 * sum(range(20)), "count": 20}
    history = stored_history(host.db, started["id"])
    assert sorted(_event_ids(history, EventType.TASK_SCHEDULED)) == list(range(20))


async def test_durable_timer_fires_no_earlier_than_its_due_time(api: Api) -> None:
    began = time.monotonic()
    started = await api.start("short_timer", 0.3)
    status = await api.wait_for(started["id"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] >= 0.3  # orchestration time between the episodes
    assert time.monotonic() - began >= 0.3


async def test_timer_wins_task_any_when_no_event_arrives(api: Api) -> None:
    started = await api.start("race", {"timeout": 0.3})
    status = await api.wait_for(started["id"])
    assert status["output"] == {"winner": "timer"}


async def test_event_beats_timer_and_the_cancelled_timer_never_fires(api: Api, host: DevhostProcess) -> None:
    started = await api.start("race", {"timeout": 0.4, "after": 0.6})
    iid = started["id"]
    await api.wait_for(iid, {"Running"})  # the first episode armed timer 0
    code, _ = await api.raise_raw(iid, "Approve", {"ok": True})
    assert code == 202
    status = await api.wait_for(iid)
    assert status["output"] == {"winner": "event", "value": {"ok": True}}
    history = stored_history(host.db, iid)
    # Timer 0 (cancelled) was created but never fired; timer 1 (the nap) fired.
    assert _event_ids(history, EventType.TIMER_CREATED) == [0, 1]
    assert [ev["TimerId"] for ev in history if ev["EventType"] == EventType.TIMER_FIRED] == [1]


async def test_events_raised_before_the_wait_are_buffered_not_lost(api: Api) -> None:
    started = await api.start("two_events")
    iid = started["id"]
    # B arrives before anyone waits for it (possibly even before the first episode), A after.
    via_sdk = await api.client("raise_event", instance_id=iid, event_name="B",
                               event_data={"n": 2})
    assert via_sdk == {"result": None}
    code, _ = await api.raise_raw(iid, "A", {"n": 1})
    assert code == 202
    status = await api.wait_for(iid)
    # A raw webhook POST delivers the JSON value; the SDK client double-encodes (issue #295).
    assert status["output"] == [{"n": 1}, '{"n": 2}']


async def test_sub_orchestration_result_and_failure_reach_the_parent(api: Api) -> None:
    started = await api.start("parent", 21)
    status = await api.wait_for(started["id"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"]["ok"] == {"doubled": 42, "parent": started["id"]}
    assert "Orchestrator function 'child_fails' failed: child went wrong" in \
        status["output"]["failed"]


async def test_continue_as_new_restarts_with_new_input_until_done(api: Api, host: DevhostProcess) -> None:
    started = await api.start("counter", {"n": 0, "until": 5})
    status = await api.wait_for(started["id"])
    assert status["runtimeStatus"] == "Completed"
    assert status["output"] == 5
    assert json.loads(status["input"]) == {"n": 5, "until": 5}
    history = stored_history(host.db, started["id"])
    # Only the last execution's history remains.
    assert sum(ev["EventType"] == EventType.EXECUTION_STARTED for ev in history) == 1
    assert _event_ids(history, EventType.TASK_SCHEDULED) == []


async def test_orchestrator_exception_fails_the_instance_with_its_message(api: Api) -> None:
    started = await api.start("fails", "disk on fire")
    status = await api.wait_for(started["id"])
    assert status["runtimeStatus"] == "Failed"
    assert "Orchestrator function 'fails' failed:" in status["output"]
    assert "kaboom: disk on fire" in status["output"]


async def test_activity_failure_is_catchable_in_the_orchestrator(api: Api) -> None:
    started = await api.start("catches", "activity boom")
    status = await api.wait_for(started["id"])
    assert status["runtimeStatus"] == "Completed"
    assert "RuntimeError: activity boom" in status["output"]["caught"]


async def test_activity_retry_succeeds_on_third_attempt_with_matching_task_ids(api: Api, host: DevhostProcess) -> None:
    started = await api.start("retrying", {"key": fresh_id(), "fail_times": 2, "attempts": 3})
    status = await api.wait_for(started["id"])
    assert status["output"] == {"attempt": 3, "after": "Hello after"}
    history = stored_history(host.db, started["id"])
    # Attempts 0, 2, 4 with retry timers 1, 3 between them; the next activity takes id 5.
    assert _event_ids(history, EventType.TASK_SCHEDULED) == [0, 2, 4, 5]
    assert _event_ids(history, EventType.TIMER_CREATED) == [1, 3]


async def test_activity_retry_exhausted_raises_last_failure_in_orchestrator(api: Api, host: DevhostProcess) -> None:
    started = await api.start("retrying", {"key": fresh_id(), "fail_times": 9, "attempts": 2})
    status = await api.wait_for(started["id"])
    assert status["runtimeStatus"] == "Completed"
    assert "flaky attempt 2 fails" in status["output"]["error"]
    assert status["output"]["after"] == "Hello after"
    history = stored_history(host.db, started["id"])
    # DTFx (and the SDK's RetryAbleTask) wait on a timer after the last failure too.
    assert _event_ids(history, EventType.TASK_SCHEDULED) == [0, 2, 4]
    assert _event_ids(history, EventType.TIMER_CREATED) == [1, 3]


async def test_activities_of_different_instances_run_concurrently(api: Api,
                                                                 tmp_path: Path) -> None:
    began = time.monotonic()
    spec = {"dir": str(tmp_path), "seconds": 0.5}
    ids = [(await api.start("steps", {"slow": {**spec, "key": fresh_id()}}))["id"]
           for _ in range(4)]
    for iid in ids:
        assert (await api.wait_for(iid))["output"] == ["slept"]
    # Four 0.5 s activities one after another would take 2 s.
    assert time.monotonic() - began < 1.5


# ---- instance management through the SDK client -------------------------------------------------

async def test_custom_status_is_visible_while_running(api: Api) -> None:
    started = await api.start("waiter", "cs")
    iid = started["id"]
    status = await api.wait_for(iid, {"Running"},
                                custom_status={"stage": "waiting", "input": "cs"})
    via_sdk = await api.client("get_status", instance_id=iid)
    assert via_sdk["result"]["runtimeStatus"] == "Running"
    assert via_sdk["result"]["customStatus"] == {"stage": "waiting", "input": "cs"}
    await api.raise_raw(iid, "Go", 1)
    status = await api.wait_for(iid)
    assert status["customStatus"] == {"stage": "done"}


async def test_show_history_lists_history_events(api: Api) -> None:
    started = await api.start("chain", "Bo")
    await api.wait_for(started["id"])
    via_sdk = await api.client("get_status", instance_id=started["id"], show_history=True,
                               show_history_output=True)
    events = via_sdk["result"]["historyEvents"]
    kinds = [ev["EventType"] for ev in events]
    assert "ExecutionStarted" in kinds and "ExecutionCompleted" in kinds
    results = [ev["Result"] for ev in events if ev["EventType"] == "TaskCompleted"]
    assert results == ['"Hello Bo"', '"Hi Hello Bo"']
    code, _, plain = await api.status(started["id"])
    assert code == 200 and "historyEvents" not in plain


async def test_terminate_ends_instance_with_reason_and_later_events_are_gone(api: Api) -> None:
    started = await api.start("waiter", "t")
    iid = started["id"]
    await api.wait_for(iid, {"Running"})
    assert await api.client("terminate", instance_id=iid, reason="enough") == {"result": None}
    status = await api.wait_for(iid)
    assert status["runtimeStatus"] == "Terminated"
    assert status["output"] == "enough"
    gone = await api.client("raise_event", instance_id=iid, event_name="Go", event_data=1)
    assert "is gone" in gone["error"]
    assert (await api.raise_raw(iid, "Go", 1))[0] == 410
    # The SDK swallows 410 for terminate.
    assert await api.client("terminate", instance_id=iid, reason="again") == {"result": None}


async def test_suspend_holds_events_until_resume(api: Api, host: DevhostProcess) -> None:
    started = await api.start("waiter", "s")
    iid = started["id"]
    await api.wait_for(iid, {"Running"})
    assert await api.client("suspend", instance_id=iid, reason="pause") == {"result": None}
    await api.wait_for(iid, {"Suspended"})
    assert (await api.raise_raw(iid, "Go", "held"))[0] == 202
    # Still suspended after the event: poll a few times, it must not complete.
    for _ in range(10):
        code, _, body = await api.status(iid)
        assert (code, body["runtimeStatus"]) == (202, "Suspended")
    assert await api.client("resume", instance_id=iid, reason="go on") == {"result": None}
    status = await api.wait_for(iid)
    assert status["runtimeStatus"] == "Completed"
    assert status["output"]["got"] == "held"
    kinds = [ev["EventType"] for ev in stored_history(host.db, iid)]
    assert EventType.EXECUTION_SUSPENDED in kinds and EventType.EXECUTION_RESUMED in kinds


async def test_restart_with_new_id_and_with_same_id_reruns_original_input(api: Api) -> None:
    iid = fresh_id("restart")
    await api.start("chain", "Cy", instance_id=iid)
    await api.wait_for(iid)
    renewed = await api.client("restart", instance_id=iid)
    # The SDK returns the whole check-status payload (not just the id).
    new_id = renewed["result"]["id"]
    assert new_id != iid
    assert (await api.wait_for(new_id))["output"] == ["Hello Cy", "Hi Hello Cy"]
    same = await api.client("restart", instance_id=iid, restart_with_new_instance_id=False)
    assert same["result"]["id"] == iid
    status = await api.wait_for(iid)
    assert status["output"] == ["Hello Cy", "Hi Hello Cy"]


async def test_purge_single_instance_and_by_filter(api: Api) -> None:
    t0 = datetime.now(timezone.utc)
    done = [fresh_id("purge") for _ in range(3)]
    for iid in done:
        await api.start("chain", "P", instance_id=iid)
    running = fresh_id("purge-running")
    await api.start("waiter", "p", instance_id=running)
    for iid in done:
        await api.wait_for(iid)
    await api.wait_for(running, {"Running"})

    single = await api.client("purge_instance_history", instance_id=done[0])
    assert single == {"result": {"instancesDeleted": 1}}
    assert (await api.status(done[0]))[0] == 404
    again = await api.client("purge_instance_history", instance_id=done[0])
    assert again == {"result": {"instancesDeleted": 0}}  # the SDK maps 404 to 0

    by_filter = await api.client("purge_instance_history_by", created_time_from=t0.isoformat(),
                                 runtime_status=["Completed"])
    assert by_filter == {"result": {"instancesDeleted": 2}}
    assert [(await api.status(i))[0] for i in done] == [404, 404, 404]
    assert (await api.status(running))[0] == 202  # not Completed: kept


async def test_list_pages_with_top_and_continuation_token(api: Api) -> None:
    prefix = fresh_id("page")
    ids = [f"{prefix}-{i}" for i in range(7)]
    for iid in ids:
        await api.start("waiter", "l", instance_id=iid)
    seen: list[str] = []
    pages: list[int] = []
    token = None
    for _ in range(5):
        headers = {"x-ms-continuation-token": token} if token else None
        code, resp_headers, page = await api.request(
            "GET", f"{WEBHOOK}/instances/?instanceIdPrefix={prefix}&top=3", headers=headers)
        assert code == 200
        pages.append(len(page))
        seen += [s["instanceId"] for s in page]
        token = resp_headers.get("x-ms-continuation-token")
        if not token:
            break
    assert pages == [3, 3, 1]
    assert sorted(seen) == sorted(ids)
    # The SDK's get_status_by reads one page and understands the filters.
    via_sdk = await api.client("get_status_by", created_time_from="2000-01-01T00:00:00+00:00",
                               runtime_status=["Pending", "Running"])
    assert set(ids) <= {s["instanceId"] for s in via_sdk["result"]}
    everything = await api.client("get_status_all")
    assert set(ids) <= {s["instanceId"] for s in everything["result"]}


# ---- client API edges ---------------------------------------------------------------------------

async def test_entity_operations_answer_501_with_a_json_explanation(api: Api) -> None:
    for base in (RPC, WEBHOOK):
        code, _, body = await api.request("POST", f"{base}/entities/Counter/k1?op=add", body=5)
        assert code == 501
        assert "Entities" in body["ExceptionMessage"]
        code, _, body = await api.request("GET", f"{base}/entities/Counter/k1")
        assert code == 501
    via_sdk = await api.client("signal_entity", entity_name="Counter", entity_key="k1",
                               operation_name="add", operation_input=5)
    assert "error" in via_sdk


async def test_unknown_orchestrator_start_answers_400_with_exception_message(api: Api) -> None:
    code, _, body = await api.request("POST", f"{RPC}/orchestrators/no_such_thing")
    assert code == 400
    assert "no_such_thing" in body["ExceptionMessage"]
    code, _, body = await api.request("POST", "/api/orchestrators/no_such_thing")
    assert code == 400
    assert "The function 'no_such_thing' doesn't exist" in body["error"]


async def test_check_status_response_urls_work_when_fetched(api: Api) -> None:
    code, headers, payload = await api.request("POST", "/api/orchestrators/waiter", body="u")
    assert code == 202
    assert headers["Location"] == payload["statusQueryGetUri"]
    assert payload["statusQueryGetUri"].startswith(api.base + WEBHOOK)
    code, _, status = await api.request("GET", payload["statusQueryGetUri"])
    assert code in (200, 202) and status["instanceId"] == payload["id"]
    await api.wait_for(payload["id"], {"Running"})
    code, _, _ = await api.request(
        "POST", payload["sendEventPostUri"].replace("{eventName}", "Go"), body="via url")
    assert code == 202
    status = await api.wait_for(payload["id"])
    assert status["output"]["got"] == "via url"
    code, _, _ = await api.request("POST", payload["terminatePostUri"].replace("{text}", "x"))
    assert code == 410


# ---- HTTP functions -----------------------------------------------------------------------------

async def test_local_settings_values_reach_the_app_environment(api: Api) -> None:
    code, _, body = await api.request("GET", "/api/env/CAPABILITIES_GREETING")
    assert (code, body["value"]) == (200, "hello from local.settings.json")


async def test_environment_variables_win_over_local_settings(api: Api) -> None:
    code, _, body = await api.request("GET", "/api/env/CAPABILITIES_PRESET")
    assert (code, body["value"]) == (200, "from the environment")


async def test_route_templates_optional_int_and_method_filters(api: Api) -> None:
    code, _, body = await api.request("GET", "/api/items/42")
    assert (code, body) == (200, {"id": "42"})
    assert (await api.request("GET", "/api/items/abc"))[0] == 404
    assert (await api.request("GET", "/api/optional"))[2] == {"x": None}
    assert (await api.request("GET", "/api/optional/here"))[2] == {"x": "here"}
    assert (await api.request("POST", "/api/only-post"))[2] == {"method": "POST"}
    code, _, _ = await api.request("GET", "/api/only-post")
    assert code in (404, 405)


async def test_http_function_sees_method_query_headers_body_and_raw_route_value(api: Api) -> None:
    code, _, body = await api.request("PUT", "/api/echo/a%2Fb/c?q=1&r=two",
                                      data=b"payload", headers={"x-probe": "yes"})
    assert code == 200
    assert body == {"method": "PUT", "rest": "a/b/c", "query": {"q": "1", "r": "two"},
                    "header": "yes", "body": "payload"}


def test_second_devhost_on_the_same_database_is_refused(host: DevhostProcess,
                                                        tmp_path: Path) -> None:
    second = DevhostProcess(CAPABILITIES, host.db, log=tmp_path / "second.log")
    with pytest.raises(RuntimeError) as failure:
        second.start(timeout=15)
    assert second.proc is not None and second.proc.returncode not in (0, None)
    assert str(host.db) in str(failure.value)
    assert "in use by another devhost" in str(failure.value)
