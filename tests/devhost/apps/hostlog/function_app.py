"""A small Durable app for devhost's log and shutdown tests (tests/devhost/app/test_hostlog.py,
tests/devhost/host/test_shutdown.py).

    POST /api/orchestrators/{functionName}/{instanceId?}  -> start_new + check-status 202
    GET  /api/boom                                        -> raises (the host answers 500)
    GET  /api/wait/{key}?dir=                             -> waits for <dir>/<key>.release

Orchestrators: hello (one activity), order (its activity fails), broken (fails itself), waiter
(waits for "Go"), holding (an activity that waits for a release file).
"""

# No ``from __future__ import annotations``: the Python worker checks binding annotations.
import json
import logging
import os
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="orchestrators/{functionName}/{instanceId?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client) -> func.HttpResponse:
    raw = req.get_body()
    instance_id = await client.start_new(req.route_params["functionName"],
                                         req.route_params.get("instanceId") or None,
                                         json.loads(raw) if raw else None)
    return client.create_check_status_response(req, instance_id)


def _check_stock(item):
    raise LookupError(f"no stock for {item}")


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    _check_stock("http-widget")
    return func.HttpResponse("unreachable")


@app.route(route="wait/{key}", methods=["GET"])
def wait(req: func.HttpRequest) -> func.HttpResponse:
    """Like ``hold``, as an HTTP request: ``?dir=`` holds the files."""
    answer = hold({"dir": req.params["dir"], "key": req.route_params["key"]})
    return func.HttpResponse(answer)


@app.activity_trigger(input_name="name")
def greet(name: str) -> str:
    logging.getLogger("shop.greetings").info("greeting %s", name)
    return f"Hello {name}"


@app.activity_trigger(input_name="item")
def reserve(item: str) -> str:
    _check_stock(item)
    return "reserved"


@app.activity_trigger(input_name="req")
def hold(req: dict) -> str:
    """Appends its pid to ``<dir>/<key>.runs`` (one line per run), then waits until
    ``<dir>/<key>.release`` exists (at most ``seconds``)."""
    with open(os.path.join(req["dir"], req["key"] + ".runs"), "a") as fh:
        fh.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + req.get("seconds", 60)
    while not os.path.exists(os.path.join(req["dir"], req["key"] + ".release")):
        if time.monotonic() > deadline:
            return "gave up"
        time.sleep(0.02)
    return "released"


@app.orchestration_trigger(context_name="context")
def hello(context: df.DurableOrchestrationContext):
    logging.info("hello orchestrator episode for %s", context.instance_id)
    return (yield context.call_activity("greet", context.get_input()))


@app.orchestration_trigger(context_name="context")
def order(context: df.DurableOrchestrationContext):
    """Fails because its activity fails."""
    return (yield context.call_activity("reserve", context.get_input()))


@app.orchestration_trigger(context_name="context")
def broken(context: df.DurableOrchestrationContext):
    yield context.call_activity("greet", "first")
    raise ValueError(f"broken after greeting: {context.get_input()}")


@app.orchestration_trigger(context_name="context")
def holding(context: df.DurableOrchestrationContext):
    return (yield context.call_activity("hold", context.get_input()))


@app.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext):
    """Waits for "Go"; any other event only replays it (a pure-replay episode)."""
    return (yield context.wait_for_external_event("Go"))
