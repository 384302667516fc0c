"""The Durable extension's HTTP management API, as the Python client and webhooks call it.

Served twice by :mod:`devhost.host.server`: under the client's ``rpcBaseUrl`` (``/durabletask/``) and
under the public webhook path (``/runtime/webhooks/durabletask/``), like the real
``HttpApiHandler``. Status codes follow the host (see ``shared/durable-protocol.md`` §2):
404 unknown instance, 410 finished instance, 400 bad request, 202 accepted, 501 for what devhost
does not implement (entities, rewind).

Guarantees: every state change is committed before the reply is produced, so a 202 means the
message is durable; no handler raises, every failure becomes a JSON error reply.
"""
from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import quote, unquote

from devhost.app.limits import body_limit, too_large
from devhost.app.loader import LoadedApp
from devhost.app.status import LIVE, TERMINAL, RuntimeStatus
from devhost.core import history as h, payloads
from devhost.core.engine import Engine
from devhost.core.store import (
    Instance, InstanceAlreadyRunning, InstanceGone, InstanceNotFound, NewInstance, NewMessage,
    Store,
)

WEBHOOK_PATH = "/runtime/webhooks/durabletask"
RPC_PATH = "/durabletask"
CONTINUATION_HEADER = "x-ms-continuation-token"
#: The shortest pause between two status reads of a start that waits for completion: the host
#: honours any ``pollingInterval``, but a zero one would spin devhost's only event loop.
MIN_POLLING_INTERVAL = 0.01
#: ``OrchestrationRuntimeStatus`` numbers, which the host's ``Enum.TryParse`` also accepts.
#: .NET ``int`` (Int32), the range ``int.TryParse`` accepts for ``top``.
_INT32 = (-2**31, 2**31 - 1)
_STATUS_NUMBERS = {"0": "Running", "1": "Completed", "2": "ContinuedAsNew", "3": "Failed",
                   "4": "Canceled", "5": "Terminated", "6": "Pending", "7": "Suspended"}


@dataclass(frozen=True)
class WaitForCompletion:
    """A start (or restart) asked to wait: ``timeout`` and ``interval`` in seconds."""

    instance_id: str
    timeout: float
    interval: float


@dataclass(frozen=True)
class Reply:
    """A transport-neutral HTTP reply: ``value`` is its JSON body (None: empty body).

    Each reply's value is built fresh, so an in-process caller may use it without the JSON
    round trip (the body bytes are produced only for HTTP).
    """

    status: int
    value: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: Set on a check-status reply whose request asked to wait for completion; only
    #: :meth:`ManagementApi.serve` waits, :meth:`ManagementApi.handle` answers the 202 at once.
    wait: WaitForCompletion | None = None

    @property
    def body(self) -> bytes:
        return b"" if self.value is None else json.dumps(self.value).encode()


def _json(status: int, value: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, value,
                 {"Content-Type": "application/json; charset=utf-8", **(headers or {})})


def _error(status: int, message: str, exception_type: str = "System.ArgumentException") -> Reply:
    """The host's error body shape (``Message``/``ExceptionMessage``/...), which the Python
    client reads ``ExceptionMessage`` from."""
    return _json(status, {"Message": "Something went wrong while processing your request",
                          "ExceptionMessage": message, "ExceptionType": exception_type,
                          "StackTrace": None})


def _not_found(instance_id: str) -> Reply:
    return _error(404, f"No instance with ID '{instance_id}' found.")


def _gone(instance_id: str) -> Reply:
    return _error(410, f"The instance '{instance_id}' has already finished.")


def _flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    """A boolean parameter as .NET's ``bool.TryParse`` reads it: ``true``/``false`` in any case;
    anything else (absent, empty, ``yes``) is the default, as on the host."""
    value = (query.get(name) or "").strip().lower()
    if value in ("true", "false"):
        return value == "true"
    return default


def _parse_time(query: Mapping[str, str], name: str) -> float | None:
    """A time filter; None when absent or unparseable (the host's ``DateTime.TryParse`` then
    leaves the filter unset rather than failing the request)."""
    value = query.get(name)
    if not value:
        return None
    try:
        return h.parse_timestamp(value.strip())
    except ValueError:
        return None


def _statuses(query: Mapping[str, str]) -> list[str] | None:
    """The ``runtimeStatus`` filter as the host reads it (``Enum.TryParse`` of each
    comma-separated part: exact names or numbers); parts it cannot parse are dropped, and
    nothing parseable means no filter. A number that names no status matches nothing."""
    wanted: list[str] = []
    for part in query.get("runtimeStatus", "").split(","):
        part = part.strip()
        if part in RuntimeStatus._value2member_map_:
            wanted.append(part)
            continue
        try:
            number = int(part)
        except ValueError:
            continue
        # A number that names no status is still a filter, one no instance matches.
        wanted.append(_STATUS_NUMBERS.get(str(number), part))
    return wanted or None


def _seconds(query: Mapping[str, str], name: str) -> float | None:
    """A ``double.TryParse`` of seconds (``timeout``, ``pollingInterval``); None if absent or
    not a finite number."""
    try:
        value = float((query.get(name) or "").strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _wait_request(instance_id: str, query: Mapping[str, str]) -> WaitForCompletion | None:
    timeout, interval = _seconds(query, "timeout"), _seconds(query, "pollingInterval")
    if timeout is None or interval is None:
        return None
    return WaitForCompletion(instance_id, timeout, interval)


def terminate_output(reason: str | None) -> Any:
    """The value a terminated instance's status shows as ``output``: the host stores the reason
    text and its status API parses it (``DurableClient.ParseToJToken``), so a JSON reason is
    that JSON's value and any other text is the string itself."""
    if reason is None:
        return None
    text = reason.strip()
    if not text:
        return ""

    try:
        # Text the host's reader refuses (NaN, 1e999, nesting past its MaxDepth) stays text,
        # as ParseToJToken's JsonReaderException fallback keeps it; the output is valid JSON.
        return payloads.parse_strict(text.encode())
    except ValueError:
        return reason


def _loads_or_none(text: str | None) -> Any:
    return payloads.read_stored(text)


class ManagementApi:
    """Answers management requests against one store and engine."""

    def __init__(self, store: Store, engine: Engine, app: LoadedApp,
                 max_body: int | None = None) -> None:
        self.store, self.engine, self.app = store, engine, app
        #: The request body limit (:mod:`devhost.app.limits`), also for in-process client calls.
        self.max_body = body_limit() if max_body is None else max_body

    # ---- payloads ------------------------------------------------------------------------------

    def management_urls(self, origin: str, instance_id: str) -> dict[str, str]:
        """The check-status payload: the URLs ``create_check_status_response`` hands out."""
        base = f"{origin}{WEBHOOK_PATH}/instances/{quote(instance_id, safe='')}"
        qs = f"taskHub={quote(self.app.hub_name)}&connection=Storage"
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{base}?{qs}",
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{qs}",
            "terminatePostUri": f"{base}/terminate?reason={{text}}&{qs}",
            "rewindPostUri": f"{base}/rewind?reason={{text}}&{qs}",
            "purgeHistoryDeleteUri": f"{base}?{qs}",
            "restartPostUri": f"{base}/restart?{qs}",
            "suspendPostUri": f"{base}/suspend?reason={{text}}&{qs}",
            "resumePostUri": f"{base}/resume?reason={{text}}&{qs}",
        }

    def binding(self, origin: str, rpc_origin: str) -> str:
        """The ``durableClient`` binding JSON string the host passes to client functions."""
        base = f"{origin}{WEBHOOK_PATH}"
        urls = self.management_urls(origin, "INSTANCEID")
        return json.dumps({
            "taskHubName": self.app.hub_name,
            "connectionName": "Storage",
            "creationUrls": {
                "createNewInstancePostUri":
                    f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]",
                "createAndWaitOnNewInstancePostUri":
                    f"{base}/orchestrators/{{functionName}}[/{{instanceId}}]"
                    f"?timeout={{timeoutInSeconds}}&pollingInterval={{intervalInSeconds}}",
            },
            "managementUrls": urls,
            "baseUrl": base,
            "requiredQueryStringParameters": "",
            "rpcBaseUrl": f"{rpc_origin}{RPC_PATH}/",
            "httpBaseUrl": None,
        })

    def status_payload(self, inst: Instance, show_input: bool = True,
                       show_history: bool = False, show_history_output: bool = False
                       ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "name": inst.name,
            "instanceId": inst.instance_id,
            "runtimeStatus": inst.status.value,
            "input": _loads_or_none(inst.input) if show_input else None,
            "customStatus": _loads_or_none(inst.custom_status),
            "output": _loads_or_none(inst.output),
            "createdTime": h.format_status_time(inst.created_at),
            "lastUpdatedTime": h.format_status_time(inst.updated_at),
        }
        if show_history:
            events = []
            for text in self.store.history(inst.instance_id):
                ev = json.loads(text)
                ev["EventType"] = h.EventType(ev["EventType"]).name.title().replace("_", "")
                if not show_history_output:
                    ev.pop("Result", None)
                events.append(ev)
            payload["historyEvents"] = events
        return payload

    # ---- dispatch ------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: Mapping[str, str],
               headers: Mapping[str, str], body: bytes, origin: str,
               request_url: str | None = None) -> Reply:
        """Serve one request; ``path`` is relative to the API base, still percent-encoded.

        ``request_url`` (the full URL as requested) becomes the ``Location`` of a 202 status
        answer, as on the real host.
        """
        parts = [unquote(p) for p in path.strip("/").split("/")] if path.strip("/") else []
        method = method.upper()
        try:
            if parts[:1] == ["orchestrators"] and len(parts) in (2, 3) and method == "POST":
                return self.start(parts[1], parts[2] if len(parts) == 3 else None, query, body,
                                  origin)
            if parts[:1] == ["instances"]:
                if len(parts) == 1:
                    if method == "GET":
                        return self.list(query, headers)
                    if method == "DELETE":
                        return self.purge_by(query)
                elif len(parts) == 2:
                    if method == "GET":
                        return self.status(parts[1], query, request_url)
                    if method == "DELETE":
                        return self.purge(parts[1])
                elif len(parts) == 4 and parts[2] == "raiseEvent" and method == "POST":
                    return self.raise_event(parts[1], parts[3], headers, body)
                elif len(parts) == 3 and method == "POST":
                    operation = parts[2]
                    if operation in ("terminate", "suspend", "resume"):
                        return self.control(parts[1], operation, query.get("reason"))
                    if operation == "restart":
                        return self.restart(parts[1], query, origin)
                    if operation == "rewind":
                        return _error(501, "devhost does not support rewind",
                                      "System.NotImplementedException")
            if parts[:1] == ["entities"]:
                return _error(501, "devhost does not support Durable Entities; run the app on "
                                   "Azure Functions (or Core Tools) to use them",
                              "System.NotImplementedException")
        except ValueError as exc:
            return _error(400, str(exc))
        return _error(404, f"no Durable management route for {method} /{path.strip('/')}")

    async def serve(self, method: str, path: str, query: Mapping[str, str],
                    headers: Mapping[str, str], body: bytes, origin: str,
                    request_url: str | None = None) -> Reply:
        """:meth:`handle`, plus what only an awaiting caller can do: a start or restart with
        ``timeout`` and ``pollingInterval`` (seconds) waits for the instance to finish, like
        the host's ``WaitForCompletionOrCreateCheckStatusResponseAsync``: 200 with the output
        when it completed in time, the status answer (200) when it failed or was terminated,
        else the 202 check-status reply. ``pollingInterval`` > ``timeout`` is a 400 (after
        the start, as on the host). A body past :attr:`max_body` is a 413, as over HTTP."""
        if len(body) > self.max_body:
            return _json(413, too_large(self.max_body, len(body)))
        reply = self.handle(method, path, query, headers, body, origin, request_url)
        if reply.wait is None:
            return reply
        return await self._wait_for_completion(reply, reply.wait)

    async def _wait_for_completion(self, check_status: Reply, wait: WaitForCompletion) -> Reply:
        if wait.interval > wait.timeout:
            return _json(400, {"Message": "One or more of the arguments submitted is incorrect",
                               "ExceptionMessage": f"Total timeout {wait.timeout:g} should be "
                                                   f"bigger than retry timeout "
                                                   f"{wait.interval:g}",
                               "ExceptionType": "System.ArgumentException",
                               "StackTrace": None})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait.timeout
        while True:
            inst = self.store.get(wait.instance_id)
            if inst is not None and inst.status in TERMINAL:
                break
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Reply(check_status.status, check_status.value, check_status.headers)
            await asyncio.sleep(max(MIN_POLLING_INTERVAL, min(wait.interval, remaining)))
        if inst.status == RuntimeStatus.COMPLETED:
            return _json(200, _loads_or_none(inst.output))
        return self.status(wait.instance_id, {})

    # ---- operations ----------------------------------------------------------------------------

    def start(self, name: str, instance_id: str | None, query: Mapping[str, str], body: bytes,
              origin: str) -> Reply:
        if name not in self.app.orchestrators:
            return _error(400, f"The function '{name}' doesn't exist, is disabled, or is not an "
                               f"orchestrator function. Additional info: known orchestrators "
                               f"are {sorted(self.app.orchestrators)}.")
        if instance_id is None or instance_id == "":
            instance_id = uuid.uuid4().hex
        problem = _instance_id_problem(instance_id)
        if problem:
            return _error(400, problem)
        if body.strip():
            try:
                stored_input: str | None = h.dumps(payloads.parse_strict(body))
            except ValueError as exc:
                # HttpApiHandler.HandleStartOrchestratorRequestAsync: JsonReaderException -> 400.
                return _error(400, f"the request body is not valid JSON: {exc}")
        else:
            stored_input = None
        return self._create(name, instance_id, stored_input, origin, query)

    def _create(self, name: str, instance_id: str, stored_input: str | None,
                origin: str, query: Mapping[str, str] | None = None) -> Reply:
        at = self.engine.now()
        execution_id = h.new_execution_id()
        new = NewInstance(instance_id, execution_id, name, stored_input, at,
                          h.execution_started(name, instance_id, execution_id, stored_input, at))
        try:
            self.store.create(new, self.app.overridable)
        except InstanceAlreadyRunning as exc:
            # The real host surfaces DTFx's exception through its generic 500 handler.
            return _error(500, str(exc),
                          "DurableTask.Core.Exceptions.OrchestrationAlreadyExistsException")
        self.engine.forget(instance_id)
        self.engine.wake(instance_id)
        urls = self.management_urls(origin, instance_id)
        reply = _json(202, urls, {"Location": urls["statusQueryGetUri"], "Retry-After": "10"})
        wait = _wait_request(instance_id, query or {})
        return reply if wait is None else Reply(reply.status, reply.value, reply.headers, wait)

    def status(self, instance_id: str, query: Mapping[str, str],
               request_url: str | None = None) -> Reply:
        inst = self.store.get(instance_id)
        if inst is None:
            return Reply(404)
        payload = self.status_payload(inst, _flag(query, "showInput", True),
                                      _flag(query, "showHistory", False),
                                      _flag(query, "showHistoryOutput", False))
        if inst.status == RuntimeStatus.FAILED and _flag(
                query, "returnInternalServerErrorOnFailure", False):
            return _json(500, payload)
        if inst.status in TERMINAL:
            return _json(200, payload)
        # The host answers a live instance with 202, ``Location`` = the request URI (poll here
        # again) and ``Retry-After: 5`` (HttpApiHandler.HandleGetStatusRequestAsync).
        headers = {"Retry-After": "5"}
        if request_url:
            headers["Location"] = request_url
        return _json(202, payload, headers)

    def list(self, query: Mapping[str, str], headers: Mapping[str, str]) -> Reply:
        """One page of statuses. Filters the host cannot parse (an unknown or lowercase
        ``runtimeStatus``, ``top=abc``, ``createdTimeFrom=yesterday``) are ignored, as the
        host's ``TryParse`` calls ignore them; a parsed ``top`` below 1 is a 400."""
        try:
            top = int((query.get("top") or "").strip())
        except ValueError:
            top = 100
        if not _INT32[0] <= top <= _INT32[1]:
            top = 100  # the host's int.TryParse (TryGetIntQueryParameterValue) fails: no filter
        if top <= 0:
            raise ValueError("top must be a positive number")
        token = headers.get(CONTINUATION_HEADER) or query.get("continuationToken")
        page, next_token = self.store.query(
            created_from=_parse_time(query, "createdTimeFrom"),
            created_to=_parse_time(query, "createdTimeTo"), statuses=_statuses(query),
            prefix=query.get("instanceIdPrefix") or None, top=top,
            continuation=None if token in (None, "", "null") else token)
        show_input = _flag(query, "showInput", True)
        extra = {CONTINUATION_HEADER: next_token} if next_token else {}
        return _json(200, [self.status_payload(i, show_input) for i in page], extra)

    def raise_event(self, instance_id: str, event_name: str, headers: Mapping[str, str],
                    body: bytes) -> Reply:
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
        problem, value = None, None
        if not content_type.lower().startswith("application/json"):
            problem = "Only application/json request content is supported"
        else:
            try:
                # An empty body too: ConvertToJToken("") throws JsonReaderException, which
                # HttpApiHandler.HandleRaiseEventRequestAsync answers 400 "Invalid JSON content".
                if not body.strip():
                    raise ValueError("the body is empty; send a JSON value (null for none)")
                value = payloads.parse_strict(body)
            except ValueError as exc:
                problem = f"Invalid JSON content: {exc}"
        if problem is not None:
            # The host answers 404/410 before it looks at the content
            # (HttpApiHandler.HandleRaiseEventRequestAsync); only a bad request pays this read.
            known = self.store.get(instance_id)
            if known is None:
                return _not_found(instance_id)
            if known.status not in LIVE:
                return _gone(instance_id)
            return _error(400, problem)
        at = self.engine.now()
        event = h.event(h.EventType.EVENT_RAISED, at, -1, Name=event_name,
                        Input=None if value is None else h.dumps(value))
        return self._enqueue(NewMessage(instance_id, "event", event, at))

    def control(self, instance_id: str, operation: str, reason: str | None) -> Reply:
        """Terminate, suspend or resume: 404 unknown, 410 finished, 202 queued. As on the host
        (``DurableClient.SuspendAsync``/``ResumeAsync``), suspending an instance that is
        already Suspended, or resuming one that is not, is refused with a 500 naming the state.
        A terminate's reason becomes the status ``output`` the way the host shows it
        (:func:`terminate_output`)."""
        if operation in ("suspend", "resume"):
            inst = self.store.get(instance_id)
            if inst is not None and inst.status in LIVE and \
                    (inst.status == RuntimeStatus.SUSPENDED) == (operation == "suspend"):
                return _error(500, f"Cannot {operation} the orchestration instance "
                                   f"{instance_id} because instance is in the "
                                   f"{inst.status.value} state.",
                              "System.InvalidOperationException")
        payload: dict[str, Any] = {"reason": reason}
        if operation == "terminate":
            # The engine records ``reason`` as the output's JSON value.
            payload["reason"] = terminate_output(reason)
        return self._enqueue(NewMessage(instance_id, operation, payload, self.engine.now()))

    def _enqueue(self, message: NewMessage) -> Reply:
        """Queue a message for a live instance: 202 once committed, else 404 / 410."""
        try:
            self.store.enqueue(message, LIVE)
        except InstanceNotFound:
            return _not_found(message.instance_id)
        except InstanceGone:
            return _gone(message.instance_id)
        self.engine.wake(message.instance_id)
        return Reply(202)

    def restart(self, instance_id: str, query: Mapping[str, str], origin: str) -> Reply:
        inst = self.store.get(instance_id)
        if inst is None:
            return _error(400, f"No instance with ID '{instance_id}' found.")
        new_id = uuid.uuid4().hex if _flag(query, "restartWithNewInstanceId", True) \
            else instance_id
        return self._create(inst.name, new_id, inst.input, origin, query)

    def purge(self, instance_id: str) -> Reply:
        deleted = self.store.purge([instance_id])
        self.engine.forget(instance_id)
        if not deleted:
            return Reply(404)
        return _json(200, {"instancesDeleted": deleted})

    def purge_by(self, query: Mapping[str, str]) -> Reply:
        created_from = _parse_time(query, "createdTimeFrom")
        if created_from is None:
            return _error(400, "A createdTimeFrom query string parameter is required.")
        ids = self.store.ids_matching(created_from, _parse_time(query, "createdTimeTo"),
                                      _statuses(query))
        deleted = self.store.purge(ids)
        for iid in ids:
            self.engine.forget(iid)
        if not deleted:
            return Reply(404)
        return _json(200, {"instancesDeleted": deleted})


#: What the host refuses in an instance id: / \ ? # and control characters (C0, DEL, C1).
_INVALID_ID_CHARACTER = re.compile(r"[/\\?#\x00-\x1f\x7f-\x9f]")


def _instance_id_problem(instance_id: str) -> str | None:
    """The host's instance id rules (``DurableClient.cs``); None when the id is acceptable."""
    if instance_id.startswith("@"):
        return f"Orchestration instance ids must not start with @: '{instance_id}'"
    if len(instance_id) > 256:
        return "Instance ID lengths must not exceed 256 characters."
    if _INVALID_ID_CHARACTER.search(instance_id):
        return (f"Instance ID '{instance_id}' contains invalid characters: "
                f"/ \\ ? # and control characters are not allowed.")
    return None
