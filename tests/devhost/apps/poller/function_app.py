"""An app whose HTTP function polls ``get_status`` in a tight loop, as an impatient client does.

The poll loop awaits nothing but the Durable client, so it yields to the event loop only when a
client call does: over loopback HTTP always, in-process only if devhost's transport yields.

HTTP surface (anonymous):
    POST /api/poll/{orchestrator}/{instanceId}?seconds=S -> starts the orchestrator, polls its
         status until it has finished or S seconds passed; 200 {"runtimeStatus", "polls", "output"}
    POST /api/raise/{instanceId}?size=N -> raises "Go" with a string of N "x" through the client;
         200 {"raised": true} or 200 {"error": <the SDK's exception text>}
"""

# No ``from __future__ import annotations``: the Python worker checks binding annotations.
import json
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
FINISHED = ("Completed", "Failed", "Terminated")


@app.route(route="poll/{orchestrator}/{instanceId}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def poll(req: func.HttpRequest, client) -> func.HttpResponse:
    instance_id = req.route_params["instanceId"]
    await client.start_new(req.route_params["orchestrator"], instance_id, None)
    deadline = time.monotonic() + float(req.params.get("seconds", "15"))
    polls, status = 0, None
    while time.monotonic() < deadline:
        status = await client.get_status(instance_id)
        polls += 1
        if status and status.runtime_status.value in FINISHED:
            break
    body = {"runtimeStatus": status.runtime_status.value if status else None, "polls": polls,
            "output": status.output if status else None}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.route(route="raise/{instanceId}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def raise_big(req: func.HttpRequest, client) -> func.HttpResponse:
    try:
        await client.raise_event(req.route_params["instanceId"], "Go",
                                 "x" * int(req.params["size"]))
    except Exception as exc:  # the SDK raises bare Exception: report its text
        return func.HttpResponse(json.dumps({"error": str(exc)}), mimetype="application/json")
    return func.HttpResponse(json.dumps({"raised": True}), mimetype="application/json")


@app.orchestration_trigger(context_name="context")
def quick(context: df.DurableOrchestrationContext):
    return "done"


@app.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext):
    value = yield context.wait_for_external_event("Go")
    return {"got": value}
