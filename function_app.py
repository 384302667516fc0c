"""HTTP surface and orchestrator registration: thin glue over ``workflow``.

    POST|GET /api/start/{input}  -> 202 started | 409 already active | 400 bad key
    GET      /api/check/{input}  -> 200 status  | 404 never started  | 400 bad key
    POST|GET /api/stop/{input}   -> 202 raised  | 404 unknown | 410 finished | 400 bad key/body
    GET      /api/openapi.json   -> 200 the OpenAPI description of the above (anonymous)

Errors are JSON ``{"error": ...}``; 502/503 when the durable backend fails or is unreachable.
"""

# No ``from __future__ import annotations`` here: the Python worker checks binding parameters
# against their annotations and expects real types, not strings.
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from workflow import endpoints, openapi, orchestrator
from workflow.settings import Settings, route

# Read once at startup: an invalid WORKFLOW_TIMEOUT_SECONDS stops indexing with a clear error
# instead of failing every request.
SETTINGS = Settings.from_env()

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


@app.orchestration_trigger(context_name="context")
def workflow_orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    return orchestrator.workflow_orchestrator(context)


@app.route(
    route=openapi.DOCUMENT_ROUTE, methods=[func.HttpMethod.GET], auth_level=func.AuthLevel.ANONYMOUS
)
def openapi_document(req: func.HttpRequest) -> func.HttpResponse:
    return openapi.http_response()
