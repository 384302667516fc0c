"""Smoke test of the DBOS peer (bench/peer_dbos.py): a tiny run must complete every lifecycle
with the app's output and report positive figures.

``dbos`` is a benchmark-only dependency (requirements-bench.txt), so without it this skips.
"""
from __future__ import annotations

import base64
import math
import pickle
import sqlite3
from pathlib import Path

import pytest

pytest.importorskip(
    "dbos", reason="dbos is benchmark-only: pip install -r requirements-bench.txt")

from bench import peer_dbos


def stored_outputs(db: Path) -> dict[str, tuple[str, object]]:
    """(status, output) per workflow, read straight from DBOS's SQLite file, so the check does
    not rest on the DBOS API that the peer itself used."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT s.workflow_uuid, s.status, s.serialization, o.output "
            "FROM workflow_status s LEFT JOIN workflow_output o USING (workflow_uuid)").fetchall()
    out: dict[str, tuple[str, object]] = {}
    for key, status, serialization, output in rows:
        # DBOS's default serializer: base64 of a pickle, labelled "py_pickle".
        assert serialization == "py_pickle", f"{key}: unexpected serialization {serialization}"
        out[key] = (status, pickle.loads(base64.b64decode(output)) if output else None)
    return out


def test_peer_dbos_smoke(tmp_path: Path) -> None:
    result = peer_dbos.run(lifecycles=20, concurrency=4, workdir=tmp_path, unloaded=5)

    for name in ("peer_dbos_lifecycles_per_s", "peer_dbos_send_to_done_p50_ms",
                 "peer_dbos_send_to_done_p99_ms", "peer_dbos_start_p50_ms",
                 "peer_dbos_loaded_send_to_done_p50_ms", "peer_dbos_loaded_start_p50_ms"):
        assert math.isfinite(result[name]) and result[name] > 0, (name, result[name])
    assert result["peer_dbos_lifecycles"] == 20 and result["peer_dbos_concurrency"] == 4

    # Every lifecycle the run claims (warm-up, unloaded, loaded) really ended as the app's would.
    (db,) = tmp_path.glob("peer-dbos-*/dbos_system.sqlite")
    stored = stored_outputs(db)
    expected = {f"peer-warm-{i}": i for i in range(peer_dbos.WARMUP)}
    expected |= {f"peer-one-{i}": i for i in range(5)}
    expected |= {f"peer-c4-{i}": i for i in range(20)}
    assert set(stored) == set(expected)
    for key, n in expected.items():
        assert stored[key] == ("SUCCESS", {"outcome": "stopped", "event": {"n": n}}), key
