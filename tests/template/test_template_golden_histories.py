"""Runs recorded on devhost, replayed through the current orchestrator: they pin the template's
exact steps, episode by episode (``tests/golden/README.md`` says which run is which)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.app_index import replay

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
RECORD = "python -m tests.golden.record"


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.json")), ids=lambda p: p.stem)
def test_golden_history_replays_to_recorded_response(path: Path) -> None:
    """Every episode of a run recorded on devhost (``python -m tests.golden.record``) replays,
    through the current code, to the response the orchestrator gave when it was recorded."""
    golden = json.loads(path.read_text())
    for number, episode in enumerate(golden["episodes"], 1):
        assert replay(episode["context"]) == episode["expected"], (
            f"{path.name}, episode {number} ({golden['description']}) replays to another "
            f"response: the orchestrator's steps changed. If that is deliberate, re-record the "
            f"golden histories with `{RECORD}` and review the diff (runs already recorded in "
            "a live task hub would replay differently: see tests/golden/README.md)")


def test_golden_histories_cover_the_recorded_runs() -> None:
    assert {p.stem for p in GOLDEN.glob("*.json")} >= {
        "stopped_by_client_event", "timed_out_after_one_hour", "stopped_before_first_wait",
        "ten_day_timeout_split"}, f"golden histories are missing: re-record them with `{RECORD}`"
