"""How long a function invocation may run (``functionTimeout``) and how a stuck one is ended.

On the host, user code runs in the language worker (the Python worker's thread pool for sync
functions), HTTP is served by the host process, and an invocation that runs past
``functionTimeout`` is cancelled: WebJobs' ``FunctionExecutor`` logs ``Timeout value of ...
exceeded by function ...`` and the host restarts the worker process that runs it
(azure-functions-host ``WebScriptHostExceptionHandler.OnTimeoutExceptionAsync``). devhost runs
each orchestrator episode on a thread of its own pool for the same reason (see
:mod:`devhost.core.engine`); this module holds the setting and the means to end such a thread.

The setting (azure-functions-host ``ScriptJobHostOptionsSetup``): ``functionTimeout`` in
host.json is a .NET TimeSpan (``"00:05:00"``, ``"1.00:00:00"``). Unset, it is 30 minutes
(``DefaultFunctionTimeout``) everywhere but the Windows Consumption plan (5 minutes,
``DefaultFunctionTimeoutDynamic``): Core Tools, and so devhost, use 30 minutes. ``"-1"`` means
no limit (dedicated plans). A value under one second is refused, as the host refuses it.

A Python thread cannot be killed. :func:`interrupt` raises :class:`FunctionTimeout` in it (the
way a worker restart ends the code): that ends a loop of Python code at its next instruction,
but not a thread blocked in C (a ``time.sleep``, a socket read) until that call returns, nor
code that catches ``BaseException``. Such a thread is abandoned; its result is never used.
"""
from __future__ import annotations

import ctypes
import re
import threading
from typing import Any, Callable

#: ``ScriptJobHostOptionsSetup.DefaultFunctionTimeout`` (every plan but Windows Consumption).
DEFAULT_FUNCTION_TIMEOUT = 30 * 60.0
#: ``ScriptJobHostOptionsSetup.MinFunctionTimeout``.
MIN_FUNCTION_TIMEOUT = 1.0
_TIMESPAN = re.compile(r"^(-)?(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?$")


class FunctionTimeout(BaseException):
    """Raised in a thread whose invocation ran past ``functionTimeout``. A BaseException, so
    the SDK's and most users' ``except Exception`` let it through and the thread ends."""


class FunctionTimeoutException(Exception):
    """An invocation ran past ``functionTimeout``; the message is WebJobs'
    ``FunctionTimeoutException`` text (``FunctionExecutor``)."""

    def __init__(self, function: str, seconds: float) -> None:
        super().__init__(f"Timeout value of {format_timespan(seconds)} was exceeded by "
                         f"function: Functions.{function}")


class Tracked:
    """A call that records the thread running it, so that it can be interrupted there (and
    only while it runs: never the pool's own code after it returned)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self._lock = threading.Lock()
        self._thread: int | None = None

    def __call__(self) -> Any:
        with self._lock:
            self._thread = threading.get_ident()
        try:
            return self.fn()
        finally:
            with self._lock:
                self._thread = None

    def interrupt(self) -> bool:
        """:func:`interrupt` its thread if the call is still running; whether it was."""
        with self._lock:
            return self._thread is not None and interrupt(self._thread)


def parse_timespan(text: str) -> float:
    """Seconds of a .NET TimeSpan text (``[-][d.]hh:mm[:ss[.fffffff]]`` or whole days ``d``).

    Raises: ValueError for anything else.
    """
    text = str(text).strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text) * 86400.0
    match = _TIMESPAN.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a TimeSpan (use hh:mm:ss, e.g. \"00:05:00\")")
    sign, days, hours, minutes, seconds, fraction = match.groups()
    value = (int(days or 0) * 86400 + int(hours) * 3600 + int(minutes) * 60
             + int(seconds or 0) + (float(f"0.{fraction}") if fraction else 0.0))
    return -value if sign else value


def format_timespan(seconds: float) -> str:
    """``hh:mm:ss`` as .NET prints a TimeSpan (the host's timeout message shows it so)."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    return f"{days}.{text}" if days else text


def function_timeout(host: dict[str, Any] | None) -> float | None:
    """The app's ``functionTimeout`` in seconds (None: no limit), read as the host reads it.

    Raises: ValueError for a malformed value or one under a second.
    """
    raw = (host or {}).get("functionTimeout")
    if raw is None:
        return DEFAULT_FUNCTION_TIMEOUT
    seconds = parse_timespan(raw)
    if seconds == -86400.0:
        return None  # "-1": no limit
    if seconds < MIN_FUNCTION_TIMEOUT:
        raise ValueError(f"functionTimeout must be at least 00:00:01, not {raw!r}")
    return seconds


def interrupt(thread_id: int) -> bool:
    """Raise :class:`FunctionTimeout` in the thread ``thread_id`` at its next Python
    instruction (CPython's ``PyThreadState_SetAsyncExc``). Returns whether the thread exists."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id),
                                                      ctypes.py_object(FunctionTimeout))
    if done > 1:  # cannot happen for one id; undo as the C API asks
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
        return False
    return done == 1
