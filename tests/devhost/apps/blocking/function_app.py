"""Orchestrators that misbehave as users' do: one blocks in time.sleep, one loops without
yielding once, one loops forever and swallows every exception, one continues as new forever
without an await. host.json sets functionTimeout to 4 s."""
import time

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
#: How many times ``spinner`` was invoked in this process.
SPINS = {"count": 0}


@app.orchestration_trigger(context_name="context")
def sleeper(context: df.DurableOrchestrationContext):
    seconds, witness = context.get_input()
    with open(witness, "a") as fh:  # a test witness: the episode has begun
        fh.write("asleep\n")
    time.sleep(seconds)
    return "slept"


@app.orchestration_trigger(context_name="context")
def spinner(context: df.DurableOrchestrationContext):
    SPINS["count"] += 1
    if SPINS["count"] == 1:
        while True:  # forgot to yield: only functionTimeout ends this
            pass
    return f"recovered after {SPINS['count'] - 1} timeout(s)"


@app.orchestration_trigger(context_name="context")
def stubborn(context: df.DurableOrchestrationContext):
    while True:
        try:
            while True:
                pass
        except BaseException:  # swallows even the timeout: its thread never ends
            pass


@app.orchestration_trigger(context_name="context")
def eternal(context: df.DurableOrchestrationContext):
    context.continue_as_new((context.get_input() or 0) + 1)  # no await in a generation
    return None


@app.orchestration_trigger(context_name="context")
def quick(context: df.DurableOrchestrationContext):
    value = yield context.call_activity("echo", context.get_input())
    return value


@app.activity_trigger(input_name="value")
def echo(value):
    return value


@app.orchestration_trigger(context_name="context")
def slow_call(context: df.DurableOrchestrationContext):
    try:
        yield context.call_activity("nap", context.get_input())
    except Exception as exc:
        return str(exc)
    return "finished"


@app.activity_trigger(input_name="seconds")
def nap(seconds):
    time.sleep(seconds)
    return seconds
