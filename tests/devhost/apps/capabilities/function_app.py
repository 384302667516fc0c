"""A Durable app exercising every capability devhost promises, run unmodified by the e2e tests.

HTTP surface (all anonymous):
    POST /api/orchestrators/{functionName}/{instanceId?}  -> client.start_new + check-status 202
    POST /api/client/{op}     -> calls DurableOrchestrationClient.<op>(**json body); answers
                                 200 {"result": ...} or 200 {"error": ..., "errorType": ...}
    GET  /api/env/{name}      -> the environment variable (local.settings.json Values)
    GET  /api/items/{id:int}, GET /api/optional/{x?}, POST /api/only-post, * /api/echo/{*rest}

Orchestrators are deliberately small: each one shows one pattern of the Durable programming model.
"""

# No ``from __future__ import annotations``: the Python worker checks binding annotations.
import asyncio
import collections
import json
import os
import threading
import time
from datetime import datetime, timedelta, timezone

import azure.durable_functions as df
import azure.functions as func
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.durable_functions.models.OrchestrationRuntimeStatus import OrchestrationRuntimeStatus

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


def _json(value, status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(value), status_code=status, mimetype="application/json")


def _body(req: func.HttpRequest):
    raw = req.get_body()
    return json.loads(raw) if raw else None


# ---- HTTP: the Durable client, through the SDK (rpcBaseUrl) -----------------------------------

@app.route(route="orchestrators/{functionName}/{instanceId?}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client) -> func.HttpResponse:
    try:
        instance_id = await client.start_new(req.route_params["functionName"],
                                             req.route_params.get("instanceId") or None,
                                             _body(req))
    except Exception as exc:  # the SDK raises bare Exception: surface its text
        return _json({"error": str(exc)}, 400)
    return client.create_check_status_response(req, instance_id)


def _time(text):
    return None if text is None else datetime.fromisoformat(text).astimezone(timezone.utc)


def _statuses(names):
    return None if names is None else [OrchestrationRuntimeStatus(n) for n in names]


def _plain(value):
    if isinstance(value, DurableOrchestrationStatus):
        if not value:
            return {"falsy": True, "runtimeStatus": None}
        data = value.to_json()
        data["runtimeStatus"] = value.runtime_status.value
        data["historyEvents"] = getattr(value, "historyEvents", None)
        return data
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if hasattr(value, "instances_deleted"):
        return {"instancesDeleted": value.instances_deleted}
    return value


@app.route(route="client/{op}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def client_call(req: func.HttpRequest, client) -> func.HttpResponse:
    op = req.route_params["op"]
    kwargs = _body(req) or {}
    for key in ("created_time_from", "created_time_to"):
        if key in kwargs:
            kwargs[key] = _time(kwargs[key])
    if "runtime_status" in kwargs:
        kwargs["runtime_status"] = _statuses(kwargs["runtime_status"])
    if op == "signal_entity":
        kwargs["entityId"] = df.EntityId(kwargs.pop("entity_name"), kwargs.pop("entity_key"))
    try:
        result = await getattr(client, op)(**kwargs)
    except Exception as exc:
        return _json({"error": str(exc), "errorType": type(exc).__name__})
    return _json({"result": _plain(result)})


# ---- HTTP: plain functions (settings, route templates, methods) --------------------------------

@app.route(route="env/{name}", methods=["GET"])
def env(req: func.HttpRequest) -> func.HttpResponse:
    name = req.route_params["name"]
    return _json({"name": name, "value": os.environ.get(name)})


@app.route(route="items/{id:int}", methods=["GET"])
def item(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"id": req.route_params["id"]})


@app.route(route="optional/{x?}", methods=["GET"])
def optional(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"x": req.route_params.get("x")})


@app.route(route="only-post", methods=["POST"])
async def only_post(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"method": req.method})


@app.route(route="echo/{*rest}")
def echo(req: func.HttpRequest) -> func.HttpResponse:
    return _json({"method": req.method, "rest": req.route_params.get("rest"),
                  "query": dict(req.params), "header": req.headers.get("x-probe"),
                  "body": req.get_body().decode()})


# ---- activities ---------------------------------------------------------------------------------

@app.activity_trigger(input_name="name")
def hello(name: str) -> str:
    return f"Hello {name}"


@app.activity_trigger(input_name="name")
async def hello_async(name: str) -> str:
    await asyncio.sleep(0.01)
    return f"Hi {name}"


@app.activity_trigger(input_name="n")
def double(n: int) -> int:
    return n * 2


@app.activity_trigger(input_name="message")
def explode(message: str) -> str:
    raise RuntimeError(message)


_ATTEMPTS: collections.Counter = collections.Counter()
_ATTEMPTS_LOCK = threading.Lock()


@app.activity_trigger(input_name="req")
def flaky(req: dict) -> int:
    """Fails the first ``fail_times`` calls for ``key`` (per devhost process), then succeeds."""
    with _ATTEMPTS_LOCK:
        _ATTEMPTS[req["key"]] += 1
        attempt = _ATTEMPTS[req["key"]]
    if attempt <= req["fail_times"]:
        raise RuntimeError(f"flaky attempt {attempt} fails")
    return attempt


@app.activity_trigger(input_name="req")
def slow(req: dict) -> str:
    """Appends a line to ``<dir>/<key>.started`` and sleeps: the at-least-once witness."""
    with open(os.path.join(req["dir"], req["key"] + ".started"), "a") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(req["seconds"])
    return "slept"


# ---- orchestrators ------------------------------------------------------------------------------

@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext):
    first = yield context.call_activity("hello", context.get_input())
    second = yield context.call_activity("hello_async", first)
    return [first, second]


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    n = context.get_input()
    results = yield context.task_all([context.call_activity("double", i) for i in range(n)])
    return {"sum": sum(results), "count": len(results)}


@app.orchestration_trigger(context_name="context")
def short_timer(context: df.DurableOrchestrationContext):
    began = context.current_utc_datetime
    yield context.create_timer(began + timedelta(seconds=context.get_input()))
    return (context.current_utc_datetime - began).total_seconds()


@app.orchestration_trigger(context_name="context")
def race(context: df.DurableOrchestrationContext):
    """An event against a timeout; the loser timer is cancelled, then an optional nap."""
    spec = context.get_input()
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=spec["timeout"]))
    event = context.wait_for_external_event("Approve")
    winner = yield context.task_any([event, timer])
    if winner == event:
        timer.cancel()
        outcome = {"winner": "event", "value": event.result}
    else:
        outcome = {"winner": "timer"}
    if spec.get("after"):
        yield context.create_timer(context.current_utc_datetime +
                                   timedelta(seconds=spec["after"]))
    return outcome


@app.orchestration_trigger(context_name="context")
def two_events(context: df.DurableOrchestrationContext):
    first = yield context.wait_for_external_event("A")
    second = yield context.wait_for_external_event("B")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext):
    context.set_custom_status({"stage": "waiting", "input": context.get_input()})
    value = yield context.wait_for_external_event("Go")
    context.set_custom_status({"stage": "done"})
    return {"got": value, "input": context.get_input()}


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    ok = yield context.call_sub_orchestrator("child", {"x": context.get_input()})
    try:
        yield context.call_sub_orchestrator("child_fails", "child went wrong")
        failed = None
    except Exception as exc:
        failed = str(exc)
    return {"ok": ok, "failed": failed}


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext):
    doubled = yield context.call_activity("double", context.get_input()["x"])
    return {"doubled": doubled, "parent": context.parent_instance_id}


@app.orchestration_trigger(context_name="context")
def child_fails(context: df.DurableOrchestrationContext):
    yield context.call_activity("hello", "child")
    raise ValueError(context.get_input())


@app.orchestration_trigger(context_name="context")
def counter(context: df.DurableOrchestrationContext):
    state = context.get_input()
    if state["n"] >= state["until"]:
        return state["n"]
    yield context.call_activity("double", state["n"])
    context.continue_as_new({"n": state["n"] + 1, "until": state["until"]})


@app.orchestration_trigger(context_name="context")
def fails(context: df.DurableOrchestrationContext):
    yield context.call_activity("hello", "before failing")
    raise ValueError(f"kaboom: {context.get_input()}")


@app.orchestration_trigger(context_name="context")
def catches(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("explode", context.get_input())
    except Exception as exc:
        return {"caught": str(exc)}
    return {"caught": None}


@app.orchestration_trigger(context_name="context")
def retrying(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=100,
                              max_number_of_attempts=spec["attempts"])
    try:
        result = {"attempt": (yield context.call_activity_with_retry("flaky", options, spec))}
    except Exception as exc:
        result = {"error": str(exc)}
    # Scheduled after the retries: its task id only lines up if host and SDK counted alike.
    result["after"] = yield context.call_activity("hello", "after")
    return result


@app.orchestration_trigger(context_name="context")
def steps(context: df.DurableOrchestrationContext):
    """Optional timer, event and slow activity, in that order (the restart scenarios)."""
    spec = context.get_input()
    done = []
    if spec.get("timer"):
        yield context.create_timer(context.current_utc_datetime +
                                   timedelta(seconds=spec["timer"]))
        done.append("timer")
    if spec.get("event"):
        done.append((yield context.wait_for_external_event("Go")))
    if spec.get("slow"):
        done.append((yield context.call_activity("slow", spec["slow"])))
    return done
