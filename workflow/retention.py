"""Scheduled retention: purge finished runs older than ``WORKFLOW_RETENTION_DAYS``.

A run is purged when it is finished (Completed, Failed or Terminated) and was created more than
the retention period ago (creation time is Durable's own purge criterion, the only one its purge
API filters on). Live runs are never touched. After a purge, ``check`` of that key answers 404,
exactly as for a key that was never started, and a new start begins a fresh run.

This module is the adapter for the two Durable client calls retention needs; like ``lookup`` it
translates the SDK's bare exceptions once, here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import aiohttp
from azure.durable_functions.models import OrchestrationRuntimeStatus
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

from workflow.errors import BackendError, BackendUnavailable, SettingsError
from workflow.inputs import INSTANCE_ID_PREFIX

logger = logging.getLogger(__name__)

DAYS_ENV = "WORKFLOW_RETENTION_DAYS"
"""App setting: keep finished runs this many days; unset, empty or 0 keeps everything."""

SCHEDULE_ENV = "WORKFLOW_RETENTION_SCHEDULE"
"""App setting: when the purge runs (six-field NCRONTAB, UTC on Linux plans)."""

DEFAULT_SCHEDULE = "0 30 2 * * *"
"""Once a day, at 02:30 UTC."""

MAX_DAYS = 36600
"""Upper bound (about 100 years); keeps the cutoff far from ``datetime`` underflow."""

BATCH_SIZE = 100
"""Runs per batch: the host's status-query page size (the SDK reads only the first page)."""

MAX_BATCHES = 50
"""Batches per timer run, so one run is bounded (5,000 purges); the next run goes on."""

FINISHED = (
    OrchestrationRuntimeStatus.Completed,
    OrchestrationRuntimeStatus.Failed,
    OrchestrationRuntimeStatus.Terminated,
)
"""The runtime states that are purged; every other state is a live run."""

_TIMESPAN = re.compile(r"(\d+\.)?\d{1,2}:\d{1,2}(:\d{1,2}(\.\d{1,7})?)?")

_CONNECTION_ERRORS = (aiohttp.ClientConnectionError, asyncio.TimeoutError, OSError)


@dataclass(frozen=True)
class RetentionSettings:
    """Retention configuration; tests build it directly.

    Guarantees: ``days`` is None (keep everything) or in ``1..MAX_DAYS``; ``max_batches`` >= 1.
    """

    days: int | None = None
    schedule: str = DEFAULT_SCHEDULE
    max_batches: int = MAX_BATCHES

    def __post_init__(self) -> None:
        if self.days is not None and not (isinstance(self.days, int) and 1 <= self.days <= MAX_DAYS):
            raise SettingsError(f"retention days must be 1..{MAX_DAYS} or None, got {self.days!r}")
        if self.max_batches < 1:
            raise SettingsError(f"max_batches must be at least 1, got {self.max_batches}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetentionSettings:
        """Read ``WORKFLOW_RETENTION_DAYS`` and ``WORKFLOW_RETENTION_SCHEDULE``.

        Raises:
            SettingsError: the days are not a whole number in ``0..MAX_DAYS``.
        """
        env = os.environ if environ is None else environ
        text = (env.get(DAYS_ENV) or "").strip()
        days: int | None = None
        if text:
            if not (text.isascii() and text.isdecimal()) or int(text) > MAX_DAYS:
                raise SettingsError(f"{DAYS_ENV} must be a whole number of days between 0 and "
                                    f"{MAX_DAYS} (empty or 0 = keep everything); got {text!r}")
            days = int(text) or None
        schedule = " ".join((env.get(SCHEDULE_ENV) or "").split()) or DEFAULT_SCHEDULE
        # The host parses the schedule when it indexes the function; a malformed one would
        # silently leave retention off, so refuse the obvious mistakes (a five-field crontab).
        if len(schedule.split()) != 6 and not _TIMESPAN.fullmatch(schedule):
            raise SettingsError(
                f"{SCHEDULE_ENV} must be a six-field NCRONTAB expression (second minute hour "
                f"day month day-of-week, e.g. {DEFAULT_SCHEDULE!r}) or a TimeSpan hh:mm:ss; "
                f"got {schedule!r}")
        return cls(days=days, schedule=schedule)


@dataclass(frozen=True)
class PurgeReport:
    """What one retention run did. ``complete`` is False when it stopped at ``max_batches``
    with more to purge (the next run goes on)."""

    purged: int
    batches: int
    cutoff: datetime | None
    complete: bool


class RetentionClient(Protocol):
    """The part of ``DurableOrchestrationClient`` retention uses."""

    async def get_status_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: list[OrchestrationRuntimeStatus] | None = None,
        instance_id_prefix: str | None = None,
    ) -> list[DurableOrchestrationStatus]: ...

    async def purge_instance_history_by(
        self,
        created_time_from: datetime | None = None,
        created_time_to: datetime | None = None,
        runtime_status: list[OrchestrationRuntimeStatus] | None = None,
    ) -> Any: ...


async def purge_expired(client: RetentionClient, settings: RetentionSettings,
                        now: datetime) -> PurgeReport:
    """Purge this app's finished runs created before ``now - settings.days``, in batches.

    Each batch lists up to ``BATCH_SIZE`` such runs (instance ids with the app's prefix) and
    purges them with one conditional purge: finished runs created in the batch's creation-time
    window, before the cutoff. The purge is conditional on state and creation time in the
    backend, so a key started again after the listing (a new run, created now) is never purged.

    Guarantees: never purges a live run or a run created at or after the cutoff; stops after
    ``settings.max_batches`` batches, or when a batch purges nothing.

    Raises:
        BackendUnavailable, BackendError: the backend failed; the next run retries.
    """
    if settings.days is None:
        return PurgeReport(0, 0, None, True)
    cutoff = now - timedelta(days=settings.days)
    purged = batches = 0
    while batches < settings.max_batches:
        page = await _call(client.get_status_by(
            created_time_to=cutoff, runtime_status=list(FINISHED),
            instance_id_prefix=INSTANCE_ID_PREFIX), "listing finished runs")
        created = [s.created_time for s in page if _purgeable(s, cutoff)]
        if not created:
            return PurgeReport(purged, batches, cutoff, True)
        batches += 1
        # Status times have whole seconds; the run's stored time may be later in that second.
        # The window ends just before the cutoff: a backend whose ``createdTimeTo`` is inclusive
        # must not purge a run created at the cutoff itself.
        window_end = min(max(created) + timedelta(seconds=1), cutoff - timedelta(microseconds=1))
        result = await _call(client.purge_instance_history_by(
            created_time_from=min(created), created_time_to=window_end,
            runtime_status=list(FINISHED)), "purging finished runs")
        deleted = int(getattr(result, "instances_deleted", 0) or 0)
        purged += deleted
        logger.info("retention batch %d purged %d finished run(s) created before %s",
                    batches, deleted, cutoff.isoformat())
        if deleted == 0:
            return PurgeReport(purged, batches, cutoff, True)
    return PurgeReport(purged, batches, cutoff, False)


async def run(client: RetentionClient, settings: RetentionSettings, now: datetime) -> PurgeReport:
    """The timer's entry point: purge, then log how many runs were purged."""
    report = await purge_expired(client, settings, now)
    if report.cutoff is None:
        logger.info("retention is off (%s unset or 0): nothing purged", DAYS_ENV)
    else:
        logger.info("retention purged %d finished run(s) created before %s in %d batch(es)%s",
                    report.purged, report.cutoff.isoformat(), report.batches,
                    "" if report.complete else "; more remain for the next run")
    return report


def _purgeable(status: DurableOrchestrationStatus, cutoff: datetime) -> bool:
    """Re-check what the backend's filter promised: a listing bug must never purge a live run."""
    runtime = status.runtime_status
    return (runtime in FINISHED and status.created_time is not None
            and status.created_time < cutoff
            and str(status.instance_id or "").startswith(INSTANCE_ID_PREFIX))


async def _call(operation: Any, what: str) -> Any:
    try:
        return await operation
    except _CONNECTION_ERRORS as exc:
        raise BackendUnavailable(f"durable backend unavailable while {what}: {exc}") from exc
    except Exception as exc:
        raise BackendError(f"durable backend error while {what}: {exc}") from exc
