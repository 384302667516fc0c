"""status: the run's status as the app reports it, and its one timestamp format."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from workflow.status import iso_utc


def test_timestamps_are_utc_with_a_z_whatever_zone_they_come_in() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert iso_utc(datetime(2025, 6, 1, 14, 0, 5, tzinfo=plus_two)) == "2025-06-01T12:00:05Z"
    assert iso_utc(datetime(2025, 6, 1, 12, 0, 5, 250000, tzinfo=timezone.utc)) == \
        "2025-06-01T12:00:05.250000Z"
    assert iso_utc(datetime(2025, 6, 1, 12, 0, 5)) == "2025-06-01T12:00:05Z"  # naive = UTC
    assert iso_utc(None) is None


def test_aware_timestamps_are_converted_to_utc_not_the_local_zone(monkeypatch) -> None:
    import time
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    time.tzset()
    try:
        assert iso_utc(datetime(2025, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))) == \
            "2025-06-01T12:00:00Z"
    finally:
        monkeypatch.undo()
        time.tzset()
