"""Retention: which runs are purged, in bounded batches, through the real SDK client.

The hub below answers the host's status-query and purge APIs (``GET``/``DELETE instances/``
with ``createdTimeFrom``, ``createdTimeTo``, ``runtimeStatus``, ``instanceIdPrefix``; a page
of at most 100; ``404`` when a purge deletes nothing) behind a real
``DurableOrchestrationClient``, so the SDK's own URL building and answer parsing run. Time is a
parameter; nothing waits for days.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from azure.durable_functions.models import DurableOrchestrationClient

from tests.fakes import binding_json
from workflow import retention
from workflow.errors import BackendUnavailable, SettingsError
from workflow.retention import RetentionSettings, purge_expired

NOW = datetime(2026, 11, 29, 2, 30, tzinfo=timezone.utc)
PAGE = 100


@dataclass
class Run:
    instance_id: str
    status: str
    created: datetime  # microsecond precision, as a backend stores it


class FakeHub:
    """Instances behind the host's list and purge endpoints."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now
        self.runs: dict[str, Run] = {}
        self.requests: list[tuple[str, str]] = []
        self.fail: BaseException | None = None

    def add(self, instance_id: str, status: str, age: timedelta) -> None:
        self.runs[instance_id] = Run(instance_id, status, self.now - age)

    def client(self) -> DurableOrchestrationClient:
        client = DurableOrchestrationClient(binding_json())
        client._get_async_request = self.get
        client._delete_async_request = self.delete
        return client

    def _matching(self, url: str) -> list[Run]:
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        low = _time(query.get("createdTimeFrom"))
        high = _time(query.get("createdTimeTo"))
        statuses = set(query["runtimeStatus"].split(",")) if "runtimeStatus" in query else None
        prefix = query.get("instanceIdPrefix", "")
        return sorted((r for r in self.runs.values()
                       if (low is None or r.created >= low) and (high is None or r.created <= high)
                       and (statuses is None or r.status in statuses)
                       and r.instance_id.startswith(prefix)), key=lambda r: r.created)

    async def get(self, url: str, function_invocation_id: str | None = None) -> list[Any]:
        self.requests.append(("GET", url))
        if self.fail:
            raise self.fail
        return [200, [{"name": "workflow_orchestrator", "instanceId": r.instance_id,
                       "runtimeStatus": r.status, "input": None, "customStatus": None,
                       "output": None,
                       "createdTime": r.created.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "lastUpdatedTime": r.created.strftime("%Y-%m-%dT%H:%M:%SZ")}
                      for r in self._matching(url)[:PAGE]]]

    async def delete(self, url: str, function_invocation_id: str | None = None) -> list[Any]:
        self.requests.append(("DELETE", url))
        doomed = self._matching(url)
        for run in doomed:
            del self.runs[run.instance_id]
        return [200, {"instancesDeleted": len(doomed)}] if doomed else [404, None]


def _time(text: str | None) -> datetime | None:
    if text is None:
        return None
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


DAYS = timedelta(days=1)


async def test_retention_purges_exactly_the_finished_runs_older_than_the_setting() -> None:
    hub = FakeHub()
    for status in ("Completed", "Failed", "Terminated"):
        hub.add(f"workflow-old-{status}", status, 31 * DAYS)
        hub.add(f"workflow-new-{status}", status, 29 * DAYS)
    for status in ("Running", "Pending", "Suspended"):
        hub.add(f"workflow-old-{status}", status, 400 * DAYS)
    hub.add("someone-else-old", "Completed", 400 * DAYS)  # not this app's instance

    report = await purge_expired(hub.client(), RetentionSettings(days=30), NOW)

    assert report.purged == 3 and report.complete
    assert report.cutoff == NOW - 30 * DAYS
    assert sorted(hub.runs) == sorted(
        [f"workflow-new-{s}" for s in ("Completed", "Failed", "Terminated")]
        + [f"workflow-old-{s}" for s in ("Running", "Pending", "Suspended")]
        + ["someone-else-old"])


# The timer runs a moment after its whole second: listed times are whole seconds, so the purge
# window of a cutoff inside a second must still end at the cutoff, not at the next second.
@pytest.mark.parametrize("now", [NOW, NOW + timedelta(milliseconds=400)],
                         ids=["cutoff-on-a-second", "cutoff-inside-a-second"])
async def test_a_run_created_a_split_second_after_the_cutoff_is_kept(now: datetime) -> None:
    hub = FakeHub(now)
    hub.add("workflow-edge", "Completed", 30 * DAYS - timedelta(microseconds=1))
    hub.add("workflow-past", "Completed", 30 * DAYS + timedelta(microseconds=1))
    await purge_expired(hub.client(), RetentionSettings(days=30), now)
    assert list(hub.runs) == ["workflow-edge"]


async def test_retention_works_in_bounded_batches_and_leaves_the_rest_for_the_next_run() -> None:
    hub = FakeHub()
    for i in range(450):
        hub.add(f"workflow-k{i}", "Completed", 60 * DAYS + timedelta(minutes=i))

    first = await purge_expired(hub.client(), RetentionSettings(days=30, max_batches=2), NOW)
    assert (first.purged, first.batches, first.complete) == (200, 2, False)
    assert len(hub.runs) == 250
    # Every purge request is one page's creation-time window: at most 100 runs each.
    assert sum(1 for method, _ in hub.requests if method == "DELETE") == 2

    second = await purge_expired(hub.client(), RetentionSettings(days=30, max_batches=50), NOW)
    assert (second.purged, second.batches, second.complete) == (250, 3, True)
    assert hub.runs == {}


async def test_a_key_started_again_after_the_listing_is_not_purged() -> None:
    hub = FakeHub()
    hub.add("workflow-aaron", "Completed", 90 * DAYS)
    client = hub.client()
    real_get = hub.get

    async def listing_then_restart(url: str, function_invocation_id: str | None = None) -> list[Any]:
        answer = await real_get(url)
        hub.add("workflow-aaron", "Running", timedelta(0))  # a start replaced the finished run
        return answer

    hub.get = listing_then_restart  # type: ignore[method-assign]
    client._get_async_request = listing_then_restart
    report = await purge_expired(client, RetentionSettings(days=30, max_batches=1), NOW)
    assert report.purged == 0
    assert hub.runs["workflow-aaron"].status == "Running"


async def test_retention_off_purges_nothing_and_asks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    hub = FakeHub()
    hub.add("workflow-old", "Completed", 9999 * DAYS)
    caplog.set_level(logging.INFO, logger="workflow.retention")
    report = await retention.run(hub.client(), RetentionSettings(days=None), NOW)
    assert report.purged == 0 and hub.requests == [] and "workflow-old" in hub.runs
    assert "retention is off" in caplog.text


async def test_the_timer_logs_how_many_runs_it_purged(caplog: pytest.LogCaptureFixture) -> None:
    hub = FakeHub()
    hub.add("workflow-a", "Completed", 8 * DAYS)
    hub.add("workflow-b", "Failed", 8 * DAYS)
    caplog.set_level(logging.INFO, logger="workflow.retention")
    await retention.run(hub.client(), RetentionSettings(days=7), NOW)
    assert "retention purged 2 finished run(s) created before 2026-11-22T02:30:00+00:00" \
        in caplog.text


async def test_an_unreachable_backend_is_reported_as_unavailable() -> None:
    hub = FakeHub()
    hub.fail = aiohttp.ClientConnectionError("refused")
    with pytest.raises(BackendUnavailable):
        await purge_expired(hub.client(), RetentionSettings(days=1), NOW)


@pytest.mark.parametrize("env, days, schedule", [
    ({}, None, retention.DEFAULT_SCHEDULE),
    ({"WORKFLOW_RETENTION_DAYS": "0"}, None, retention.DEFAULT_SCHEDULE),
    ({"WORKFLOW_RETENTION_DAYS": " 30 "}, 30, retention.DEFAULT_SCHEDULE),
    ({"WORKFLOW_RETENTION_SCHEDULE": "0 0 * * * *"}, None, "0 0 * * * *"),
])
def test_retention_settings_come_from_the_app_settings(env: dict[str, str], days: int | None,
                                                       schedule: str) -> None:
    assert RetentionSettings.from_env(env) == RetentionSettings(days=days, schedule=schedule)


@pytest.mark.parametrize("schedule", ["0 2 * * *", "daily", "0 0 2 * * * *"])
def test_a_schedule_that_is_not_six_field_ncrontab_stops_startup(schedule: str) -> None:
    with pytest.raises(SettingsError, match="WORKFLOW_RETENTION_SCHEDULE must be a six-field"):
        RetentionSettings.from_env({"WORKFLOW_RETENTION_SCHEDULE": schedule})


def test_a_timespan_schedule_is_accepted_as_the_host_accepts_it() -> None:
    assert RetentionSettings.from_env(
        {"WORKFLOW_RETENTION_SCHEDULE": "1.00:00:00"}).schedule == "1.00:00:00"


@pytest.mark.parametrize("value", ["-1", "1.5", "thirty", "99999999", "３０"])
def test_bad_retention_days_stop_startup_naming_the_setting(value: str) -> None:
    with pytest.raises(SettingsError, match="WORKFLOW_RETENTION_DAYS"):
        RetentionSettings.from_env({"WORKFLOW_RETENTION_DAYS": value})
