"""The one adapter over ``DurableOrchestrationClient``.

Every lookup is a point read of the instance id derived from the key (never a listing), and
every bare ``Exception`` the SDK raises is translated here, once, into a domain exception.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp
from azure.durable_functions.models import OrchestrationRuntimeStatus
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus

from workflow.errors import (
    AlreadyFinished,
    AlreadyRunning,
    BackendError,
    BackendUnavailable,
    NotFound,
    StopConflict,
)
from workflow.inputs import WorkflowKey
from workflow.orchestrator import stop_event
from workflow.settings import EVENT_NAME, ORCHESTRATOR_NAME, Settings
from workflow.status import ACTIVE_STATUSES, WorkflowStatus

__all__ = ["ACTIVE_STATUSES", "OrchestrationClient", "WorkflowStatus", "find", "orchestration_input",
           "start", "stop", "raise_stop", "is_decided", "wait_until_decided", "verdict"]

logger = logging.getLogger(__name__)

# DurableOrchestrationClient.raise_event (azure-functions-durable 1.x) turns the host's 404 and
# 410 into a bare Exception whose text is all it keeps: no status code, no type, and a status read
# afterwards could see a newer run. So these exact texts (the SDK's own f-strings) are matched,
# whole; tests/test_lookup.py runs them through the real SDK client, so a changed text fails there.
_RAISE_EVENT_NOT_FOUND = "No instance with ID {} found."
_RAISE_EVENT_GONE = "Instance with ID {} is gone: either completed or failed"

# Polling while a stop waits for its verdict: the first read comes right after yielding once
# (a local host runs the episode that takes the event within that turn), later ones back off from 1 ms to 250 ms to
# spare a remote backend.
_FIRST_POLL_SECONDS = 0.001
_MAX_POLL_SECONDS = 0.25

# What a dead or unreachable host looks like from the SDK's aiohttp transport. OSError covers
# ConnectionRefusedError, aiohttp's connector errors raised below the ClientError layer and
# TimeoutError (asyncio.TimeoutError is that class since Python 3.11).
_CONNECTION_ERRORS = (aiohttp.ClientConnectionError, OSError)


class OrchestrationClient(Protocol):
    """The part of ``DurableOrchestrationClient`` this app uses (the fakes implement it too)."""

    async def start_new(
        self,
        orchestration_function_name: str,
        instance_id: str | None = None,
        client_input: Any | None = None,
        version: str | None = None,
    ) -> str: ...

    async def get_status(
        self,
        instance_id: str,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = False,
    ) -> DurableOrchestrationStatus: ...

    async def raise_event(
        self,
        instance_id: str,
        event_name: str,
        event_data: Any = None,
        task_hub_name: str | None = None,
        connection_name: str | None = None,
    ) -> None: ...


def orchestration_input(key: WorkflowKey, settings: Settings) -> dict[str, Any]:
    """The orchestrator's input: everything it needs, so it never reads the environment, and a
    fresh ``runId`` that tells this run from earlier and later runs of the same key (status
    times have whole-second precision, so they cannot)."""
    return {"key": key.value, "timeoutSeconds": settings.timeout_seconds,
            "runId": uuid.uuid4().hex}


async def find(client: OrchestrationClient, key: WorkflowKey) -> WorkflowStatus | None:
    """Point-read the status of ``key``'s instance.

    Guarantees: ``None`` exactly when no instance with that id exists (the SDK returns a
    *falsy* status object, not ``None``, for an unknown id).

    Raises:
        BackendUnavailable: the host could not be reached.
        BackendError: the host answered with something the SDK does not understand.
    """
    try:
        status = await client.get_status(key.instance_id)
    except _CONNECTION_ERRORS as exc:
        raise BackendUnavailable(f"durable backend unavailable: {_describe(exc)}") from exc
    except Exception as exc:
        raise BackendError(f"durable backend error while reading status: {_describe(exc)}") from exc
    if not status or status.runtime_status is None:
        return None
    return _from_sdk(key, status)


async def start(client: OrchestrationClient, key: WorkflowKey, settings: Settings) -> WorkflowStatus:
    """Start ``key``'s workflow unless one is active; idempotent per key.

    Guarantees: never two active instances for one key. A finished previous run (Completed,
    Failed, Terminated, Canceled) is replaced by a fresh run. Returns the new run's status as
    the host reports a just-created instance: ``Pending``.

    Raises:
        AlreadyRunning: an active instance exists (also when a concurrent start won the race).
        BackendUnavailable, BackendError: as for ``find``, or the host refused the start for
            another reason.
    """
    # No read first: the host refuses to replace a live instance
    # (overridableExistingInstanceStates = NonRunningStates) and replaces a finished one, so a
    # single start_new decides atomically, and only a refused start needs a read.
    try:
        await client.start_new(
            ORCHESTRATOR_NAME,
            instance_id=key.instance_id,
            client_input=orchestration_input(key, settings),
        )
    except _CONNECTION_ERRORS as exc:
        raise BackendUnavailable(f"durable backend unavailable: {_describe(exc)}") from exc
    except Exception as exc:
        # The host rejects a start whose id is already active (a 500 from extension 2.x, 409
        # from newer ones), which the SDK surfaces as a bare Exception; reading the instance is
        # the only reliable way to tell "already running" from a real failure.
        current = await find(client, key)
        if current is not None and current.is_active:
            raise AlreadyRunning(current) from exc
        raise BackendError(f"durable backend refused to start the workflow: {_describe(exc)}") from exc
    logger.info("started workflow %s", key.instance_id)
    return WorkflowStatus(
        key=key,
        instance_id=key.instance_id,
        runtime_status=OrchestrationRuntimeStatus.Pending.value,
    )


async def stop(
    client: OrchestrationClient, key: WorkflowKey, payload: Any, settings: Settings
) -> WorkflowStatus | None:
    """Raise the ``Workflow`` event on ``key``'s instance, then learn whether it ended the wait:
    :func:`raise_stop`, :func:`wait_until_decided`, :func:`verdict`.

    The event carries ``payload`` and a fresh stop id (``orchestrator.stop_event``); the
    orchestrator waits once, so exactly one event wins, and in the episode that takes it the
    run records the winner's id as ``customStatus.stoppedBy`` before any later step
    (``orchestrator.wait_for_stop``). Concurrent stops all reach the host (it accepts every
    event for a live instance), so the run is point-read until that record (or the run's end)
    tells the winner from the losers; steps after the event are not waited for. The host's own
    ``wait_for_completion...`` helper returns only the output, which does not name the winner.

    Returns: the run as it was read when it had taken this request's event: ``Running`` while
    steps after the event go on, ``Completed`` when there are none (the template); ``None`` when
    the run had taken no event after ``settings.stop_confirm_seconds`` (the event is durable and
    will be processed, but whether it wins is not known yet).

    Raises:
        NotFound: no instance exists for ``key``.
        AlreadyFinished: the instance had already finished, or its timeout ended the wait first.
        StopConflict: another stop request's event ended the wait first, or the run was replaced
            by a new run of the key before this request saw its outcome.
        BackendUnavailable, BackendError: as for ``find``.
    """
    stop_id = await raise_stop(client, key, payload)
    decided = await wait_until_decided(client, key, settings.stop_confirm_seconds)
    return None if decided is None else verdict(decided, stop_id)


async def raise_stop(client: OrchestrationClient, key: WorkflowKey, payload: Any) -> str:
    """Raise the ``Workflow`` event carrying ``payload`` and a fresh stop id; return that id.

    Guarantees: when this returns, the host has acknowledged (durably queued) the event.

    Raises:
        NotFound: no instance exists for ``key`` (the host's 404).
        AlreadyFinished: the instance has finished (the host's 410).
        BackendUnavailable, BackendError: as for ``find``, or any other refusal.
    """
    stop_id = uuid.uuid4().hex
    try:
        await client.raise_event(key.instance_id, EVENT_NAME, stop_event(stop_id, payload))
    except _CONNECTION_ERRORS as exc:
        raise BackendUnavailable(f"durable backend unavailable: {_describe(exc)}") from exc
    except Exception as exc:
        message = str(exc)
        if message == _RAISE_EVENT_NOT_FOUND.format(key.instance_id):
            raise NotFound(key) from exc
        if message == _RAISE_EVENT_GONE.format(key.instance_id):
            raise AlreadyFinished(key) from exc
        raise BackendError(f"durable backend refused the event: {_describe(exc)}") from exc
    logger.info("raised %s on workflow %s", EVENT_NAME, key.instance_id)
    return stop_id


def is_decided(status: WorkflowStatus) -> bool:
    """True once the run's wait has an outcome: its custom status names one (the record
    ``orchestrator.wait_for_stop`` writes in the episode that takes the event or the timer), or
    the run is no longer active. A decided run stays decided: the orchestrator waits once and
    every replay takes the same branch."""
    # The host stores the custom status an episode returns when it commits that episode, and a
    # status read shows it while the run is still Running (the out-of-process shim applies each
    # episode's customStatus: Azure/azure-functions-durable-extension OutOfProcOrchestrationShim;
    # MicrosoftDocs azure-docs durable-functions-custom-orchestration-status.md).
    custom = status.custom_status
    return not status.is_active or (isinstance(custom, Mapping) and custom.get("outcome") is not None)


async def wait_until_decided(
    client: OrchestrationClient, key: WorkflowKey, within_seconds: float
) -> WorkflowStatus | None:
    """Point-read ``key``'s run until :func:`is_decided`; ``None`` if it still is not after
    ``within_seconds``. The first read follows the event at once (a local host runs the episode
    within that turn); later ones back off to spare a remote backend.

    Raises:
        NotFound: the instance was purged meanwhile.
        StopConflict: the run seen first has been replaced by a new run of the key (its outcome
            is gone, and the event that was raised did not reach the new run).
        BackendUnavailable, BackendError: as for ``find``.
    """
    deadline = time.monotonic() + within_seconds
    delay = _FIRST_POLL_SECONDS
    await asyncio.sleep(0)
    first_run: str | None = None
    while True:
        status = await find(client, key)
        if status is None:
            raise NotFound(key)
        if first_run is None:
            first_run = status.run_id
        elif status.run_id != first_run:
            raise StopConflict(status)
        if is_decided(status):
            return status
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(delay)
        delay = min(delay * 2, _MAX_POLL_SECONDS)


def verdict(decided: WorkflowStatus, stop_id: str) -> WorkflowStatus:
    """Which request ended ``decided``'s wait: this one (``stop_id``), another stop, or neither.

    Returns: ``decided``, when its ``customStatus.stoppedBy`` is ``stop_id`` (whatever its
    runtime status: ``Running`` while steps after the event go on).

    Raises:
        StopConflict: another stop request's event ended the wait.
        AlreadyFinished: nothing named a stop (its timeout ended the wait, or it failed or was
            terminated); ``status`` carries the run.
    """
    custom = decided.custom_status
    stopped_by = custom.get("stoppedBy") if isinstance(custom, Mapping) else None
    if stopped_by == stop_id:
        return decided
    if stopped_by is not None:
        raise StopConflict(decided)
    raise AlreadyFinished(decided.key, decided)


def _from_sdk(key: WorkflowKey, status: DurableOrchestrationStatus) -> WorkflowStatus:
    runtime_status = status.runtime_status
    return WorkflowStatus(
        run_id=_run_id(status.input_),
        key=key,
        instance_id=status.instance_id or key.instance_id,
        runtime_status=getattr(runtime_status, "value", str(runtime_status)),
        created_time=status.created_time,
        last_updated_time=status.last_updated_time,
        custom_status=status.custom_status,
        output=status.output,
    )


def _run_id(orchestration_input: Any) -> str | None:
    """The ``runId`` of an instance's input: the host returns a Python-started instance's input
    as the JSON text the client sent (a dict from raw HTTP starters); None when absent."""
    if isinstance(orchestration_input, str):
        try:
            orchestration_input = json.loads(orchestration_input)
        except ValueError:
            return None
    if isinstance(orchestration_input, Mapping):
        run_id = orchestration_input.get("runId")
        return run_id if isinstance(run_id, str) else None
    return None


def _describe(exc: BaseException) -> str:
    """A one-line, bounded summary of an SDK failure; drops the host's .NET stack trace."""
    detail: Any = exc.args[0] if len(exc.args) == 1 else str(exc)
    if isinstance(detail, Mapping):
        detail = detail.get("ExceptionMessage") or detail.get("Message") or detail
    text = " ".join(str(detail).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."
