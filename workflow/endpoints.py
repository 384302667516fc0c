"""The HTTP handlers behind ``function_app``: parse, call ``lookup``, answer.

Each handler takes the request, an ``OrchestrationClient`` (the real SDK client or a fake) and
returns a JSON response. Domain exceptions become 4xx/5xx answers through
``responses.ERROR_STATUS``; anything else is a bug and propagates.
"""

from __future__ import annotations

import azure.functions as func

from workflow import lookup, responses
from workflow.errors import NotFound, WorkflowError
from workflow.inputs import parse_key, parse_payload
from workflow.lookup import OrchestrationClient
from workflow.settings import ROUTE_PARAMETER, Settings


async def start(req: func.HttpRequest, client: OrchestrationClient, settings: Settings) -> func.HttpResponse:
    """Start the key's workflow: 202 started, 409 already active, 400 bad key."""
    try:
        key = parse_key(req.route_params.get(ROUTE_PARAMETER))
        return responses.started(await lookup.start(client, key, settings))
    except WorkflowError as exc:
        return responses.error(exc)


async def check(req: func.HttpRequest, client: OrchestrationClient) -> func.HttpResponse:
    """Report the key's workflow: 200 status, 404 never started, 400 bad key."""
    try:
        key = parse_key(req.route_params.get(ROUTE_PARAMETER))
        found = await lookup.find(client, key)
        if found is None:
            raise NotFound(key)
        return responses.status(found)
    except WorkflowError as exc:
        return responses.error(exc)


async def stop(req: func.HttpRequest, client: OrchestrationClient, settings: Settings) -> func.HttpResponse:
    """Raise the event with the request's JSON body: 202 the run took this stop's event (or it
    is still on its way), 409 another stop won first, 404 unknown, 410 finished or timed out,
    400 bad input."""
    try:
        key = parse_key(req.route_params.get(ROUTE_PARAMETER))
        payload = parse_payload(req.get_body())
        decided = await lookup.stop(client, key, payload, settings)
        return responses.stopped(key, decided)
    except WorkflowError as exc:
        return responses.error(exc)
