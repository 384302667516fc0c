"""``bench.replay_load`` (status reads while long histories replay) runs and reports its figures
(tiny size; the figures themselves are the benchmark's, not asserted here)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from devhost.process import REPO


@pytest.mark.timeout(120)
def test_replay_load_reports_status_read_latency_while_histories_replay() -> None:
    run = subprocess.run([sys.executable, "-m", "bench.replay_load", "--size", "tiny"], cwd=REPO,
                         capture_output=True, text=True, timeout=110)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["orchestrations"] == 2
    assert min(result["history_events"]) >= 300  # 150 activities fanned out: long histories
    assert result["ticks_raised"] > 0 and result["status_reads"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
