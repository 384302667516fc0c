"""The timer and queue trigger declarations, as indexed from the app, and ``host.json``
``extensions.queues``: what :mod:`devhost.app.loader` builds and the triggers
(:mod:`devhost.triggers.timers`, :mod:`devhost.triggers.queues`) run.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from devhost.app import ncrontab

MIN_POLLING_SECONDS = 0.1


@dataclass(frozen=True)
class QueueFunction:
    """A ``queueTrigger`` function as indexed from the app."""

    name: str
    trigger_param: str
    client_param: str | None
    queue_name: str
    connection: str
    user_function: Callable[..., Any]
    is_async: bool


@dataclass(frozen=True)
class QueueOptions:
    """``host.json`` ``extensions.queues``, with the host's defaults."""

    batch_size: int = 16
    new_batch_threshold: int = 8
    max_polling_interval: float = 60.0
    visibility_timeout: float = 0.0
    max_dequeue_count: int = 5
    message_encoding: str = "base64"

    @classmethod
    def from_host_json(cls, host: Mapping[str, Any] | None) -> QueueOptions:
        """Raises: ValueError naming the option that is out of range or unreadable."""
        section = ((host or {}).get("extensions") or {}).get("queues") or {}
        batch = int(section.get("batchSize", 16))
        if not 1 <= batch <= 32:
            raise ValueError(f"host.json extensions.queues.batchSize must be 1-32, got {batch}")
        threshold = int(section.get("newBatchThreshold", batch // 2))
        encoding = str(section.get("messageEncoding", "base64")).lower()
        if encoding not in ("base64", "none"):
            raise ValueError("host.json extensions.queues.messageEncoding must be 'base64' or "
                             f"'none', got {encoding!r}")
        dequeue = int(section.get("maxDequeueCount", 5))
        if dequeue < 1:
            raise ValueError("host.json extensions.queues.maxDequeueCount must be at least 1")
        return cls(batch_size=batch, new_batch_threshold=max(0, threshold),
                   max_polling_interval=max(MIN_POLLING_SECONDS,
                                            _seconds(section.get("maxPollingInterval", 60000))),
                   visibility_timeout=_seconds(section.get("visibilityTimeout", "00:00:00")),
                   max_dequeue_count=dequeue, message_encoding=encoding)


def _seconds(value: Any) -> float:
    """A host.json interval: a TimeSpan text, or a number of milliseconds (the v1 form)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) / 1000.0
    return ncrontab.parse_timespan(str(value)).total_seconds()


@dataclass(frozen=True)
class TimerFunction:
    """A ``timerTrigger`` function as indexed from the app."""

    name: str
    trigger_param: str
    client_param: str | None
    schedule: str
    run_on_startup: bool
    use_monitor: bool
    user_function: Callable[..., Any]
    is_async: bool
