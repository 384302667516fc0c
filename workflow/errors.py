"""Domain exceptions.

Everything below ``function_app`` raises only these; ``responses.ERROR_STATUS`` maps each one
to exactly one HTTP status code, and ``lookup`` is the only place that turns the SDK's bare
``Exception``s into them. The root class and the rejections of bad input live one floor down, in
``rejections`` (``inputs`` raises them), and are re-exported here; the exceptions below carry a
key or a run's status, so this module sits above ``inputs`` and ``status``.
"""

from __future__ import annotations

from workflow.inputs import WorkflowKey
from workflow.rejections import (
    InvalidKey,
    InvalidPayload,
    PayloadTooLarge,
    SettingsError,
    WorkflowError,
)
from workflow.status import WorkflowStatus

__all__ = [
    "AlreadyFinished", "AlreadyRunning", "BackendError", "BackendUnavailable", "InvalidKey",
    "InvalidPayload", "NotFound", "PayloadTooLarge", "SettingsError", "StopConflict", "WorkflowError",
]


class NotFound(WorkflowError):
    """No workflow was ever started for this key."""

    def __init__(self, key: WorkflowKey) -> None:
        super().__init__(f"no workflow was started for key {key.value!r}")
        self.key = key


class AlreadyRunning(WorkflowError):
    """A workflow for this key is still active, so a second one must not start."""

    def __init__(self, status: WorkflowStatus) -> None:
        super().__init__(
            f"a workflow for key {status.key.value!r} is already {status.runtime_status}"
        )
        self.status = status


class AlreadyFinished(WorkflowError):
    """The workflow for this key has finished, so it can no longer receive the event.

    ``status`` is set when the run was seen finishing for another reason (its timeout) while
    this request's event was on its way; it may still be running steps after the wait.
    """

    def __init__(self, key: WorkflowKey, status: WorkflowStatus | None = None) -> None:
        if status is not None and status.is_active:
            # Steps after the wait still run: the run is not finished, but no longer waits.
            message = (f"the workflow for key {key.value!r} no longer waits for the event: its "
                       "timeout ended the wait first; start it again once the run has finished")
        else:
            message = (f"the workflow for key {key.value!r} has already finished "
                       "(completed, failed or terminated); start it again to run a new one")
        super().__init__(message)
        self.key = key
        self.status = status


class BackendError(WorkflowError):
    """The durable backend answered, but not in a way the SDK documents (a host-side failure)."""


class BackendUnavailable(WorkflowError):
    """The durable backend could not be reached (connection refused, reset or timed out)."""


class StopConflict(WorkflowError):
    """Another stop request's event ended the workflow first; this one changed nothing."""

    def __init__(self, status: WorkflowStatus) -> None:
        super().__init__(
            f"another stop request ended the workflow for key {status.key.value!r} first; "
            "this request's event was not used"
        )
        self.status = status
