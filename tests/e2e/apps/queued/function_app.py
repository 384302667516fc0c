"""The product app (the repository's function_app.py, unchanged) plus one test-only queue trigger.

host.json here makes the queue options short (0.2 s polling, immediate retry, three deliveries
before poison) so the end-to-end tests finish in seconds. ``hang_after_stop`` runs the product's
queued stop and then, on a message's first delivery only, records itself in the file named by
``HANG_MARKER`` and hangs: the test kills devhost at that moment.
"""
import asyncio
import importlib.util
import os
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func

_PRODUCT = Path(__file__).resolve().parents[4] / "function_app.py"
_spec = importlib.util.spec_from_file_location("product_function_app", _PRODUCT)
assert _spec and _spec.loader
_product = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_product)

from workflow import queue_stop  # noqa: E402  (the product module put the repo on the path)

app = _product.app


@app.queue_trigger(arg_name="msg", queue_name="workflow-stop-hang",
                   connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def hang_after_stop(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    outcome = await queue_stop.stop_from_message(msg.get_body(), client, _product.SETTINGS, msg.id)
    with open(os.environ["HANG_MARKER"], "a", encoding="utf-8") as marker:
        marker.write(f"{msg.dequeue_count} {outcome.value}\n")
    if msg.dequeue_count == 1:
        await asyncio.sleep(3600)
