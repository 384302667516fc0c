"""Smoke test of the Durable Task peer (bench/peer_durabletask.py): a tiny run must complete
every lifecycle with the app's output and report positive figures.

``durabletask`` is a benchmark-only dependency (requirements-bench.txt), so without it this
skips.
"""
from __future__ import annotations

import json
import math
from typing import Any

import pytest

pytest.importorskip(
    "durabletask", reason="durabletask is benchmark-only: pip install -r requirements-bench.txt")

from bench import peer_durabletask


def test_peer_durabletask_smoke() -> None:
    stored: dict[str, tuple[str, Any]] = {}

    def read_backend(backend: Any) -> None:
        # The backend's own state, not the client API the peer used to check itself.
        from durabletask.internal import orchestrator_service_pb2 as pb

        for key, inst in backend._instances.items():
            stored[key] = (pb.OrchestrationStatus.Name(inst.status),
                           json.loads(inst.output) if inst.output else None)

    result = peer_durabletask.run(lifecycles=20, concurrency=4, unloaded=5, warmup=3,
                                  before_stop=read_backend)

    for name in ("peer_durabletask_lifecycles_per_s", "peer_durabletask_send_to_done_p50_ms",
                 "peer_durabletask_send_to_done_p99_ms", "peer_durabletask_start_p50_ms",
                 "peer_durabletask_parked_send_to_done_p50_ms",
                 "peer_durabletask_loaded_send_to_done_p50_ms",
                 "peer_durabletask_loaded_start_p50_ms"):
        assert math.isfinite(result[name]) and result[name] > 0, (name, result[name])
    assert result["peer_durabletask_lifecycles"] == 20
    assert result["peer_durabletask_concurrency"] == 4

    # Every lifecycle the run claims (warm-up, unloaded, parked, loaded) really ended as the
    # app's would.
    expected = {f"peer-warm-{i}": i for i in range(3)}
    expected |= {f"peer-one-{i}": i for i in range(5)}
    expected |= {f"peer-parked-{i}": i for i in range(5)}
    expected |= {f"peer-c4-{i}": i for i in range(20)}
    assert set(stored) == set(expected)
    for key, n in expected.items():
        assert stored[key] == ("ORCHESTRATION_STATUS_COMPLETED",
                               {"outcome": "stopped", "event": {"n": n}}), key
