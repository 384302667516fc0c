"""What the app knows about a run: ``WorkflowStatus``, and the one timestamp format it speaks.

A domain value, free of any client type: ``errors`` and ``responses`` use it without depending
on the adapter (``lookup``) that builds it from the SDK's status object.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from azure.durable_functions.models import OrchestrationRuntimeStatus

from workflow.inputs import WorkflowKey

ACTIVE_STATUSES = frozenset(
    {
        OrchestrationRuntimeStatus.Pending,
        OrchestrationRuntimeStatus.Running,
        OrchestrationRuntimeStatus.Suspended,
        OrchestrationRuntimeStatus.ContinuedAsNew,
    }
)
"""States in which the host refuses to start the same instance id again
(``overridableExistingInstanceStates: NonRunningStates``) and still accepts events."""

_ACTIVE_NAMES = frozenset(status.value for status in ACTIVE_STATUSES)


def iso_utc(moment: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, like the host's own status payload; ``None`` stays ``None``.

    A naive ``moment`` is taken as UTC already (the SDK's orchestration clock is UTC).
    """
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.replace(tzinfo=None).isoformat() + "Z"


@dataclass(frozen=True)
class WorkflowStatus:
    """The one instance that belongs to ``key``, as the backend reported it.

    ``runtime_status`` uses Durable's names (``"Running"``, ``"Completed"``, ...); ``run_id``
    tells this run from earlier and later runs of the same key (``None`` when unknown).
    """

    key: WorkflowKey
    instance_id: str
    runtime_status: str
    created_time: datetime | None = None
    last_updated_time: datetime | None = None
    custom_status: Any = None
    output: Any = None
    run_id: str | None = None

    @property
    def is_active(self) -> bool:
        """True while the instance can still receive the event (and blocks a new start)."""
        return self.runtime_status in _ACTIVE_NAMES

    def to_json(self) -> dict[str, Any]:
        """The public JSON shape: no management URLs, no orchestration input."""
        return {
            "input": self.key.value,
            "instanceId": self.instance_id,
            "runtimeStatus": self.runtime_status,
            "createdTime": iso_utc(self.created_time),
            "lastUpdatedTime": iso_utc(self.last_updated_time),
            "customStatus": self.custom_status,
            "output": self.output,
        }
