"""Names, limits and the one environment-driven setting, read once at startup.

The orchestrator never reads the environment (replays must be deterministic): the timeout is
copied into each instance's input when it starts, so changing the setting affects only runs
started afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from workflow.errors import SettingsError

ORCHESTRATOR_NAME = "workflow_orchestrator"
"""Registered name of the orchestrator function (``start_new`` targets it)."""

EVENT_NAME = "Workflow"
"""External event that ends a workflow. The SDK matches event names case-sensitively."""

TIMEOUT_ENV = "WORKFLOW_TIMEOUT_SECONDS"
"""Environment variable: seconds to wait for the event; unset, empty or 0 = wait forever."""

MAX_TIMEOUT_SECONDS = 10 * 366 * 24 * 60 * 60
"""Upper bound (about 10 years): far beyond any use, well below ``datetime`` overflow."""

STOP_CONFIRM_SECONDS = 30.0
"""How long a stop request waits to learn whether its event ended the workflow. Well within the
HTTP trigger's 230 s limit; past it the stop is answered 202 with ``"confirmed": false``."""


ROUTE_PARAMETER = "input"
"""Name of the route segment holding the business key; every route below uses it."""


def route(action: str) -> str:
    """The HTTP route of an action on one key, e.g. ``route("start") == "start/{input}"``."""
    return f"{action}/{{{ROUTE_PARAMETER}}}"


def check_timeout(value: object, name: str = "timeout_seconds") -> int | None:
    """The timeout rule, written once (settings, environment and orchestration input use it).

    Returns ``None`` (wait forever) for ``None`` or ``0``, else ``value`` itself.

    Raises:
        SettingsError: ``value`` is not a whole number of seconds in ``0..MAX_TIMEOUT_SECONDS``
            (a bool, a float or text is not); the message names ``name`` and the rule.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIMEOUT_SECONDS:
        raise SettingsError(
            f"{name} must be a whole number of seconds between 0 and {MAX_TIMEOUT_SECONDS} "
            f"(empty or 0 = wait forever); got {value!r}")
    return value or None


@dataclass(frozen=True)
class Settings:
    """Configuration the app runs with; tests build it directly.

    Guarantees: ``timeout_seconds`` is ``None`` (wait forever; ``0`` is normalised to it) or an
    int in ``1..MAX_TIMEOUT_SECONDS``; ``stop_confirm_seconds`` is positive.

    Raises:
        SettingsError: a value breaks those rules.
    """

    timeout_seconds: int | None = None
    stop_confirm_seconds: float = STOP_CONFIRM_SECONDS

    def __post_init__(self) -> None:
        if not self.stop_confirm_seconds > 0:
            raise SettingsError(f"stop_confirm_seconds must be positive, got {self.stop_confirm_seconds!r}")
        object.__setattr__(self, "timeout_seconds", check_timeout(self.timeout_seconds))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings from ``environ`` (default ``os.environ``).

        Raises:
            SettingsError: ``WORKFLOW_TIMEOUT_SECONDS`` is set but is not a whole number in
                ``0..MAX_TIMEOUT_SECONDS``; the message names the variable and the rule.
        """
        env = os.environ if environ is None else environ
        return cls(timeout_seconds=parse_timeout(env.get(TIMEOUT_ENV)))


def parse_timeout(raw: str | None) -> int | None:
    """Parse the timeout variable: ``None``/empty/``0`` -> ``None`` (wait forever).

    Raises:
        SettingsError: not a whole number of seconds, negative, or above the maximum.
    """
    text = (raw or "").strip()
    if text == "":
        return None
    # isdecimal rejects signs, decimal points and exponents that int() or float() would accept;
    # such text goes to the rule as text, which it refuses with the rule's message.
    value: object = int(text) if text.isascii() and text.isdecimal() else text
    return check_timeout(value, TIMEOUT_ENV)
