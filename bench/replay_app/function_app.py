"""The app bench/replay.py runs on devhost: orchestrations with long histories, and an HTTP
status read through the Durable client like the product's ``/api/check``.

    GET /api/status/{instanceId} -> 200 {"runtimeStatus": ...} (client.get_status), 404 unknown
"""

# No ``from __future__ import annotations``: the Python worker checks binding annotations.
import json
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="status/{instanceId}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def status(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    found = await client.get_status(req.route_params["instanceId"])
    if not found:
        return func.HttpResponse(json.dumps({"error": "unknown instance"}), status_code=404,
                                 mimetype="application/json")
    return func.HttpResponse(json.dumps({"runtimeStatus": found.runtime_status.value}),
                             mimetype="application/json")


@app.orchestration_trigger(context_name="context")
def long_history(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    """``timers`` timers due at once (two history events each, delivered in one episode), then a
    wait for ``Workflow``; every other event it gets only lengthens the history it replays."""
    timers = context.get_input()
    now = context.current_utc_datetime
    yield context.task_all([context.create_timer(now) for _ in range(timers)])
    yield context.wait_for_external_event("Workflow")
    return timers


@app.orchestration_trigger(context_name="context")
def eternal(context: df.DurableOrchestrationContext) -> None:
    """An eternal loop: continues as new at once, no await in a generation (bench/eternal.py)."""
    context.continue_as_new((context.get_input() or 0) + 1)
    return None
