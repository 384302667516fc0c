"""Seed a devhost database with many waiting workflow instances, directly in SQLite.

Guarantees: the rows are what the app's own start would leave (instance id ``workflow-<key>``,
orchestrator name, the JSON-string input the SDK client produces, status Running, created within
the last ``spread`` seconds); seeding is one transaction and needs devhost to be stopped (the
store's single-process lock is taken).
"""
from __future__ import annotations

import json
import time

from devhost.core.store import Store

ORCHESTRATOR = "workflow_orchestrator"


def seed_key(i: int) -> str:
    return f"seed-{i:06d}"


def seed(db_path: str, start: int, count: int, spread: float = 600.0) -> list[str]:
    """Insert instances ``start .. start+count-1``; returns their keys."""
    store = Store(db_path)
    try:
        now = time.time()
        keys = [seed_key(i) for i in range(start, start + count)]
        rows = []
        for n, key in enumerate(keys):
            created = now - spread + spread * n / max(count, 1)
            stored_input = json.dumps(json.dumps({"key": key, "timeoutSeconds": None}))
            rows.append((f"workflow-{key}", f"seed{n:032x}"[-32:], ORCHESTRATOR, "", "Running",
                         stored_input, None, json.dumps({"waitingFor": "Workflow", "until": None}),
                         created, created, None, None, None))
        with store._tx() as db:
            db.executemany("INSERT INTO instances VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        return keys
    finally:
        store.close()
