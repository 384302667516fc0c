"""HTTP surface and orchestrator registration: thin glue over ``workflow``.

    POST|GET /api/start/{input}  -> 202 started | 409 already active | 400 bad key
    GET      /api/check/{input}  -> 200 status  | 404 never started  | 400 bad key
    POST|GET /api/stop/{input}   -> 202 raised  | 404 unknown | 410 finished | 400 bad key/body
    GET      /api/openapi.json   -> 200 the OpenAPI description of the above (anonymous)
    queue    workflow-stop       -> the same stop, from a message {"input": key, "event": ...}
    timer    WORKFLOW_RETENTION_SCHEDULE -> purge finished runs older than WORKFLOW_RETENTION_DAYS

Errors are JSON ``{"error": ...}``; 502/503 when the durable backend fails or is unreachable.
"""

# No ``from __future__ import annotations`` here: the Python worker checks binding parameters
# against their annotations and expects real types, not strings.
from collections.abc import Generator
from datetime import datetime, timezone
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from workflow import endpoints, openapi, orchestrator, queue_stop, retention
from workflow.settings import Settings, route

# Read once at startup: an invalid WORKFLOW_TIMEOUT_SECONDS stops indexing with a clear error
# instead of failing every request.
SETTINGS = Settings.from_env()
RETENTION = retention.RetentionSettings.from_env()

app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route=route("start"), methods=[func.HttpMethod.POST, func.HttpMethod.GET])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await endpoints.start(req, client, SETTINGS)


@app.route(route=route("check"), methods=[func.HttpMethod.GET])
@app.durable_client_input(client_name="client")
async def check(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await endpoints.check(req, client)


@app.route(route=route("stop"), methods=[func.HttpMethod.POST, func.HttpMethod.GET])
@app.durable_client_input(client_name="client")
async def stop(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    return await endpoints.stop(req, client, SETTINGS)


@app.queue_trigger(arg_name="msg", queue_name=queue_stop.QUEUE_NAME,
                   connection=queue_stop.CONNECTION_SETTING)
@app.durable_client_input(client_name="client")
async def stop_from_queue(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    await queue_stop.stop_from_message(msg.get_body(), client, SETTINGS, msg.id)


@app.timer_trigger(arg_name="timer", schedule=RETENTION.schedule, run_on_startup=False,
                   use_monitor=True)
@app.durable_client_input(client_name="client")
async def purge_finished_runs(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    await retention.run(client, RETENTION, datetime.now(timezone.utc))


@app.orchestration_trigger(context_name="context")
def workflow_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return orchestrator.workflow_orchestrator(context)


@app.route(
    route=openapi.DOCUMENT_ROUTE, methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.ANONYMOUS
)
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return openapi.http_response()
