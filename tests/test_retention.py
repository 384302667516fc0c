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
from workflow.errors import BackendError, BackendUnavailable, SettingsError
from workflow.retention import MAX_DAYS, PurgeReport, RetentionSettings, purge_expired

NOW = datetime(2026, 11, 29, 2, 30, tzinfo=timezone.utc)
PAGE = 100


@dataclass
class Run:
    instance_id: str
    status: str
    created: datetime  # microsecond precision, as a backend stores it


class FakeHub:
    """Instances behind the host's list and purge endpoints."""

    def __init__(self, now: datetime = NOW, order: str = "created") -> None:
        self.now = now
        # The order of a listing page: by creation time, or by instance id as Azure Storage's
        # instances table (partitioned by instance id) answers it.
        self.order = order
        self.runs: dict[str, Run] = {}
        self.requests: list[tuple[str, str]] = []
        # A failure to answer with: an exception of the transport, or the host's status code.
        self.fail: BaseException | int | None = None
        self.fail_purge: BaseException | int | None = None
        self.purge_deletes = True

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
                       and r.instance_id.startswith(prefix)),
                      key=lambda r: r.created if self.order == "created" else r.instance_id)

    async def get(self, url: str, function_invocation_id: str | None = None) -> list[Any]:
        self.requests.append(("GET", url))
        if isinstance(self.fail, int):
            return [self.fail, None]
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
        if isinstance(self.fail_purge, int):
            return [self.fail_purge, None]
        if self.fail_purge:
            raise self.fail_purge
        doomed = self._matching(url) if self.purge_deletes else []
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
    assert report == PurgeReport(0, 0, None, True)
    assert hub.requests == [] and "workflow-old" in hub.runs
    assert [r.getMessage() for r in caplog.records] == [
        "retention is off (WORKFLOW_RETENTION_DAYS unset or 0): nothing purged"]


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


@pytest.mark.parametrize("value", ["-1", "1.5", "thirty", "99999999", "３０"])  # noqa: RUF001 (full-width digits on purpose)
def test_bad_retention_days_stop_startup_naming_the_setting(value: str) -> None:
    with pytest.raises(SettingsError, match="WORKFLOW_RETENTION_DAYS"):
        RetentionSettings.from_env({"WORKFLOW_RETENTION_DAYS": value})


CUTOFF_30 = NOW - 30 * DAYS


@pytest.mark.parametrize("crowd", ["live", "another app's", "newer"])
async def test_a_full_page_of_runs_to_keep_does_not_hide_an_expired_run(crowd: str) -> None:
    # Listed by instance id (as Azure Storage answers), the runs to keep come first: only the
    # backend's filters (finished, created before the cutoff, this app's prefix) reach the
    # expired run in the first page.
    hub = FakeHub(order="instance_id")
    for i in range(PAGE):
        if crowd == "live":
            hub.add(f"workflow-a{i:03}", "Running", 400 * DAYS)
        elif crowd == "another app's":
            hub.add(f"billing-{i:03}", "Completed", 400 * DAYS)
        else:
            hub.add(f"workflow-a{i:03}", "Completed", 1 * DAYS)
    hub.add("workflow-z-expired", "Completed", 31 * DAYS)

    report = await purge_expired(hub.client(), RetentionSettings(days=30), NOW)

    assert report == PurgeReport(1, 1, CUTOFF_30, True)
    assert "workflow-z-expired" not in hub.runs and len(hub.runs) == PAGE


async def test_a_live_run_created_between_two_expired_runs_is_kept() -> None:
    hub = FakeHub()
    hub.add("workflow-first", "Completed", 40 * DAYS)
    hub.add("workflow-running", "Running", 36 * DAYS)
    hub.add("workflow-pending", "Pending", 35 * DAYS)
    hub.add("workflow-suspended", "Suspended", 34 * DAYS)
    hub.add("workflow-last", "Terminated", 32 * DAYS)

    report = await purge_expired(hub.client(), RetentionSettings(days=30), NOW)

    assert report.purged == 2
    assert sorted(hub.runs) == ["workflow-pending", "workflow-running", "workflow-suspended"]


async def test_a_run_created_exactly_at_the_cutoff_is_kept() -> None:
    hub = FakeHub()
    hub.add("workflow-at-cutoff", "Completed", 30 * DAYS)
    report = await purge_expired(hub.client(), RetentionSettings(days=30), NOW)
    assert report == PurgeReport(0, 0, CUTOFF_30, True)
    assert "workflow-at-cutoff" in hub.runs


async def test_a_run_created_exactly_at_a_cutoff_inside_a_second_is_kept() -> None:
    # Listed with whole seconds, the run looks older than the cutoff and joins a batch; the
    # fake's createdTimeTo is inclusive, so the purge window must end before the cutoff.
    now = NOW + timedelta(milliseconds=400)
    hub = FakeHub(now)
    hub.add("workflow-at-cutoff", "Completed", 30 * DAYS)
    hub.add("workflow-past", "Completed", 30 * DAYS + timedelta(seconds=5))
    await purge_expired(hub.client(), RetentionSettings(days=30), now)
    assert list(hub.runs) == ["workflow-at-cutoff"]


async def test_a_batch_purges_only_its_pages_window_and_a_run_a_second_later_waits() -> None:
    hub = FakeHub()
    for i in range(PAGE):  # a full page, all created within one second
        hub.add(f"workflow-k{i:03}", "Completed", 60 * DAYS)
    hub.add("workflow-late", "Completed", 60 * DAYS - timedelta(seconds=1.5))

    report = await purge_expired(hub.client(), RetentionSettings(days=30, max_batches=1), NOW)

    assert report == PurgeReport(PAGE, 1, CUTOFF_30, False)
    assert list(hub.runs) == ["workflow-late"]


async def test_a_batch_that_purges_nothing_ends_the_run_instead_of_spinning() -> None:
    hub = FakeHub()
    hub.add("workflow-old", "Completed", 90 * DAYS)
    hub.purge_deletes = False  # the backend's purge found nothing the listing showed (404)

    report = await purge_expired(hub.client(), RetentionSettings(days=30), NOW)

    assert report == PurgeReport(0, 1, CUTOFF_30, True)
    assert [method for method, _ in hub.requests] == ["GET", "DELETE"]


async def test_each_batch_and_the_total_are_logged_and_a_bounded_run_says_more_remain(
        caplog: pytest.LogCaptureFixture) -> None:
    hub = FakeHub()
    for i in range(150):
        hub.add(f"workflow-k{i}", "Completed", 60 * DAYS + timedelta(minutes=i))
    caplog.set_level(logging.INFO, logger="workflow.retention")
    before = "created before 2026-10-30T02:30:00+00:00"

    await retention.run(hub.client(), RetentionSettings(days=30, max_batches=1), NOW)
    assert [r.getMessage() for r in caplog.records] == [
        f"retention batch 1 purged 100 finished run(s) {before}",
        f"retention purged 100 finished run(s) {before} in 1 batch(es); more remain for the "
        "next run"]

    caplog.clear()
    await retention.run(hub.client(), RetentionSettings(days=30), NOW)
    assert [r.getMessage() for r in caplog.records] == [
        f"retention batch 1 purged 50 finished run(s) {before}",
        f"retention purged 50 finished run(s) {before} in 1 batch(es)"]


@pytest.mark.parametrize("step", ["listing", "purging"])
@pytest.mark.parametrize("failure, error, reason", [
    (aiohttp.ClientConnectionError("refused"), BackendUnavailable, "unavailable while {}: refused"),
    (500, BackendError, "error while {}: The operation failed with an unexpected status code 500"),
])
async def test_a_backend_failure_names_the_step_that_failed(
        step: str, failure: BaseException | int, error: type[Exception], reason: str) -> None:
    hub = FakeHub()
    hub.add("workflow-old", "Completed", 90 * DAYS)
    if step == "listing":
        hub.fail = failure
    else:
        hub.fail_purge = failure
    with pytest.raises(error) as info:
        await purge_expired(hub.client(), RetentionSettings(days=30), NOW)
    assert str(info.value) == "durable backend " + reason.format(f"{step} finished runs")
    assert "workflow-old" in hub.runs


@pytest.mark.parametrize("days", [0, -1, MAX_DAYS + 1, "30"])
def test_retention_days_outside_one_to_the_maximum_are_refused(days: Any) -> None:
    with pytest.raises(SettingsError) as info:
        RetentionSettings(days=days)
    assert str(info.value) == f"retention days must be 1..{MAX_DAYS} or None, got {days!r}"


def test_the_maximum_retention_is_accepted_directly_and_from_the_setting() -> None:
    assert RetentionSettings(days=MAX_DAYS).days == MAX_DAYS
    assert RetentionSettings.from_env({"WORKFLOW_RETENTION_DAYS": str(MAX_DAYS)}).days == MAX_DAYS


def test_a_run_must_be_allowed_at_least_one_batch() -> None:
    with pytest.raises(SettingsError) as info:
        RetentionSettings(days=30, max_batches=0)
    assert str(info.value) == "max_batches must be at least 1, got 0"


def test_retention_settings_are_read_from_the_process_environment_by_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKFLOW_RETENTION_DAYS", "12")
    monkeypatch.setenv("WORKFLOW_RETENTION_SCHEDULE", "0 0 3 * * *")
    assert RetentionSettings.from_env() == RetentionSettings(days=12, schedule="0 0 3 * * *")
