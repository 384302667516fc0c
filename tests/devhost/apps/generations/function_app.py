"""An app whose orchestrator continues as new without awaiting, then waits for an event."""
import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.orchestration_trigger(context_name="context")
def generations(context: df.DurableOrchestrationContext):
    left = context.get_input()
    if left > 0:
        context.continue_as_new(left - 1)
        return None
    value = yield context.wait_for_external_event("E")
    return value
