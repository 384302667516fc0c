"""devhost.testing runs an unmodified app end to end in process, in virtual time: the app's
week-long timeout, an approval with daily reminders and the start/check/stop contract each run in
a fraction of a second (``pytest --durations`` shows it), timers firing at their virtual times."""
from __future__ import annotations

import asyncio
import importlib
import itertools
import os
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devhost.host.process import REPO
from devhost.testing import TestHost, run_app

pytest_plugins = ["devhost.testing.pytest_plugin"]

APPROVAL = Path(__file__).resolve().parent / "apps" / "approval"
CAPABILITIES = APPROVAL.parent / "capabilities"
WEEK = str(7 * 24 * 3600)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _history(host: TestHost, instance_id: str) -> list[dict[str, Any]]:
    status = await host.client.get_status(instance_id, show_history=True,
                                          show_history_output=True)
    return status.historyEvents


async def test_the_apps_week_long_timeout_ends_the_run_exactly_seven_virtual_days_later() -> None:
    async with run_app(REPO, settings={"WORKFLOW_TIMEOUT_SECONDS": WEEK}) as host:
        started = await host.post("/api/start/k")
        assert started.status == 202 and started.json()["instanceId"] == "workflow-k"

        await host.advance(days=6, hours=23, minutes=59, seconds=59)
        assert (await host.get("/api/check/k")).json()["runtimeStatus"] == "Running"

        await host.advance(seconds=2)
        st = await host.client.get_status("workflow-k")
        assert st.runtime_status.value == "Completed"
        assert st.output == {"outcome": "timed_out"}
        assert st.last_updated_time - st.created_time == timedelta(days=7)
        # Longer than Azure Storage's 6-day limit: the SDK split it into timers of 3 and 4
        # days, each fired at its own virtual time.
        history = await _history(host, "workflow-k")
        start = _time(history[0]["Timestamp"])
        fired = [_time(e["Timestamp"]) - start for e in history if e["EventType"] == "TimerFired"]
        assert fired == [timedelta(days=3), timedelta(days=7)]


async def test_the_start_check_stop_contract_holds_in_process() -> None:
    async with run_app(REPO, settings={"WORKFLOW_TIMEOUT_SECONDS": "0"}) as host:
        assert (await host.get("/api/check/k")).status == 404
        started = await host.post("/api/start/k")
        assert started.status == 202
        assert started.headers["Location"] == "/api/check/k"
        again = await host.post("/api/start/k")
        assert again.status == 409 and again.json()["instanceId"] == "workflow-k"
        await host.advance()
        check = await host.get("/api/check/k")
        assert check.status == 200
        assert check.json()["customStatus"] == {"waitingFor": "Workflow", "until": None}

        stop = await host.post("/api/stop/k", json={"approved": True})
        assert stop.status == 202 and stop.json()["confirmed"] is True
        await host.advance()  # steps after the event, if the workflow has any, run now
        done = (await host.get("/api/check/k")).json()
        assert done["runtimeStatus"] == "Completed"
        assert done["output"] == {"outcome": "stopped", "event": {"approved": True}}
        assert (await host.post("/api/stop/k")).status == 410

        bad_key = await host.post("/api/start/bad%20key")
        assert bad_key.status == 400 and "U+0020" in bad_key.json()["error"]
        await host.post("/api/start/j")
        assert (await host.post("/api/stop/j", data=b"{not json")).status == 400

        # Of two concurrent stops exactly one wins (the other finds the run ended by another
        # stop, 409, or already finished, 410: which depends on when its event was raised).
        answers = await asyncio.gather(host.post("/api/stop/j", json=1),
                                       host.post("/api/stop/j", json=2))
        assert sorted(a.status for a in answers)[0] == 202
        assert sorted(a.status for a in answers)[1] in (409, 410)
        await host.advance()
        won = 1 if answers[0].status == 202 else 2
        assert (await host.get("/api/check/j")).json()["output"]["event"] == won

        # A finished key starts again.
        assert (await host.post("/api/start/k")).status == 202


async def test_a_stop_after_the_timeout_is_410_and_one_before_it_wins() -> None:
    async with run_app(REPO, settings={"WORKFLOW_TIMEOUT_SECONDS": "3600"}) as host:
        await host.post("/api/start/late")
        await host.post("/api/start/early")
        await host.advance(minutes=59)
        assert (await host.post("/api/stop/early")).status == 202
        await host.advance(minutes=1)
        assert (await host.post("/api/stop/late")).status == 410
        late = (await host.get("/api/check/late")).json()
        assert late["output"] == {"outcome": "timed_out"}


async def test_an_approval_reminds_every_day_and_records_the_decision() -> None:
    async with run_app(APPROVAL) as host:
        started = await host.post("/api/approvals/42", json={"approver": "ana"})
        assert started.status == 202
        await host.advance(days=3, hours=1)
        shown = (await host.get("/api/approvals/42")).json()
        assert shown["runtimeStatus"] == "Running"
        assert shown["customStatus"] == {"waitingFor": "Decision", "reminders": 3}

        assert (await host.post("/api/approvals/42/decision", json={"approved": True})).status == 202
        await host.advance()
        shown = (await host.get("/api/approvals/42")).json()
        assert shown["output"] == {"outcome": "decided", "decision": {"approved": True},
                                   "reminders": 3}

        history = await _history(host, "approval-42")
        start = _time(history[0]["Timestamp"])
        reminders = [_time(e["Timestamp"]) - start for e in history
                     if e["EventType"] == "TaskScheduled" and e["Name"] == "send_reminder"]
        # Each reminder was scheduled by the episode its timer woke, a day after the last.
        assert reminders == [timedelta(days=1), timedelta(days=2), timedelta(days=3)]
        results = [e["Result"] for e in history if e["EventType"] == "TaskCompleted"]
        assert results[:3] == [f'"reminder {n} sent to ana"' for n in (1, 2, 3)]
        assert results[3] == '"recorded"'


@pytest.mark.parametrize(("settings", "reminders"), [({}, 6),
                                                     ({"APPROVAL_REMIND_HOURS": "12"}, 13)])
async def test_an_approval_nobody_answers_expires_after_the_give_up_time(
        settings: dict[str, str], reminders: int) -> None:
    async with run_app(APPROVAL, settings=settings) as host:
        await host.post("/api/approvals/7", json={"approver": "bo"})
        await host.advance(days=6, hours=23)
        assert (await host.get("/api/approvals/7")).json()["runtimeStatus"] == "Running"
        await host.advance(hours=1)
        st = await host.client.get_status("approval-7")
        assert st.output == {"outcome": "expired", "reminders": reminders}
        assert st.last_updated_time - st.created_time == timedelta(days=7)


async def test_timer_triggers_fire_at_their_virtual_times() -> None:
    async with run_app(APPROVAL) as host:
        await host.post("/api/approvals/1", json={"approver": "cy"})
        await host.advance(days=3)
        digests = [s for s in await host.client.get_status_all() if s.name == "digest"]
        assert len(digests) == 3
        times = sorted(s.created_time for s in digests)
        assert all((t.hour, t.minute, t.second) == (9, 0, 0) for t in times)
        assert [b - a for a, b in itertools.pairwise(times)] == [timedelta(days=1)] * 2
        assert all(s.output == {"waiting": 1} for s in digests)


async def test_queue_triggers_are_named_as_not_run() -> None:
    async with run_app(REPO) as host:
        assert [s.split(":")[0] for s in host.skipped] == ["stop_from_queue"]


async def test_the_same_app_runs_again_with_other_settings_and_the_process_is_put_back() -> None:
    before = (dict(os.environ), os.getcwd(), list(sys.path), sys.modules.get("function_app"))
    client_module = importlib.import_module(
        "azure.durable_functions.models.DurableOrchestrationClient")
    transport = client_module.get_async_request
    untils = []
    for timeout in ("60", "0"):
        async with run_app(REPO, settings={"WORKFLOW_TIMEOUT_SECONDS": timeout,
                                           "SOME_SETTING": "x"}) as host:
            assert os.environ["SOME_SETTING"] == "x"
            await host.post("/api/start/k")
            await host.advance()
            untils.append((await host.get("/api/check/k")).json()["customStatus"]["until"])
        after = (dict(os.environ), os.getcwd(), list(sys.path), sys.modules.get("function_app"))
        assert after == before
        assert client_module.get_async_request is transport
    assert untils[0] is not None and untils[1] is None


async def test_advance_refuses_to_go_back_in_time() -> None:
    async with run_app(APPROVAL) as host:
        with pytest.raises(ValueError, match="forward"):
            await host.advance(seconds=-1)


@pytest.mark.parametrize("devhost_app_dir", [REPO])
@pytest.mark.parametrize("devhost_app_settings", [{"WORKFLOW_TIMEOUT_SECONDS": WEEK}])
async def test_the_pytest_fixture_runs_the_app_with_its_settings(devhost_app: TestHost) -> None:
    await devhost_app.post("/api/start/k")
    await devhost_app.advance(days=7, seconds=1)
    assert (await devhost_app.get("/api/check/k")).json()["output"] == {"outcome": "timed_out"}


async def test_another_app_runs_its_sync_and_async_activities() -> None:
    async with run_app(CAPABILITIES) as host:
        await host.client.start_new("chain", "c1", "ana")
        await host.advance()
        st = await host.client.get_status("c1")
        assert st.runtime_status.value == "Completed"
        assert st.output == ["Hello ana", "Hi Hello ana"]


async def test_an_activity_that_does_not_return_is_named_when_idle_times_out(tmp_path: Path) -> None:
    async with run_app(CAPABILITIES, idle_timeout=0.3) as host:
        slow = {"dir": str(tmp_path), "key": "k", "seconds": 2}
        await host.client.start_new("steps", "s1", {"slow": slow})
        with pytest.raises(TimeoutError, match=r"slow \(s1\)"):
            await host.advance()
