"""Orchestration runtime statuses, with the groupings the host's rules are written in."""
from __future__ import annotations

import enum


class RuntimeStatus(str, enum.Enum):
    """The status names the Durable HTTP API and the Python SDK use."""

    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    CONTINUED_AS_NEW = "ContinuedAsNew"
    FAILED = "Failed"
    CANCELED = "Canceled"
    TERMINATED = "Terminated"
    SUSPENDED = "Suspended"


#: Statuses in which an instance accepts events, terminate and suspend (anything else: 410).
LIVE = frozenset({RuntimeStatus.PENDING, RuntimeStatus.RUNNING,
                  RuntimeStatus.CONTINUED_AS_NEW, RuntimeStatus.SUSPENDED})
#: Finished statuses; the status API answers 200 for these and 202 for the rest.
TERMINAL = frozenset({RuntimeStatus.COMPLETED, RuntimeStatus.FAILED,
                      RuntimeStatus.CANCELED, RuntimeStatus.TERMINATED})


def overridable_states(setting: str | None) -> frozenset[RuntimeStatus]:
    """Which existing statuses a new start with the same id may replace (host.json
    ``overridableExistingInstanceStates``: ``NonRunningStates`` (default) or ``AnyState``).

    Raises: ValueError for any other value.
    """
    value = (setting or "NonRunningStates").strip().lower()
    if value == "nonrunningstates":
        return TERMINAL
    if value == "anystate":
        return frozenset(RuntimeStatus)
    raise ValueError(f"overridableExistingInstanceStates must be NonRunningStates or AnyState, "
                     f"not {setting!r}")
