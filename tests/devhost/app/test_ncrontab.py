"""NCRONTAB and TimeSpan schedules as the Functions host reads them (all UTC, no DST)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from devhost.app import ncrontab


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)


@pytest.mark.parametrize("expression, after, expected", [
    ("0 30 2 * * *", at(2026, 3, 1, 2, 30, 0), at(2026, 3, 2, 2, 30, 0)),   # strictly after
    ("0 30 2 * * *", at(2026, 3, 1, 2, 29, 59), at(2026, 3, 1, 2, 30, 0)),
    ("*/15 * * * * *", at(2026, 1, 1, 0, 0, 14), at(2026, 1, 1, 0, 0, 15)),
    ("0 0 0 1 1 *", at(2026, 12, 31, 23, 59, 59), at(2027, 1, 1, 0, 0, 0)),  # year rollover
    ("0 0 12 29 2 *", at(2026, 3, 1), at(2028, 2, 29, 12, 0, 0)),            # leap day only
    ("0 0 0 31 * *", at(2026, 4, 1), at(2026, 5, 31)),                        # skips 30-day months
    ("0 0 9 * * Mon-Fri", at(2026, 11, 27, 9, 0, 0), at(2026, 11, 30, 9, 0, 0)),  # Fri -> Mon
    ("0 0 9 * * 0", at(2026, 11, 25), at(2026, 11, 29, 9, 0, 0)),             # 0 is Sunday
    ("0 0 0 13 * Fri", at(2026, 1, 1), at(2026, 2, 13)),                      # both must match
    ("0 5-10/5 * * Jan,JULY *", at(2026, 2, 1), at(2026, 7, 1, 0, 5, 0)),    # names, range step
    ("30 10/20 * * * *", at(2026, 1, 1, 0, 50, 30), at(2026, 1, 1, 1, 10, 30)),  # a/step
    ("0 0 0 * * *", at(2026, 3, 29, 0, 30), at(2026, 3, 30)),  # a DST-change day in Europe: UTC
])
def test_next_occurrence_is_the_first_matching_second_strictly_after(
        expression: str, after: datetime, expected: datetime) -> None:
    assert ncrontab.parse(expression).next_after(after) == expected


def test_a_date_that_never_occurs_has_no_next_occurrence() -> None:
    assert ncrontab.parse("0 0 0 30 2 *").next_after(at(2026, 1, 1)) is None


def test_occurrences_of_every_five_seconds_are_five_seconds_apart() -> None:
    schedule = ncrontab.parse("*/5 * * * * *")
    t, seen = at(2026, 1, 1, 23, 59, 50), []
    for _ in range(4):
        nxt = schedule.next_after(t)
        assert nxt is not None
        seen.append(nxt)
        t = nxt
    assert seen == [at(2026, 1, 1, 23, 59, 55), at(2026, 1, 2), at(2026, 1, 2, 0, 0, 5),
                    at(2026, 1, 2, 0, 0, 10)]


def test_sub_second_start_rounds_to_the_next_whole_second() -> None:
    schedule = ncrontab.parse("* * * * * *")
    assert schedule.next_after(at(2026, 1, 1) + timedelta(microseconds=999_999)) == \
        at(2026, 1, 1, 0, 0, 1)


@pytest.mark.parametrize("expression, interval", [
    ("00:00:05", timedelta(seconds=5)),
    ("01:30:00", timedelta(hours=1, minutes=30)),
    ("1.00:00:00", timedelta(days=1)),
    ("00:00:00.5", timedelta(milliseconds=500)),
])
def test_timespan_schedules_fire_every_interval(expression: str, interval: timedelta) -> None:
    schedule = ncrontab.parse(expression)
    assert isinstance(schedule, ncrontab.IntervalSchedule)
    assert schedule.next_after(at(2026, 1, 1)) == at(2026, 1, 1) + interval


@pytest.mark.parametrize("expression, fragment", [
    ("0 */5 * * *", "has 5 field(s)"),          # crontab's five fields: seconds are required
    ("60 * * * * *", "second 60 is out of range 0-59"),
    ("0 0 24 * * *", "hour 24 is out of range 0-23"),
    ("0 0 0 0 * *", "day 0 is out of range 1-31"),
    ("0 0 0 * 13 *", "month 13 is out of range 1-12"),
    ("0 0 0 * * 7", "day-of-week 7 is out of range 0-6"),
    ("0 0 0 * * Funday", "day-of-week value 'Funday'"),
    ("*/0 * * * * *", "step after '/' must be a positive whole number"),
    ("0 10-5 * * * *", "runs backwards"),
    ("00:00:00", "longer than zero"),
    ("24:00:00", "hours above 23"),
    ("", "has 0 field(s)"),
])
def test_bad_schedules_are_refused_naming_the_rule(expression: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        ncrontab.parse(expression)
    assert fragment in str(info.value)
