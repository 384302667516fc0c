"""The benchmark runs end to end and reports every figure it promises (tiny size)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.__main__ import median_round
from devhost.host.process import REPO

KEYS = ["hello_rps", "lifecycles_per_s", "lifecycles_per_s_no_fastpath",
        "lifecycles_per_s_one_worker", "start_p50_ms",
        "start_p99_ms", "stop_to_completed_p50_ms", "stop_to_completed_p99_ms",
        "check_p50_ms_small", "check_p50_ms_large", "scan_check_p50_ms_large",
        "status_read_p50_ms_idle", "status_read_p99_ms_during_replay",
        "replay_history_events_min", "replay_events_raised"]


@pytest.mark.timeout(240)
def test_benchmark_prints_a_table_and_every_figure_as_json_on_its_last_line() -> None:
    run = subprocess.run([sys.executable, "-m", "bench", "--size", "tiny",
                          "--concurrency", "4", "--workers", "2"], cwd=REPO, capture_output=True,
                         text=True, timeout=230)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    result = json.loads(lines[-1])
    assert all(result[k] > 0 for k in KEYS), result
    assert result["instances_large"] == 200
    assert result["workers"] == 2
    # 50 timers: each replaying history holds at least their 100 events.
    assert result["replay_history_events_min"] >= 100
    assert any("lifecycles_per_s" in line for line in lines[:-1])  # the readable table
    # The DBOS ratio comes from interleaved rounds (one at this size), each measured anew.
    [middle] = result["peer_rounds"]
    assert middle["devhost"] > 0 and middle["dbos"] > 0
    assert result["devhost_per_dbos"] == pytest.approx(middle["devhost"] / middle["dbos"], rel=1e-2)
    assert result["peer_dbos_lifecycles_per_s"] == pytest.approx(middle["dbos"], rel=1e-2)


@pytest.mark.parametrize("ratios, median", [([4.0], 4.0), ([5.1, 4.5, 5.3], 5.1),
                                             ([3.0, 6.0, 4.0, 5.0], 5.0)])
def test_the_ratio_reported_is_the_median_rounds(ratios: list[float], median: float) -> None:
    rounds = [{"ratio": r, "peer": {}} for r in ratios]
    assert median_round(rounds)["ratio"] == median
