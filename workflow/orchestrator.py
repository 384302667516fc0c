"""The workflow orchestrator: wait for the ``Workflow`` event, optionally racing a timeout.

Pure and deterministic: the generator is replayed from the start on every episode, so it reads
time only from ``context.current_utc_datetime``, settings only from its input, and logs only
when the episode is not a replay.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import azure.durable_functions as df

from workflow.settings import EVENT_NAME, MAX_TIMEOUT_SECONDS

logger = logging.getLogger(__name__)

OUTCOME_STOPPED = "stopped"
OUTCOME_TIMED_OUT = "timed_out"


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
        timeout = raw.get("timeoutSeconds")
        if timeout is not None and (
            isinstance(timeout, bool)
            or not isinstance(timeout, int)
            or not 0 <= timeout <= MAX_TIMEOUT_SECONDS
        ):
            raise ValueError(f"timeoutSeconds must be null or 0..{MAX_TIMEOUT_SECONDS}, got {timeout!r}")
        return cls(key=raw["key"], timeout_seconds=timeout or None)


def workflow_orchestrator(
    context: df.DurableOrchestrationContext,
) -> Generator[Any, Any, dict[str, Any]]:
    """Wait once for the ``Workflow`` event, or until the timeout from the input elapses.

    Guarantees:
        - Output is ``{"outcome": "stopped", "event": <payload>}`` or ``{"outcome": "timed_out"}``;
          exactly one, even when the event and the timer land in the same episode.
        - ``event`` equals the JSON the caller sent to the stop endpoint (see
          ``normalize_event_payload``).
        - An event raised before the orchestrator first ran is not lost (the SDK buffers it).
        - The event is awaited once per instance: SDK bug #507 would hand a buffered event to
          every later wait for the same name.
        - When the event wins, the timer is cancelled. Timeouts over the backend's 6-day timer
          limit work because the SDK splits them (host schema V3 settings).
    Raises:
        ValueError: the input is malformed (the instance fails with that message).
    """
    request = WorkflowInput.from_json(context.get_input(expected_type=dict))
    deadline = (
        None
        if request.timeout_seconds is None
        else context.current_utc_datetime + timedelta(seconds=request.timeout_seconds)
    )
    context.set_custom_status({"waitingFor": EVENT_NAME, "until": _iso(deadline)})
    if not context.is_replaying:
        logger.info("workflow %s waiting for %s until %s", request.key, EVENT_NAME, _iso(deadline) or "forever")

    event = context.wait_for_external_event(EVENT_NAME)
    if deadline is None:
        payload = yield event
        output = {"outcome": OUTCOME_STOPPED, "event": normalize_event_payload(payload)}
    else:
        timer = context.create_timer(deadline)
        winner = yield context.task_any([event, timer])
        if winner == event:
            # A pending timer would otherwise keep a durable timer message alive for up to the
            # whole timeout; the host drops it once it sees isCanceled.
            if not timer.is_completed:
                timer.cancel()
            output = {"outcome": OUTCOME_STOPPED, "event": normalize_event_payload(event.result)}
        else:
            output = {"outcome": OUTCOME_TIMED_OUT}

    context.set_custom_status({"waitingFor": None, "outcome": output["outcome"]})
    if not context.is_replaying:
        logger.info("workflow %s finished: %s", request.key, output["outcome"])
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


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat() + "Z"
