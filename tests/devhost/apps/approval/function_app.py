"""An approval that reminds the approver every day and gives up after a week: the README's
customisation example as a whole app, tested end to end in virtual time
(``tests/devhost/test_testing.py``).

HTTP surface (anonymous):
    POST /api/approvals/{id}           body = the request (JSON) -> 202 {"instanceId"}
    POST /api/approvals/{id}/decision  body = the decision (JSON) -> 202 {"raised": true}
    GET  /api/approvals/{id}           -> 200 the run's status, 404 never started
Timer: ``morning_digest`` at 09:00 UTC every day starts a ``digest`` run that counts the
approvals still waiting.

App settings: ``APPROVAL_REMIND_HOURS`` (default 24) and ``APPROVAL_GIVE_UP_DAYS`` (default 7),
read when a run starts and passed in its input (an orchestrator reads no settings).
"""

# No ``from __future__ import annotations``: the Python worker checks binding annotations.
import json
import os
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
DECISION = "Decision"


def _json(status: int, value: object) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(value), status_code=status, mimetype="application/json")


@app.route(route="approvals/{id}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def request_approval(req: func.HttpRequest, client) -> func.HttpResponse:
    instance_id = f"approval-{req.route_params['id']}"
    await client.start_new("approval", instance_id, {
        "request": req.get_json(),
        "remindHours": int(os.environ.get("APPROVAL_REMIND_HOURS") or 24),
        "giveUpDays": int(os.environ.get("APPROVAL_GIVE_UP_DAYS") or 7)})
    return _json(202, {"instanceId": instance_id})


@app.route(route="approvals/{id}/decision", methods=["POST"])
@app.durable_client_input(client_name="client")
async def decide(req: func.HttpRequest, client) -> func.HttpResponse:
    await client.raise_event(f"approval-{req.route_params['id']}", DECISION, req.get_json())
    return _json(202, {"raised": True})


@app.route(route="approvals/{id}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def show(req: func.HttpRequest, client) -> func.HttpResponse:
    status = await client.get_status(f"approval-{req.route_params['id']}")
    if not status or not status.runtime_status:
        return _json(404, {"error": "no such approval"})
    return _json(200, {"runtimeStatus": status.runtime_status.value,
                       "customStatus": status.custom_status, "output": status.output})


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    run = context.get_input()
    give_up = context.current_utc_datetime + timedelta(days=run["giveUpDays"])
    decision = context.wait_for_external_event(DECISION)  # one wait per run, reused below
    reminders = 0
    while True:
        context.set_custom_status({"waitingFor": DECISION, "reminders": reminders})
        remind_at = min(context.current_utc_datetime + timedelta(hours=run["remindHours"]),
                        give_up)
        timer = context.create_timer(remind_at)
        winner = yield context.task_any([decision, timer])
        if winner == decision:
            timer.cancel()
            # The Python client sends event data as JSON text.
            value = json.loads(decision.result) if isinstance(decision.result, str) \
                else decision.result
            yield context.call_activity("record_decision", value)
            return {"outcome": "decided", "decision": value, "reminders": reminders}
        if remind_at >= give_up:
            return {"outcome": "expired", "reminders": reminders}
        reminders += 1
        yield context.call_activity("send_reminder", {"request": run["request"],
                                                      "reminder": reminders})


@app.activity_trigger(input_name="reminder")
def send_reminder(reminder: dict) -> str:
    return f"reminder {reminder['reminder']} sent to {reminder['request'].get('approver')}"


@app.activity_trigger(input_name="decision")
def record_decision(decision: dict) -> str:
    return "recorded"


@app.timer_trigger(arg_name="timer", schedule="0 0 9 * * *", run_on_startup=False)
@app.durable_client_input(client_name="client")
async def morning_digest(timer: func.TimerRequest, client) -> None:
    waiting = await client.get_status_by(runtime_status=[df.OrchestrationRuntimeStatus.Running])
    await client.start_new("digest", None, {"waiting": sum(
        1 for s in waiting if s.name == "approval")})


@app.orchestration_trigger(context_name="context")
def digest(context: df.DurableOrchestrationContext):
    return context.get_input()
