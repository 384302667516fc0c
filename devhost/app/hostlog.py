"""Logs like the Functions host's: its categories, ``host.json`` levels and invocation lines.

Every function invocation logs, in category ``Function.<name>`` (the host's wording)::

    Executing 'Functions.<name>' (Reason='<why>', Id=<invocation id>)
    Executed 'Functions.<name>' (Succeeded, Id=<invocation id>, Duration=<n>ms)

The reason is the host's: ``This function was programmatically called via the host APIs.`` for
HTTP triggers, ``(null)`` for orchestrator and activity triggers. A failure is one Error record,
``Executed ... (Failed, ...)`` followed by the exception type, message, the user's own frames
(:mod:`devhost.app.failures`) and, for Durable functions, the instance id.

Orchestrator episodes: the host logs one pair per episode. An episode that is a *pure replay*
(the orchestrator replayed and is waiting exactly as before: nothing scheduled, no status or
custom status change, e.g. each completion of a fan-out but the last, or an event nobody waits
for yet) logs its pair at Debug, so fan-outs do not flood an Information log.

Levels (``host.json`` ``logging.logLevel``) are read the way the host's
``Microsoft.Extensions.Logging`` rule selector reads them: for a category, the rule whose name
is the longest case-insensitive prefix of it wins (one ``*`` may stand for any text), ``default``
covers the rest; levels are ``Trace, Debug, Information, Warning, Error, Critical, None``. The
command line's ``--log-level`` replaces them all. Python logger names are the categories, except
that whatever a function's code logs (through any Python logger) is in ``Function.<name>.User``,
as the Python worker reports it. So ``"Function": "Warning"`` hides every Executing/Executed
line and the functions' own Information logs, ``"Function.hello"`` one function's, and
``"devhost"`` devhost's own messages.
"""
from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from devhost.app import failures

HTTP_REASON = "This function was programmatically called via the host APIs."
DURABLE_REASON = "(null)"

TRACE = 5
#: Above CRITICAL: the category logs nothing.
NONE = logging.CRITICAL + 10
LEVELS = {"trace": TRACE, "debug": logging.DEBUG, "information": logging.INFO,
          "info": logging.INFO, "warning": logging.WARNING, "warn": logging.WARNING,
          "error": logging.ERROR, "critical": logging.CRITICAL, "none": NONE}
_HOST_NAMES = "Trace, Debug, Information, Warning, Error, Critical, None"
#: Categories printed as the host prints them (no level or category prefix).
_HOST_CATEGORIES = ("Function.", "Host.", "DurableTask.", "Microsoft.", "Worker.")

logging.addLevelName(TRACE, "TRACE")


def parse_level(text: Any) -> int:
    """A host (``Information``) or Python (``INFO``) level name, case-insensitive.

    Raises: ValueError naming the accepted names.
    """
    level = LEVELS.get(str(text).strip().lower())
    if level is None:
        raise ValueError(f"{text!r} is not a log level (use one of {_HOST_NAMES})")
    return level


@dataclass(frozen=True)
class LogLevels:
    """The level of every category: ``rules`` maps a category prefix (``*`` wildcard allowed)
    to a level; ``default`` covers categories no rule matches."""

    default: int = logging.INFO
    rules: tuple[tuple[str, int], ...] = ()
    _cache: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_host_json(cls, host: Mapping[str, Any], override: str | None = None
                       ) -> LogLevels:
        """The levels ``host.json`` sets (``override``, the command line's, replaces them).

        Raises: ValueError for a level name the host would not accept.
        """
        if override:
            return cls(parse_level(override))
        section = ((host.get("logging") or {}).get("logLevel") or {})
        if not isinstance(section, Mapping):
            raise ValueError("host.json logging.logLevel must be an object")
        default = logging.INFO
        rules = []
        for name, value in section.items():
            try:
                level = parse_level(value)
            except ValueError as exc:
                raise ValueError(f"host.json logging.logLevel.{name}: {exc}") from None
            if name.lower() == "default":
                default = level
            else:
                rules.append((name, level))
        return cls(default, tuple(rules))

    def level_for(self, category: str) -> int:
        """The level of ``category``: the longest matching rule's, else ``default``."""
        level = self._cache.get(category)
        if level is None:
            level, best = self.default, -1
            lowered = category.lower()
            for name, rule_level in self.rules:
                prefix, star, suffix = name.lower().partition("*")
                if star and (not lowered.startswith(prefix) or not lowered.endswith(suffix)
                             or len(lowered) < len(prefix) + len(suffix)):
                    continue
                if not star and not lowered.startswith(prefix):
                    continue
                # Later rules win ties, as in the host's rule selector.
                if len(name) >= best:
                    level, best = rule_level, len(name)
            self._cache[category] = level
        return level

    @property
    def lowest(self) -> int:
        return min([self.default, *(level for _, level in self.rules)])


_levels = LogLevels()
_function_loggers: dict[str, logging.Logger] = {}


#: Per thread: the records an orchestrator episode's code logged while its Executing line is
#: deferred (None: not holding).
_held = threading.local()
_handler: _HostHandler | None = None


class _HostHandler(logging.StreamHandler):
    """Writes records; while an episode runs on this thread, holds them so that they come out
    between its Executing and Executed lines, as on the host."""

    def emit(self, record: logging.LogRecord) -> None:
        held = getattr(_held, "records", None)
        if held is not None and not record.name.startswith("devhost"):
            held.append(record)
        else:
            super().emit(record)

    def write_line(self, created: float, message: str) -> None:
        """Write one of the host's own lines (Executing/Executed) as the formatter would, with
        no Python record: on the host these lines never reach the worker's Python handlers,
        and a record costs several times the line (record, stack walk, filters, formatter)."""
        line = f"[{_utc_second(int(created))}.{int((created - int(created)) * 1000):03d}Z] " \
               f"{message}{self.terminator}"
        with self.lock:  # type: ignore[union-attr]  # set by Handler.__init__
            try:
                self.stream.write(line)
                self.stream.flush()
            except (OSError, ValueError):
                pass  # a closed console must not fail the function (as StreamHandler.emit)


def _hold() -> None:
    _release()  # an episode that never finished (a devhost error) must not keep its records
    _held.records = []


def _release() -> None:
    records, _held.records = getattr(_held, "records", None), None
    if records and _handler is not None:
        for record in records:
            _handler.emit(record)


#: The function whose code runs in this context (its task, or a thread it was handed to with
#: :func:`in_context`): what it logs is in category ``Function.<name>.User``.
_running: contextvars.ContextVar[str | None] = contextvars.ContextVar("devhost_function",
                                                                     default=None)


def category(record: logging.LogRecord) -> str:
    """The host category of a record: ``Function.<name>.User`` for what a function's code
    logs through any Python logger (as the Python worker reports it), else the logger name."""
    found = getattr(record, "category", None)
    if found is None:
        running = _running.get()
        found = record.name
        if running is not None and not found.startswith(_HOST_CATEGORIES) \
                and not found.startswith("devhost"):
            found = f"Function.{running}.User"
        record.category = found
    return found


def in_context(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` to run in a thread pool, seeing the caller's running function (thread pools do
    not carry context variables over)."""
    return functools.partial(contextvars.copy_context().run, fn)


class _CategoryFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= _levels.level_for(category(record))


@functools.lru_cache(maxsize=64)
def _utc_second(second: int) -> str:
    """``second`` (epoch) as ISO 8601 UTC; cached, since a busy log writes many lines in each."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


class HostFormatter(logging.Formatter):
    """``[<UTC time>Z] <message>`` like Core Tools; records of other categories (devhost's own,
    libraries') also name their category and level."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return f"{_utc_second(int(record.created))}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        stamp = self.formatTime(record)
        if record.name == "root" or category(record).startswith(_HOST_CATEGORIES):
            return f"[{stamp}] {text}"
        return f"[{stamp}] {record.name} {record.levelname}: {text}"


def read_host_json(directory: str) -> dict[str, Any]:
    """``<directory>/host.json`` parsed, or ``{}`` when it is missing or not JSON (the app
    loader reports a broken host.json)."""
    try:
        with open(os.path.join(directory, "host.json"), encoding="utf-8-sig") as fh:
            host = json.load(fh)
    except (OSError, ValueError):
        return {}
    return host if isinstance(host, dict) else {}


def configure(levels: LogLevels, stream: Any = None) -> None:
    """Send every log record through one handler that applies ``levels`` per category."""
    global _levels, _handler
    _levels = levels
    handler = _handler = _HostHandler(stream or sys.stderr)
    handler.setFormatter(HostFormatter())
    handler.addFilter(_CategoryFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    # Records below every rule are never even created.
    root.setLevel(min(levels.lowest, logging.CRITICAL))
    for logger in _function_loggers.values():
        logger.setLevel(levels.level_for(logger.name))


def function_logger(name: str) -> logging.Logger:
    """The logger of category ``Function.<name>``, its level set from the rules (so a disabled
    line costs one comparison)."""
    logger = _function_loggers.get(name)
    if logger is None:
        # setLevel clears every logger's cache: once per function, never per invocation.
        logger = logging.getLogger(f"Function.{name}")
        logger.setLevel(_levels.level_for(logger.name))
        _function_loggers[name] = logger
    return logger


class Invocation:
    """One function invocation's Executing/Executed lines.

    ``defer``: log Executing only when the outcome is known (an orchestrator episode learns
    only at its end whether it was a pure replay, logged at Debug). The deferred line carries
    the time the invocation began, but is written after what the function itself logged.
    A deferred invocation may be :meth:`detach`-ed from its thread when the function returns,
    and its lines written later by another thread (the engine logs an episode once its commit
    is durable; the episode was computed on an orchestrator thread).
    """

    __slots__ = ("name", "reason", "instance_id", "logger", "_id", "_began", "_deferred",
                 "_began_wall", "_outer", "_detached", "_ended")

    def __init__(self, name: str, reason: str, instance_id: str | None = None, *,
                 defer: bool = False) -> None:
        self.name, self.reason, self.instance_id = name, reason, instance_id
        self.logger = function_logger(name)
        self._id: str | None = None
        self._began = time.perf_counter()
        self._deferred = defer
        self._began_wall = time.time() if defer else 0.0
        self._outer = _running.get()
        self._detached: list[logging.LogRecord] | None = None
        self._ended: float | None = None
        _running.set(name)
        if defer:
            _hold()
        else:
            self._executing(logging.INFO)

    @property
    def id(self) -> str:
        """The invocation id (a UUID, made when first needed: most invocations of a quiet
        log never show it)."""
        if self._id is None:
            self._id = str(uuid.uuid4())
        return self._id

    def _executing(self, level: int) -> None:
        if not self.logger.isEnabledFor(level):
            return
        self._line(level, "Executing 'Functions.%s' (Reason='%s', Id=%s)",
                   (self.name, self.reason, self.id),
                   self._began_wall if self._deferred else None)

    def _line(self, level: int, msg: str, args: tuple[Any, ...],
              created: float | None = None) -> None:
        """Log one of this invocation's lines (its level already checked). Once devhost has
        configured the console (:func:`configure`) the line is written straight to it
        (:meth:`_HostHandler.write_line`); otherwise (devhost run in-process, as by
        :mod:`devhost.testing`) it is a record of category ``Function.<name>``."""
        handler = _handler
        if handler is not None and getattr(_held, "records", None) is None:
            handler.write_line(time.time() if created is None else created, msg % args)
            return
        # makeRecord, not Logger.log: the stack walk for a caller these lines never show.
        record = self.logger.makeRecord(self.logger.name, level, __file__, 0, msg, args, None)
        if created is not None:
            record.created = created
            record.msecs = (created - int(created)) * 1000
        self.logger.handle(record)

    def detach(self) -> None:
        """The function returned: stop holding this thread's records (they stay with the
        invocation, written with its lines by :meth:`succeeded` or :meth:`failed` on any
        thread), end the function's context, and fix the duration. Idempotent."""
        if self._ended is not None:
            return
        self._ended = time.perf_counter()
        _running.set(self._outer)
        if self._deferred:
            self._detached, _held.records = getattr(_held, "records", None) or [], None

    def _finish_deferred(self, level: int) -> None:
        """Executing, then what the episode logged meanwhile (held until now)."""
        records: list[logging.LogRecord] | None
        if self._detached is not None:
            records, self._detached = self._detached, []
        else:
            records, _held.records = getattr(_held, "records", None), None
        self._executing(level)
        if records and _handler is not None:
            for record in records:
                _handler.emit(record)

    def _duration(self) -> int:
        ended = time.perf_counter() if self._ended is None else self._ended
        return round((ended - self._began) * 1000)

    def succeeded(self, quiet: bool = False) -> None:
        """Log ``Executed (Succeeded)``; ``quiet`` (a pure replay) logs the pair at Debug."""
        if self._ended is None:
            _running.set(self._outer)
        level = logging.DEBUG if quiet else logging.INFO
        if self._deferred:
            self._finish_deferred(level)
        if self.logger.isEnabledFor(level):
            self._line(level, "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
                       (self.name, self.id, self._duration()))

    def failed(self, exc: BaseException | None = None, message: str | None = None) -> None:
        """Log the failure once, at Error: ``exc`` (the user's exception: type, message, the
        user's frames) or, for a failure that is not a user exception, ``message``."""
        if self._ended is None:
            _running.set(self._outer)
        if self._deferred:
            self._finish_deferred(logging.INFO)
        if not self.logger.isEnabledFor(logging.ERROR):
            return
        where = f" (instance '{self.instance_id}')" if self.instance_id else ""
        if exc is not None:
            detail = failures.host_text(exc).rstrip("\n")
        else:
            detail = f"Result: Failure\nException: {message}"
        self.logger.error(
            "Executed 'Functions.%s' (Failed, Id=%s, Duration=%dms)\n"
            "Exception while executing function: Functions.%s%s. %s",
            self.name, self.id, self._duration(), self.name, where, detail)
