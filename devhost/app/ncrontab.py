"""Timer-trigger schedules as the Functions host reads them: six-field NCRONTAB or a TimeSpan.

NCRONTAB (the ``NCrontab`` library the host uses, with seconds): ``second minute hour day month
day-of-week``; each field is ``*``, a number, a range ``a-b``, a step ``*/s``, ``a-b/s`` or
``a/s`` (from ``a`` to the field's maximum), or a comma list of these; months and days of the
week may also be named (``Jan``, ``Mon``, three letters or more, any case); Sunday is 0. As in
NCrontab, a time must match *both* the day-of-month and the day-of-week field (cron's "either"
rule does not apply). A TimeSpan schedule (``hh:mm:ss`` or ``d.hh:mm:ss``) fires every interval.

Every time here is UTC: devhost does not read ``WEBSITE_TIME_ZONE``, so there is no daylight
saving time to skip or repeat.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Protocol

_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

# (name, lowest, highest, names or None); names map to lowest + index.
_FIELDS = (
    ("second", 0, 59, None),
    ("minute", 0, 59, None),
    ("hour", 0, 23, None),
    ("day", 1, 31, None),
    ("month", 1, 12, _MONTHS),
    ("day-of-week", 0, 6, _DAYS),
)

# A schedule that matches nothing (``0 0 0 30 2 *``) is detected by searching this far ahead:
# 28 years contain every combination of weekday, month and leap year.
_SEARCH_YEARS = 28

_TIMESPAN = re.compile(r"(?:(\d+)\.)?(\d{1,2}):(\d{1,2})(?::(\d{1,2})(?:\.(\d{1,7}))?)?\Z")


class Schedule(Protocol):
    """When a timer fires next."""

    def next_after(self, moment: datetime) -> datetime | None:
        """The first occurrence strictly after ``moment`` (aware, UTC); None for never."""
        ...


@dataclass(frozen=True)
class CronSchedule:
    """A parsed six-field NCRONTAB expression; build it with :func:`parse`."""

    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]

    def next_after(self, moment: datetime) -> datetime | None:
        """The first matching second strictly after ``moment``; None when none exists (the
        expression names a date that never occurs, such as February 30)."""
        t = moment.astimezone(timezone.utc).replace(microsecond=0) + timedelta(seconds=1)
        limit = t + timedelta(days=366 * _SEARCH_YEARS)
        while t < limit:
            if t.month not in self.months:
                t = _first_of_next_month(t)
            elif t.day not in self.days or _cron_weekday(t) not in self.weekdays:
                t = t.replace(hour=0, minute=0, second=0) + timedelta(days=1)
            elif t.hour not in self.hours:
                t = t.replace(minute=0, second=0) + timedelta(hours=1)
            elif t.minute not in self.minutes:
                t = t.replace(second=0) + timedelta(minutes=1)
            elif t.second not in self.seconds:
                t += timedelta(seconds=1)
            else:
                return t
        return None


@dataclass(frozen=True)
class IntervalSchedule:
    """A TimeSpan schedule: every ``interval`` after the previous occurrence."""

    expression: str
    interval: timedelta

    def next_after(self, moment: datetime) -> datetime | None:
        return moment.astimezone(timezone.utc) + self.interval


def parse(expression: str) -> CronSchedule | IntervalSchedule:
    """Parse a timer trigger's ``schedule`` as the host does: a TimeSpan if it reads as one,
    else six-field NCRONTAB.

    Raises:
        ValueError: the text is neither; the message names the field and the rule it breaks.
    """
    text = expression.strip()
    span = _TIMESPAN.match(text)
    if span:
        interval = _timespan(span, text)
        if interval <= timedelta(0):
            raise ValueError(f"TimeSpan schedule {expression!r} must be longer than zero")
        return IntervalSchedule(text, interval)
    fields = text.split()
    if len(fields) != 6:
        raise ValueError(
            f"schedule {expression!r} has {len(fields)} field(s); an NCRONTAB schedule has six "
            "(second minute hour day month day-of-week), a TimeSpan reads hh:mm:ss")
    values = [_field(raw, *spec) for raw, spec in zip(fields, _FIELDS, strict=True)]
    return CronSchedule(text, *values)


def parse_timespan(text: str) -> timedelta:
    """A .NET TimeSpan text (``hh:mm:ss``, ``d.hh:mm:ss``, optional fraction) as a timedelta.

    Raises: ValueError for anything else (also hours above 23 or minutes/seconds above 59).
    """
    span = _TIMESPAN.match(text.strip())
    if not span:
        raise ValueError(f"{text!r} is not a TimeSpan (hh:mm:ss or d.hh:mm:ss)")
    return _timespan(span, text)


def _timespan(span: re.Match[str], text: str) -> timedelta:
    days, hours, minutes, seconds, fraction = span.groups()
    if int(hours) > 23 or int(minutes) > 59 or int(seconds or 0) > 59:
        raise ValueError(f"TimeSpan {text!r} has hours above 23 or minutes/seconds above 59")
    return timedelta(days=int(days or 0), hours=int(hours), minutes=int(minutes),
                     seconds=int(seconds or 0),
                     microseconds=int((fraction or "0").ljust(7, "0")) / 10)


def _field(raw: str, name: str, low: int, high: int,
           names: tuple[str, ...] | None) -> frozenset[int]:
    chosen: set[int] = set()
    for part in raw.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdecimal() or int(step_text) == 0:
                raise ValueError(f"{name} field {raw!r}: the step after '/' must be a "
                                 "positive whole number")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, name, low, high, names), _value(b, name, low, high, names)
            if first > last:
                raise ValueError(f"{name} field {raw!r}: range {base!r} runs backwards")
        else:
            first = _value(base, name, low, high, names)
            last = high if step_text else first
        chosen.update(range(first, last + 1, step))
    return frozenset(chosen)


def _value(text: str, name: str, low: int, high: int, names: tuple[str, ...] | None) -> int:
    if text.isdecimal() and text.isascii():
        number = int(text)
        if not low <= number <= high:
            raise ValueError(f"{name} {number} is out of range {low}-{high}")
        return number
    lowered = text.lower()
    if names and len(lowered) >= 3:
        for index, known in enumerate(names):
            if lowered.startswith(known) and _full_name_prefix(lowered, known):
                return low + index
    raise ValueError(f"{name} value {text!r} is not a number in {low}-{high}"
                     + (" or a name" if names else ""))


def _full_name_prefix(text: str, known: str) -> bool:
    """``Mon``, ``monday`` and ``MONDAY`` name Monday; ``monx`` does not."""
    full = {"sun": "sunday", "mon": "monday", "tue": "tuesday", "wed": "wednesday",
            "thu": "thursday", "fri": "friday", "sat": "saturday", "jan": "january",
            "feb": "february", "mar": "march", "apr": "april", "jun": "june", "jul": "july",
            "aug": "august", "sep": "september", "oct": "october", "nov": "november",
            "dec": "december", "may": "may"}[known]
    return full.startswith(text)


def _cron_weekday(t: datetime) -> int:
    return (t.weekday() + 1) % 7  # Python: Monday = 0; NCRONTAB: Sunday = 0


def _first_of_next_month(t: datetime) -> datetime:
    year, month = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return t.replace(year=year, month=month, day=1, hour=0, minute=0, second=0)
