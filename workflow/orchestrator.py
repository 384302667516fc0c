"""The workflow orchestrator: wait for the ``Workflow`` event, optionally racing a timeout.

The wait (``wait_for_stop``) records its outcome in the custom status before any later step,
which is what the stop endpoint answers from; steps after the event go in
``workflow_orchestrator``, after the wait.

Pure and deterministic: the generator is replayed from the start on every episode, so it reads
time only from ``context.current_utc_datetime``, settings only from its input, and logs only
when the episode is not a replay.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import azure.durable_functions as df

from workflow.settings import EVENT_NAME, check_timeout
from workflow.status import iso_utc

logger = logging.getLogger(__name__)

OUTCOME_STOPPED = "stopped"
OUTCOME_TIMED_OUT = "timed_out"

_STOP_ID = re.compile(r"[0-9a-f]{32}")


def stop_event(stop_id: str, payload: Any) -> dict[str, Any]:
    """The event data the app's stop endpoint raises: the caller's payload plus the id of the
    request, so that exactly one of several concurrent stops learns that it won."""
    return {"stopId": stop_id, "payload": payload}


def open_stop_event(data: Any) -> tuple[str | None, Any]:
    """``(stop id, payload)`` of event data; data that is not :func:`stop_event`'s shape (an
    event posted straight to the host's webhook) is the payload itself, with no stop id."""
    if isinstance(data, dict) and data.keys() == {"stopId", "payload"} \
            and isinstance(data["stopId"], str) and _STOP_ID.fullmatch(data["stopId"]):
        return data["stopId"], data["payload"]
    return None, data


@dataclass(frozen=True)
class WorkflowInput:
    """The orchestration input written by ``lookup.start``: ``{"key", "timeoutSeconds"}``."""

    key: str
    timeout_seconds: int | None

    @classmethod
    def from_json(cls, raw: Any) -> WorkflowInput:
        """Validate the input. ``timeoutSeconds`` null or 0 means wait forever.

        Raises:
            ValueError: the input does not have the shape above (the run then fails, visibly).
        """
        if not isinstance(raw, dict) or not isinstance(raw.get("key"), str):
            raise ValueError(f'orchestration input must be {{"key": str, "timeoutSeconds": int|null}}, got {raw!r}')
        return cls(key=raw["key"], timeout_seconds=check_timeout(raw.get("timeoutSeconds"), "timeoutSeconds"))


def workflow_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    """Wait once for the ``Workflow`` event, or until the timeout from the input elapses.

    Steps after the event go between the wait and the ``return``, e.g.
    ``yield context.call_activity("notify", output)``: the stop is answered as soon as the wait
    has recorded its outcome (see :func:`wait_for_stop`), so they run while the stop's caller
    already has its answer and ``check`` reports the run ``Running`` until they end.

    Guarantees:
        - Output is ``{"outcome": "stopped", "event": <payload>}`` or ``{"outcome": "timed_out"}``;
          exactly one, even when the event and the timer land in the same episode.
        - ``event`` equals the JSON the caller sent to the stop endpoint (see
          ``normalize_event_payload`` and ``open_stop_event``).
        - Everything :func:`wait_for_stop` guarantees.
    Raises:
        ValueError: the input is malformed (the instance fails with that message).
    """
    request = WorkflowInput.from_json(context.get_input(expected_type=dict))
    output = yield from wait_for_stop(context, request)
    # Your steps after the event go here. The stop has its answer already (the custom status
    # records the outcome); keep ``outcome`` and ``stoppedBy`` in any custom status you set.
    if not context.is_replaying:
        logger.info("workflow %s finished: %s", request.key, output["outcome"])
    return output


def wait_for_stop(
    context: df.DurableOrchestrationContext, request: WorkflowInput,
) -> Generator[Any, Any, dict[str, Any]]:
    """The wait: ``yield from`` it once; it returns the output of the wait's outcome.

    Guarantees:
        - Before it returns, the custom status records the outcome: ``{"waitingFor": null,
          "outcome": "stopped", "stoppedBy": <stop id or null>}`` or ``{"waitingFor": null,
          "outcome": "timed_out"}``. The host stores it with the episode that took the event or
          the timer, before any later step runs, so a stop learns whether its request won
          (``stoppedBy``) while the run goes on; while waiting it is ``{"waitingFor":
          "Workflow", "until": <deadline or null>}``.
        - An event raised before the orchestrator first ran is not lost (the SDK buffers it).
        - The event is awaited once per instance: SDK bug #507 would hand a buffered event to
          every later wait for the same name, and exactly one stop can win.
        - When the event wins, the timer is cancelled. Timeouts over the backend's 6-day timer
          limit work because the SDK splits them (host schema V3 settings).
    """
    deadline = (
        None
        if request.timeout_seconds is None
        else context.current_utc_datetime + timedelta(seconds=request.timeout_seconds)
    )
    context.set_custom_status({"waitingFor": EVENT_NAME, "until": iso_utc(deadline)})
    if not context.is_replaying:
        logger.info("workflow %s waiting for %s until %s", request.key, EVENT_NAME, iso_utc(deadline) or "forever")

    event = context.wait_for_external_event(EVENT_NAME)
    stopped = True
    if deadline is None:
        yield event
    else:
        timer = context.create_timer(deadline)
        winner = yield context.task_any([event, timer])
        stopped = winner == event
        if stopped and not timer.is_completed:
            # A pending timer would otherwise keep a durable timer message alive for up to the
            # whole timeout; the host drops it once it sees isCanceled.
            timer.cancel()
    if stopped:
        stop_id, payload = open_stop_event(normalize_event_payload(event.result))
        output = {"outcome": OUTCOME_STOPPED, "event": payload}
        decided = {"waitingFor": None, "outcome": OUTCOME_STOPPED, "stoppedBy": stop_id}
    else:
        output = {"outcome": OUTCOME_TIMED_OUT}
        decided = {"waitingFor": None, "outcome": OUTCOME_TIMED_OUT}
    context.set_custom_status(decided)
    return output


def normalize_event_payload(payload: Any) -> Any:
    """Undo the Python client's double encoding of event data.

    ``DurableOrchestrationClient.raise_event`` sends ``json.dumps(data)`` as a JSON *string*, so
    the orchestrator receives the text of the JSON rather than the value; a raw HTTP post to the
    host's webhook delivers the parsed value instead. Strings are therefore parsed when they
    hold JSON, and kept as they are otherwise (a raw poster's plain JSON string).
    """
    if not isinstance(payload, str):
        return payload
    try:
        return json.loads(payload)
    except ValueError:
        return payload
