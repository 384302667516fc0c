"""Stop a workflow from a Storage queue message: the event-driven door to the same stop.

Contract (docs/api.md's "Stop from a queue" section says the same):
- Queue ``workflow-stop`` on the connection ``AzureWebJobsStorage``. The message, as the host
  hands it over (after decoding the host's ``messageEncoding``, base64 by default), is UTF-8 JSON
  ``{"input": "<key>", "event": <any JSON, optional>}``; other members are ignored.
- The stop is ``lookup.stop``, the one the HTTP ``POST /api/stop/<key>`` uses: same key rules,
  same payload rules (``event`` must be a payload the HTTP stop accepts as its body), same
  "exactly one stop wins". The event's payload is ``event`` (``null`` when absent).
- Outcomes ``stopped`` (the run took this message's event; steps after the event may still
  run), ``not found``, ``already finished``, ``lost to another stop`` and ``raised, not
  confirmed`` (the run had taken no event when the stop stopped waiting; the event is durable)
  complete the message and are logged with the key.
- A bad message (not UTF-8 JSON, not an object, a bad key, a payload the HTTP stop refuses)
  raises :class:`BadStopMessage` after an error log: the host retries it up to
  ``maxDequeueCount`` times, then moves it to ``workflow-stop-poison`` with its text unchanged.
  Poison rather than "complete and log": the producer's message is kept where operators look
  for failed messages and can be re-queued after a fix, instead of living only in a log line.
- A backend failure (unreachable or refusing) propagates the same way, so the host's dequeue
  count and visibility timeout retry it.
"""

from __future__ import annotations

import enum
import json
import logging
from dataclasses import dataclass
from typing import Any

from workflow import lookup
from workflow.errors import AlreadyFinished, InvalidKey, InvalidPayload, NotFound, StopConflict
from workflow.inputs import WorkflowKey, parse_key, parse_payload
from workflow.lookup import OrchestrationClient
from workflow.settings import Settings

logger = logging.getLogger(__name__)

QUEUE_NAME = "workflow-stop"
"""The queue the trigger listens on."""

POISON_QUEUE_NAME = QUEUE_NAME + "-poison"
"""Where the host moves a message after ``maxDequeueCount`` failed deliveries."""

CONNECTION_SETTING = "AzureWebJobsStorage"
"""App setting with the storage connection (the host's own storage account)."""


class Outcome(enum.Enum):
    """What a queued stop did; ``value`` is the logged text."""

    STOPPED = "stopped"
    NOT_FOUND = "not found"
    ALREADY_FINISHED = "already finished"
    LOST = "lost to another stop"
    UNCONFIRMED = "raised, not confirmed"


class BadStopMessage(ValueError):
    """The message can never stop anything: it breaks the message contract; the message says
    which rule. Not a ``WorkflowError``: it never becomes an HTTP answer, it fails the queue
    delivery."""


@dataclass(frozen=True)
class StopMessage:
    """A parsed queue message: the key to stop and the event payload."""

    key: WorkflowKey
    payload: Any


def parse_message(body: bytes) -> StopMessage:
    """Parse a message body (the bytes the trigger hands over).

    Raises:
        BadStopMessage: not UTF-8 JSON, not an object, no string ``input``, a key that breaks
            the key rules, or an ``event`` the HTTP stop would refuse as a body.
    """
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        reason = "it nests too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise BadStopMessage(f"message is not UTF-8 JSON: {reason}") from exc
    if not isinstance(document, dict):
        raise BadStopMessage('message must be a JSON object {"input": "<key>", "event": ...}')
    raw_key = document.get("input")
    if not isinstance(raw_key, str):
        raise BadStopMessage('message must have "input": the key, as a string')
    try:
        key = parse_key(raw_key)
        # The event passes exactly the rules of the HTTP stop's body, by going through them.
        payload = parse_payload(json.dumps(document.get("event")).encode("utf-8"))
    except (InvalidKey, InvalidPayload) as exc:
        raise BadStopMessage(str(exc).replace("request body", "event")) from exc
    except (ValueError, RecursionError) as exc:  # json.dumps of an out-of-range number
        raise BadStopMessage(f"event is not a valid JSON payload: {exc}") from exc
    return StopMessage(key, payload)


async def stop_from_message(body: bytes, client: OrchestrationClient, settings: Settings,
                            message_id: str | None = None) -> Outcome:
    """Stop the run the message names and log the outcome with the key.

    Raises:
        BadStopMessage: see ``parse_message`` (logged as an error first).
        BackendUnavailable, BackendError: the durable backend failed; retry later.
    """
    try:
        message = parse_message(body)
    except BadStopMessage as exc:
        logger.error("queued stop %s refused, it will go to %s once the host gives up: %s",
                     message_id or "", POISON_QUEUE_NAME, exc)
        raise
    try:
        decided = await lookup.stop(client, message.key, message.payload, settings)
        outcome = Outcome.STOPPED if decided is not None else Outcome.UNCONFIRMED
    except NotFound:
        outcome = Outcome.NOT_FOUND
    except AlreadyFinished:
        outcome = Outcome.ALREADY_FINISHED
    except StopConflict:
        outcome = Outcome.LOST
    logger.info("queued stop for key %s: %s", message.key.value, outcome.value)
    return outcome


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
