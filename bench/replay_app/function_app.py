"""The app of ``bench.replay_load``: orchestrations whose histories are long, cheaply.

``long_history`` fans out ``n`` trivial activities (about 2n history events in a few episodes),
then replays its whole history once per batch of ``Tick`` events until one says ``"stop"``.
"""
import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.activity_trigger(input_name="i")
def noop(i: int) -> int:
    return i


@app.orchestration_trigger(context_name="context")
def long_history(context: df.DurableOrchestrationContext):
    yield context.task_all([context.call_activity("noop", i) for i in range(context.get_input())])
    context.set_custom_status("ready")
    while True:
        tick = yield context.wait_for_external_event("Tick")
        if tick == "stop":
            return "stopped"


@app.orchestration_trigger(context_name="context")
def idle(context: df.DurableOrchestrationContext):
    yield context.wait_for_external_event("Never")
