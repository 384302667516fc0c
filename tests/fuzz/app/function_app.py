"""The fuzzer's v2 app: ONE generic orchestrator that interprets the program it receives as
input (no code is generated), one generic activity and nothing else.

Program (JSON, built by ``tests.fuzz.generator``)::

    input  = {"p": program, "g": generation, "acc": [trace so far]}
    program = {"gens": [[statement, ...], ...]}     # one list per continue_as_new generation
    statement = {"t": "do", "x": expr, "catch": bool}  # yield expr, append its value
              | {"t": "cs", "v": value}                # set_custom_status(v)
              | {"t": "raise", "k": key}               # uncaught failure "boom[k]"
              | {"t": "can"}                           # continue_as_new(next generation)
    expr = {"e": "act", "k": key, "f": [bool per attempt], "d": seconds, "v": value,
            "r": null | [first_retry_ms, max_attempts]}
         | {"e": "timer", "d": seconds}                # may be negative (a timer in the past)
         | {"e": "wait", "n": name}
         | {"e": "any", "of": [expr, ...]} | {"e": "all", "of": [expr, ...]}
         | {"e": "sub", "k": key, "p": program, "id": null | suffix | "=", "r": null | [ms, max]}
           (id "=": the caller's own instance id)

The orchestrator returns the trace (one value per ``do``/``cs`` statement); the reference
interpreter (``tests.fuzz.reference``) computes the same trace from the host's rules.

The activity sleeps in *virtual* time (``SLEEP``, installed by the runner) and decides success or
failure from how many of its earlier attempts completed (``ATTEMPTS``), counted when an attempt
returns: an attempt cut by a crash before it returned runs again with the same outcome.
"""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Any, Awaitable, Callable

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

#: Installed by the runner: ``await SLEEP(seconds)`` returns once virtual time has advanced.
SLEEP: list[Callable[[float, str], Awaitable[None]]] = []
#: Completed attempts per call key (instance/k), and every execution's key (counted, not used).
ATTEMPTS: dict[str, int] = {}
EXECUTIONS: list[str] = []
MARKER = re.compile(r"boom\[[^\]]*\]")


def marker(exc: BaseException | str) -> str:
    """The first ``boom[...]`` marker in a failure's text (what the program raised)."""
    found = MARKER.search(str(exc))
    return found.group(0) if found else "unmarked"


@app.activity_trigger(input_name="spec")
async def fuzz_activity(spec: dict[str, Any]) -> dict[str, Any]:
    key = spec["key"]
    EXECUTIONS.append(key)
    if spec["d"] > 0 and SLEEP:
        await SLEEP[0](spec["d"], f"{key}#{ATTEMPTS.get(key, 0)}")
    attempt = ATTEMPTS.get(key, 0)
    ATTEMPTS[key] = attempt + 1
    pattern = spec["f"]
    if pattern[min(attempt, len(pattern) - 1)]:
        raise RuntimeError(f"boom[{spec['k']}#{attempt}]")
    return {"k": spec["k"], "n": attempt, "v": spec["v"]}


def _build(context: df.DurableOrchestrationContext, x: dict[str, Any]) -> Any:
    kind = x["e"]
    if kind == "act":
        spec = {"key": f"{context.instance_id}/{x['k']}", "k": x["k"], "f": x["f"], "d": x["d"],
                "v": x["v"]}
        if x["r"]:
            return context.call_activity_with_retry(
                "fuzz_activity", df.RetryOptions(x["r"][0], x["r"][1]), spec)
        return context.call_activity("fuzz_activity", spec)
    if kind == "timer":
        return context.create_timer(context.current_utc_datetime + timedelta(seconds=x["d"]))
    if kind == "wait":
        return context.wait_for_external_event(x["n"])
    if kind == "sub":
        child_input = {"p": x["p"], "g": 0, "acc": []}
        child_id = None if x["id"] is None else context.instance_id if x["id"] == "=" \
            else f"{context.instance_id}-{x['id']}"
        if x["r"]:
            return context.call_sub_orchestrator_with_retry(
                "fuzz", df.RetryOptions(x["r"][0], x["r"][1]), child_input, child_id)
        return context.call_sub_orchestrator("fuzz", child_input, child_id)
    tasks = [_build(context, child) for child in x["of"]]
    return context.task_any(tasks) if kind == "any" else context.task_all(tasks)


def _value(task: Any, x: dict[str, Any]) -> Any:
    """The trace value of a completed task (a failed leaf is ``["err", marker]``)."""
    kind = x["e"]
    if task.state.name == "FAILED":  # a failed activity, sub-orchestration or task_all
        return ["err", marker(task.result)]
    if kind == "any":
        winner = task.result
        index = next(i for i, child in enumerate(task.children) if child is winner)
        return ["any", index, _value(winner, x["of"][index])]
    if kind == "all":
        return [_value(child, sub) for child, sub in zip(task.children, x["of"], strict=True)]
    if kind == "timer":
        return "t"
    return task.result


@app.orchestration_trigger(context_name="context")
def fuzz(context: df.DurableOrchestrationContext):
    given = context.get_input()
    program, generation, acc = given["p"], given["g"], given["acc"]
    for statement in program["gens"][generation]:
        kind = statement["t"]
        if kind == "cs":
            context.set_custom_status(statement["v"])
            acc.append("cs")
        elif kind == "raise":
            raise RuntimeError(f"boom[{statement['k']}]")
        elif kind == "can":
            context.continue_as_new({"p": program, "g": generation + 1, "acc": acc})
            return None
        else:
            task = _build(context, statement["x"])
            try:
                yield task
            except Exception as exc:
                if not statement["catch"]:
                    raise
                acc.append(["err", marker(exc)])
                continue
            acc.append(_value(task, statement["x"]))
    return acc
