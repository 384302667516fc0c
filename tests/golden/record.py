"""Re-record the golden histories from real devhost runs: ``python -m tests.golden.record``.

Each scenario drives devhost's own engine and management API (in process, on a temp SQLite
file) with the real app's orchestrator, sending what the app's Durable client sends (the
orchestration input of ``lookup.orchestration_input``, stop events of
``orchestrator.stop_event``, both JSON-encoded once more as the Python client does). Time is
devhost's settable clock, so the ten-day timeout takes no real time. Every episode is recorded
as it happened: the exact context devhost handed the orchestrator and the response it got.
``tests/template/test_template_golden_histories.py::test_golden_history_replays_to_recorded_response``
replays each context through the current code and requires the recorded response. Each scenario
runs until devhost is idle (steps after the event included) and must end Completed with the
wait's outcome it is named after; the output is the workflow's own.

Ids that would be random (``runId``, stop ids) are fixed, so a re-recording differs only where
the code's behaviour (or devhost's execution ids) changed.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from devhost.app.loader import LoadedApp, load_app
from devhost.core.engine import Engine
from devhost.core.store import Store
from devhost.tools.management import ManagementApi

GOLDEN = Path(__file__).resolve().parent
REPO = GOLDEN.parent.parent
ORIGIN = "http://127.0.0.1:7071"
T0 = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc).timestamp()
HOUR, DAY = 3600.0, 86400.0
RUN_ID = "0" * 31 + "1"
STOP_ID = "5" * 32
INSTANCE = "workflow-aaron"
SETTLE_SECONDS = 60.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


class Recording:
    """One devhost (store + engine + management API) whose orchestrator calls are recorded."""

    def __init__(self, app: LoadedApp, path: Path) -> None:
        self.episodes: list[dict[str, Any]] = []
        name = "workflow_orchestrator"
        real = app.orchestrators[name].user_function

        def recorded(context: Any) -> str:
            response = real(context=context)
            self.episodes.append({"context": json.loads(context.body),
                                  "expected": json.loads(response)})
            return response

        self.orchestrators = dict(app.orchestrators)
        app.orchestrators[name] = dataclasses.replace(app.orchestrators[name],
                                                      user_function=recorded)
        self.app, self.clock = app, Clock()
        self.store = Store(str(path))
        self.engine = Engine(self.store, app, clock=self.clock)
        self.api = ManagementApi(self.store, self.engine, app)

    async def settle(self) -> None:
        """Until devhost is idle: no episode being drained, no activity running (so a step the
        workflow runs after the event has finished before the scenario goes on)."""
        deadline = time.monotonic() + SETTLE_SECONDS
        await asyncio.sleep(0)
        # Engine._tasks holds every drain and activity task; devhost has no public idle test.
        while self.engine._tasks:
            assert time.monotonic() < deadline, f"devhost still busy after {SETTLE_SECONDS} s"
            await asyncio.sleep(0.001)

    async def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.engine.poll()
        await self.settle()

    def call(self, method: str, path: str, body: Any) -> Any:
        reply = self.api.handle(method, path, {}, {"Content-Type": "application/json"},
                                json.dumps(body).encode(), ORIGIN)
        assert reply.status == 202, (path, reply.status, reply.body)

    def start(self, timeout_seconds: int | None) -> None:
        """What ``lookup.start`` sends: ``start_new`` posts the JSON text of the input."""
        value = {"key": "aaron", "timeoutSeconds": timeout_seconds, "runId": RUN_ID}
        self.call("POST", f"/orchestrators/workflow_orchestrator/{INSTANCE}", json.dumps(value))

    def stop(self, payload: Any) -> None:
        """What ``lookup.stop`` sends: ``raise_event`` posts the JSON text of the stop event."""
        self.call("POST", f"/instances/{INSTANCE}/raiseEvent/Workflow",
                  json.dumps({"stopId": STOP_ID, "payload": payload}))

    def status(self) -> dict[str, Any]:
        """What every workflow built on this template ends with: Completed, and the wait's
        outcome in the custom status (the output is the workflow's own)."""
        inst = self.store.get(INSTANCE)
        assert inst is not None
        custom = json.loads(inst.custom_status) if inst.custom_status else None
        return {"runtimeStatus": inst.status.value,
                "outcome": custom.get("outcome") if isinstance(custom, dict) else None}

    async def close(self) -> None:
        await self.engine.close()
        self.store.close()
        self.app.orchestrators.clear()
        self.app.orchestrators.update(self.orchestrators)


async def stopped_by_client_event(r: Recording) -> None:
    r.start(3600)
    await r.settle()
    await r.advance(5 * 60)
    r.stop({"approved": True, "by": "ops"})
    await r.settle()


async def timed_out_after_one_hour(r: Recording) -> None:
    r.start(3600)
    await r.settle()
    await r.advance(HOUR)


async def stopped_before_first_wait(r: Recording) -> None:
    r.start(None)
    r.stop({"early": True})  # raised before the first episode ran: both land in it
    await r.settle()


async def ten_day_timeout_split(r: Recording) -> None:
    r.start(10 * 24 * 3600)
    await r.settle()
    for _ in range(4):
        await r.advance(3 * DAY)


async def event_and_due_timer_in_one_episode_event_first(r: Recording) -> None:
    r.start(3600)
    await r.settle()
    r.clock.now += 30 * 60
    r.stop("just in time")  # raised at 30 min; the timer falls due before the next episode
    r.clock.now += HOUR
    r.engine.poll()
    await r.settle()


SCENARIOS: dict[str, tuple[str, Callable[[Recording], Awaitable[None]], dict[str, Any]]] = {
    "stopped_by_client_event": (
        "1 h timeout; a stop (the app's client event, double-encoded) after 5 min wins, "
        "the timer is cancelled", stopped_by_client_event,
        {"runtimeStatus": "Completed", "outcome": "stopped"}),
    "timed_out_after_one_hour": (
        "1 h timeout, no stop: the timer fires after one hour", timed_out_after_one_hour,
        {"runtimeStatus": "Completed", "outcome": "timed_out"}),
    "stopped_before_first_wait": (
        "no timeout; the stop is raised before the first episode and delivered with the start",
        stopped_before_first_wait,
        {"runtimeStatus": "Completed", "outcome": "stopped"}),
    "ten_day_timeout_split": (
        "10-day timeout, split by the SDK into timers the backend accepts; fires after 10 days",
        ten_day_timeout_split,
        {"runtimeStatus": "Completed", "outcome": "timed_out"}),
    "event_and_due_timer_in_one_episode_event_first": (
        "1 h timeout; the stop raised at 30 min and the timer due at 60 min are delivered in one "
        "episode, the event first (arrival order): the stop wins",
        event_and_due_timer_in_one_episode_event_first,
        {"runtimeStatus": "Completed", "outcome": "stopped"}),
}


async def record(app: LoadedApp, directory: Path) -> dict[str, dict[str, Any]]:
    """Run every scenario on a fresh store; return ``name -> golden file content``."""
    goldens = {}
    for name, (description, scenario, outcome) in SCENARIOS.items():
        recording = Recording(app, directory / f"{name}.sqlite3")
        try:
            await scenario(recording)
            assert recording.status() == outcome, (name, recording.status())
        finally:
            await recording.close()
        goldens[name] = {
            "description": description,
            "recorded": "devhost run, python -m tests.golden.record",
            "episodes": recording.episodes,
        }
    return goldens


def main() -> int:
    app = load_app(str(REPO))
    with tempfile.TemporaryDirectory() as tmp:
        goldens = asyncio.run(record(app, Path(tmp)))
    for name, content in goldens.items():
        (GOLDEN / f"{name}.json").write_text(json.dumps(content, indent=2) + "\n")
        print(f"recorded {name}: {len(content['episodes'])} episode(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
