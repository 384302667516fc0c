"""The function app as the worker indexes it, built once per process.

``FunctionApp.get_functions()`` may be called only once per app object: a second call raises
``ValueError: Function start does not have a unique function name``.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import azure.durable_functions as df
import azure.functions as func

import function_app
from workflow import orchestrator


@functools.cache
def functions() -> dict[str, Any]:
    """Function name -> ``azure.functions.decorators.core.Function``."""
    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def replay(context: dict[str, Any] | str) -> dict[str, Any]:
    """Run the orchestrator through the SDK's real entry point, as the worker would.

    Returns the parsed orchestrator response (``isDone``, ``actions``, ``output``, ...).
    """
    body = context if isinstance(context, str) else json.dumps(context)
    handle = functions()["workflow_orchestrator"].get_user_function()
    return json.loads(handle(context=func.OrchestrationContext(body)))


def _template_then_notify(context: df.DurableOrchestrationContext) -> Any:
    """The app's orchestrator with one step after the event (the README's customisation)."""
    output = yield from orchestrator.workflow_orchestrator(context)
    yield context.call_activity("notify", output)
    return output


WITH_A_STEP_AFTER_THE_EVENT = df.Orchestrator.create(_template_then_notify)
"""An orchestrator handle (context -> response JSON) for ``FakeDurableClient.orchestrator``."""


def _wait_alone(context: df.DurableOrchestrationContext) -> Any:
    """The wait every workflow built on this template keeps, and nothing else."""
    request = orchestrator.WorkflowInput.from_json(context.get_input(expected_type=dict))
    output = yield from orchestrator.wait_for_stop(context, request)
    return output


_WAIT_ALONE = df.Orchestrator.create(_wait_alone)


def replay_wait(context: dict[str, Any] | str) -> dict[str, Any]:
    """Like :func:`replay`, for ``orchestrator.wait_for_stop`` alone: the wait's guarantees,
    independent of the steps the app's orchestrator puts around it."""
    body = context if isinstance(context, str) else json.dumps(context)
    return json.loads(_WAIT_ALONE(context=func.OrchestrationContext(body)))
