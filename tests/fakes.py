"""An in-memory stand-in for the Durable host, seen through two doors.

- ``FakeDurableClient``: implements the ``DurableOrchestrationClient`` methods the app uses and
  reproduces the SDK 1.7.0 quirks exactly (unknown id -> *falsy* status object; raise_event to
  a finished / unknown instance -> the SDK's bare ``Exception`` texts; start_new of an active id
  -> the host's generic failure as a bare ``Exception``).
- ``FakeHostTransport``: the same instances behind the host's RPC HTTP API, as
  ``(status code, body)`` pairs. Plugged into a *real* ``DurableOrchestrationClient`` it lets a
  test run the SDK's own URL building and response handling; ``test_lookup`` runs every case
  through both doors, so the hand-written fake cannot drift from the SDK.

Time is a field (``now``) advanced by the test, never the wall clock.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
from azure.durable_functions.models import DurableOrchestrationClient
from azure.durable_functions.models.DurableOrchestrationStatus import DurableOrchestrationStatus
from azure.functions._durable_functions import _serialize_custom_object

RPC_BASE_URL = "http://127.0.0.1:17071/durabletask/"
WEBHOOK_BASE_URL = "http://localhost:7071/runtime/webhooks/durabletask"
SYSTEM_KEY = "sYsTeMkEy=="

ACTIVE = frozenset({"Pending", "Running", "Suspended", "ContinuedAsNew"})
FINISHED = frozenset({"Completed", "Failed", "Terminated", "Canceled"})
T0 = datetime(2025, 6, 1, 12, 0, 0, tzinfo=timezone.utc)


def df_dumps(value: Any) -> str:
    """What the SDK's ``df_dumps`` produces for plain JSON values (start_new input encoding)."""
    return json.dumps(value, default=_serialize_custom_object)


def binding_json(task_hub: str = "WorkflowHub") -> str:
    """The ``durableClient`` binding string the host hands to HTTP functions (protocol §1.1)."""
    instance = f"{WEBHOOK_BASE_URL}/instances/INSTANCEID"
    query = f"taskHub={task_hub}&connection=Storage&code={SYSTEM_KEY}"
    return json.dumps(
        {
            "taskHubName": task_hub,
            "creationUrls": {
                "createNewInstancePostUri": f"{WEBHOOK_BASE_URL}/orchestrators/{{functionName}}[/{{instanceId}}]?code={SYSTEM_KEY}",
            },
            "managementUrls": {
                "id": "INSTANCEID",
                "statusQueryGetUri": f"{instance}?{query}",
                "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
                "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
                "purgeHistoryDeleteUri": f"{instance}?{query}",
            },
            "baseUrl": WEBHOOK_BASE_URL,
            "requiredQueryStringParameters": f"code={SYSTEM_KEY}",
            "rpcBaseUrl": RPC_BASE_URL,
            "httpBaseUrl": None,
        }
    )


@dataclass
class FakeInstance:
    """One orchestration instance as the host stores it."""

    instance_id: str
    name: str
    input_text: str | None
    created_time: datetime
    last_updated_time: datetime
    runtime_status: str = "Pending"
    custom_status: Any = None
    output: Any = None
    # EventRaised.Input texts, in arrival order, per event name.
    events: list[tuple[str, str]] = field(default_factory=list)

    def status_json(self) -> dict[str, Any]:
        """The host's status payload (``StatusResponsePayload``), times as ``s`` + ``Z``."""
        return {
            "name": self.name,
            "instanceId": self.instance_id,
            "runtimeStatus": self.runtime_status,
            "input": self.input_text,
            "customStatus": self.custom_status,
            "output": self.output,
            "createdTime": self.created_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "lastUpdatedTime": self.last_updated_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }


class FakeDurableClient:
    """A ``DurableOrchestrationClient`` double over a dict of instances.

    Test controls: ``seed``, ``finish``, ``now``/``advance``, ``fail_next`` (raise an exception
    from the next call, e.g. a connection error), ``before_start_new`` (a hook that runs
    between a start's status read and its ``start_new``, to stage a race) and
    ``reject_next_start`` (the host's ``(status, body)`` answer to the next start).
    """

    def __init__(self, now: datetime = T0) -> None:
        self.now = now
        # Like the host, run the orchestrator when an event arrives (see ``_process``); a test
        # turns this off to keep a run live, e.g. to stage a stop that is never confirmed.
        self.process_events = True
        # The orchestrator ``_process`` replays: the app's own unless a test sets another
        # (``df.Orchestrator.create(fn)``), e.g. the template plus a step after the event.
        self.orchestrator: Callable[..., str] | None = None
        # Like the host, run each activity the orchestrator schedules (the app's registered
        # function) and replay again; off, scheduled activities stay in flight (run Running).
        self.run_activities = True
        self.instances: dict[str, FakeInstance] = {}
        self.calls: list[tuple[str, str]] = []
        self.before_start_new: Callable[[], None] | None = None
        self.reject_next_start: tuple[int, Any] | None = None
        self._fail_next: BaseException | None = None
        self._changed: asyncio.Event | None = None

    # -- test controls ---------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Return once ``condition()`` holds, re-checking it each time the host answers a status
        read or takes an event (no sleeping: a test stages a race exactly at that point)."""
        while not condition():
            self._changed = self._changed or asyncio.Event()
            self._changed.clear()
            await self._changed.wait()

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    def fail_next(self, exc: BaseException) -> None:
        self._fail_next = exc

    def seed(self, instance_id: str, runtime_status: str = "Running", **fields: Any) -> FakeInstance:
        instance = FakeInstance(
            instance_id=instance_id,
            name=fields.pop("name", "workflow_orchestrator"),
            # What the app's start would have stored, so the orchestrator can replay it.
            input_text=fields.pop("input_text", df_dumps(
                {"key": instance_id.removeprefix("workflow-"), "timeoutSeconds": None})),
            created_time=self.now,
            last_updated_time=self.now,
            runtime_status=runtime_status,
            **fields,
        )
        self.instances[instance_id] = instance
        return instance

    def finish(self, instance_id: str, output: Any = None, runtime_status: str = "Completed") -> None:
        instance = self.instances[instance_id]
        instance.runtime_status = runtime_status
        instance.output = output
        instance.last_updated_time = self.now

    # -- the host's behaviour, as (status code, body) like HttpApiHandler ------------------

    def host_start(self, name: str, instance_id: str, input_text: str | None) -> tuple[int, Any]:
        if self.reject_next_start is not None:
            answer, self.reject_next_start = self.reject_next_start, None
            return answer
        existing = self.instances.get(instance_id)
        if existing is not None and existing.runtime_status in ACTIVE:
            # overridableExistingInstanceStates = NonRunningStates: DTFx refuses, and the host's
            # generic handler turns that into a 500 with the exception as JSON.
            return 500, {
                "Message": "An error has occurred.",
                "ExceptionMessage": (
                    f"An Orchestration instance with the status {existing.runtime_status} "
                    "already exists."
                ),
                "ExceptionType": "DurableTask.Core.Exceptions.OrchestrationAlreadyExistsException",
                "StackTrace": "   at DurableTask.AzureStorage...",
            }
        self.instances[instance_id] = FakeInstance(
            instance_id=instance_id,
            name=name,
            input_text=input_text,
            created_time=self.now,
            last_updated_time=self.now,
        )
        return 202, {"id": instance_id, "statusQueryGetUri": f"{WEBHOOK_BASE_URL}/instances/{instance_id}"}

    def host_status(self, instance_id: str) -> tuple[int, Any]:
        instance = self.instances.get(instance_id)
        self._notify()
        if instance is None:
            return 404, None
        return (202 if instance.runtime_status in ACTIVE else 200), instance.status_json()

    def host_raise_event(self, instance_id: str, event_name: str, body: Any) -> tuple[int, Any]:
        instance = self.instances.get(instance_id)
        if instance is None:
            return 404, None
        if instance.runtime_status in FINISHED:
            return 410, None
        # The host stores the parsed request body re-serialized: EventRaised.Input.
        instance.events.append((event_name, json.dumps(body)))
        instance.last_updated_time = self.now
        if self.process_events and instance.name == "workflow_orchestrator":
            self._process(instance)
        self._notify()
        return 202, None

    def _process(self, instance: FakeInstance) -> None:
        """What the host does next: replay the app's real orchestrator (or ``orchestrator``) over
        a history of the instance's start and every event raised so far, run each activity it
        schedules (``run_activities``) and replay again until it schedules nothing new, then
        apply the outcome: its custom status, and Completed with the output once it is done,
        Running otherwise (a step still in flight)."""
        from tests.histories import History

        history = History(json.loads(instance.input_text or "null"),
                          instance_id=instance.instance_id, started_at=self.now)
        for name, input_text in instance.events:
            history.event_raised(input_text, name)
        state = self._replay(history)
        completed = 0
        while self.run_activities and not state["isDone"]:
            activities = _activity_calls(state.get("actions", []))
            if len(activities) == completed:
                break
            for task_id, action in activities[completed:]:
                history.task_scheduled(task_id, action["functionName"], action.get("input"))
                history.task_completed(task_id, _run_activity(action))
            completed = len(activities)
            state = self._replay(history)
        if state.get("customStatus") is not None:
            instance.custom_status = state["customStatus"]
        instance.runtime_status = "Completed" if state["isDone"] else "Running"
        if state["isDone"]:
            instance.output = state.get("output")

    def _replay(self, history: Any) -> dict[str, Any]:
        if self.orchestrator is None:
            from tests.app_index import replay
            return replay(history.context())
        body = json.dumps(history.context())
        return json.loads(self.orchestrator(context=func.OrchestrationContext(body)))

    # -- the DurableOrchestrationClient surface, with the SDK 1.7.0 translations ------------

    def _enter(self, operation: str, instance_id: str) -> None:
        self.calls.append((operation, instance_id))
        if self._fail_next is not None:
            exc, self._fail_next = self._fail_next, None
            raise exc

    async def start_new(
        self,
        orchestration_function_name: str,
        instance_id: str | None = None,
        client_input: Any | None = None,
        version: str | None = None,
    ) -> str:
        assert instance_id is not None, "the app always chooses the instance id"
        if self.before_start_new is not None:
            hook, self.before_start_new = self.before_start_new, None
            hook()
        self._enter("start_new", instance_id)
        input_text = df_dumps(client_input) if client_input is not None else None
        code, body = self.host_start(orchestration_function_name, instance_id, input_text)
        if code <= 202 and body:
            return body["id"]
        if code == 400:
            raise Exception(body["ExceptionMessage"])
        raise Exception(body)

    async def get_status(
        self,
        instance_id: str,
        show_history: bool = False,
        show_history_output: bool = False,
        show_input: bool = False,
    ) -> DurableOrchestrationStatus:
        self._enter("get_status", instance_id)
        _, body = self.host_status(instance_id)
        # The SDK maps a 404's empty body to "" and builds a status from it: falsy, not None.
        return DurableOrchestrationStatus.from_json(body if body is not None else "")

    async def raise_event(
        self,
        instance_id: str,
        event_name: str,
        event_data: Any = None,
        task_hub_name: str | None = None,
        connection_name: str | None = None,
    ) -> None:
        if event_name == "":
            raise ValueError("event_name must be a non-empty string.")
        self._enter("raise_event", instance_id)
        # The SDK posts json.dumps(event_data) as a JSON *string*: the host parses the request
        # body back to that string, so the orchestrator receives the text, not the value.
        code, _ = self.host_raise_event(instance_id, event_name, json.dumps(event_data))
        messages = {
            410: f"Instance with ID {instance_id} is gone: either completed or failed",
            404: f"No instance with ID {instance_id} found.",
            400: "Only application/json request content is supported",
        }
        if code != 202:
            raise Exception(messages.get(code, f"Webhook returned unrecognized status code {code}"))


def _activity_calls(actions: list[Any]) -> list[tuple[int, dict[str, Any]]]:
    """``(task id, CallActivity action)`` in the order the orchestrator scheduled them. The SDK
    numbers every task but an external-event wait from 0 in creation order
    (``DurableOrchestrationContext._add_to_open_tasks``); compound tasks number their children."""
    calls: list[tuple[int, dict[str, Any]]] = []
    next_id = 0

    def walk(items: list[Any]) -> None:
        nonlocal next_id
        for action in items:
            if isinstance(action, list):
                walk(action)
            elif "compoundActions" in action:
                walk(action["compoundActions"])
            elif action["actionType"] != 6:  # WaitForExternalEvent: keyed by name, no number
                if action["actionType"] == 0:  # CallActivity
                    calls.append((next_id, action))
                next_id += 1

    walk(actions)
    return calls


def _run_activity(action: dict[str, Any]) -> str:
    """Run the app's activity function the action names, as the worker does: the input decoded
    from the action's JSON text, the result encoded back (``TaskCompleted.Result``). An
    exception the activity raises propagates to the test (no ``TaskFailed`` is modelled)."""
    from tests.app_index import functions

    function = functions().get(action["functionName"])
    assert function is not None, (
        f"the orchestrator calls activity {action['functionName']!r}, which the app does not "
        "register; set run_activities = False to leave it in flight")
    argument = json.loads(action["input"]) if action.get("input") is not None else None
    result = function.get_user_function()(**{function.get_trigger().name: argument})
    if inspect.iscoroutine(result):
        # An async activity, called from inside the test's running loop: run it on its own.
        with ThreadPoolExecutor(max_workers=1) as pool:
            result = pool.submit(asyncio.run, result).result()
    return df_dumps(result)


class FakeHostTransport:
    """The fake's instances behind the host's RPC HTTP API, in the SDK's transport signature.

    ``post``/``get`` replace ``http_utils.post_async_request``/``get_async_request``: they take
    the URL the SDK built and the object it would send with ``json=``, and return
    ``[status, parsed body]`` as the SDK's transport does (a GET's empty body becomes ``""``).
    """

    def __init__(self, fake: FakeDurableClient) -> None:
        self.fake = fake
        self.requests: list[tuple[str, str, Any]] = []

    def client(self) -> DurableOrchestrationClient:
        """A real SDK client whose every request goes to this transport."""
        client = DurableOrchestrationClient(binding_json())
        client._post_async_request = self.post
        client._get_async_request = self.get
        return client

    async def post(
        self,
        url: str,
        data: Any = None,
        trace_parent: str | None = None,
        trace_state: str | None = None,
        function_invocation_id: str | None = None,
    ) -> list[Any]:
        self.requests.append(("POST", url, data))
        parts = self._path(url)
        fake = self.fake
        if parts[0] == "orchestrators" and len(parts) == 3:
            if fake.before_start_new is not None:
                hook, fake.before_start_new = fake.before_start_new, None
                hook()
            fake._enter("start_new", parts[2])
            # The request body is json.dumps(data); the host parses it back to ``data``.
            code, body = fake.host_start(parts[1], parts[2], data)
            return [code, body]
        if parts[0] == "instances" and len(parts) == 4 and parts[2] == "raiseEvent":
            fake._enter("raise_event", parts[1])
            code, body = fake.host_raise_event(parts[1], parts[3], data)
            return [code, body]
        return [404, None]

    async def get(self, url: str, function_invocation_id: str | None = None) -> list[Any]:
        self.requests.append(("GET", url, None))
        parts = self._path(url)
        fake = self.fake
        if parts[0] == "instances" and len(parts) == 2:
            fake._enter("get_status", parts[1])
            code, body = fake.host_status(parts[1])
            return [code, "" if body is None else body]
        return [404, ""]

    @staticmethod
    def _path(url: str) -> list[str]:
        assert url.startswith(RPC_BASE_URL), f"the SDK must call rpcBaseUrl, called {url}"
        return urlsplit(url[len(RPC_BASE_URL):]).path.split("/")
