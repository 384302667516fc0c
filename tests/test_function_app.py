"""The HTTP contract, invoked the way the host invokes the functions.

Most tests call ``workflow.endpoints`` with the fake client (the glue in ``function_app`` is one
line per trigger). ``TestThroughTheRealWrapper`` goes through ``app.get_functions()`` and the
SDK's ``durable_client_input`` wrapper, which builds a *real* ``DurableOrchestrationClient``
from the binding string; its transport is pointed at the in-memory host.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from typing import Any
from urllib.parse import quote

import azure.functions as func
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import function_app
from tests.app_index import WITH_A_STEP_AFTER_THE_EVENT, functions, replay_wait
from tests.fakes import SYSTEM_KEY, FakeDurableClient, FakeHostTransport, binding_json
from tests.histories import History
from workflow import endpoints
from workflow.errors import InvalidKey
from workflow.inputs import parse_key
from workflow.settings import Settings

SETTINGS = Settings(timeout_seconds=3600)


def request(route: str, key: str, method: str = "POST", body: bytes = b"") -> func.HttpRequest:
    return func.HttpRequest(
        method=method,
        url=f"http://localhost:7071/api/{route}/{quote(key, safe='')}",
        headers={"Content-Type": "application/json"},
        params={},
        route_params={"input": key},
        body=body,
    )


def parsed(response: func.HttpResponse) -> dict[str, Any]:
    assert response.headers["Content-Type"] == "application/json"
    assert response.mimetype == "application/json"
    body = json.loads(response.get_body())
    # Management URLs carry the system key: they must never reach a caller.
    text = response.get_body().decode()
    assert SYSTEM_KEY not in text and "runtime/webhooks" not in text
    return body


@pytest.fixture
def fake() -> FakeDurableClient:
    return FakeDurableClient()


async def start(fake: Any, key: str = "aaron", method: str = "POST") -> func.HttpResponse:
    return await endpoints.start(request("start", key, method), fake, SETTINGS)


async def check(fake: Any, key: str = "aaron") -> func.HttpResponse:
    return await endpoints.check(request("check", key, "GET"), fake)


async def stop(fake: Any, key: str = "aaron", body: bytes = b"", method: str = "POST") -> func.HttpResponse:
    return await endpoints.stop(request("stop", key, method, body), fake, SETTINGS)


# -- start -----------------------------------------------------------------------------------


async def test_start_returns_202_with_location_of_check(fake: FakeDurableClient) -> None:
    response = await start(fake)
    assert response.status_code == 202
    assert response.headers["Location"] == "/api/check/aaron"
    assert response.headers["Retry-After"] == "5"
    body = parsed(response)
    assert body["input"] == "aaron"
    assert body["instanceId"] == "workflow-aaron"
    assert body["runtimeStatus"] == "Pending"


async def test_start_by_get_also_starts(fake: FakeDurableClient) -> None:
    assert (await start(fake, method="GET")).status_code == 202
    assert "workflow-aaron" in fake.instances


async def test_start_is_idempotent_while_running_409_with_existing_status(fake: FakeDurableClient) -> None:
    await start(fake)
    fake.instances["workflow-aaron"].runtime_status = "Running"
    first_run = fake.instances["workflow-aaron"]
    response = await start(fake)
    assert response.status_code == 409
    body = parsed(response)
    assert body["runtimeStatus"] == "Running"
    assert body["instanceId"] == "workflow-aaron"
    assert "already Running" in body["error"]
    assert fake.instances["workflow-aaron"] is first_run  # never replaced by a second run


async def test_start_race_lost_is_409_not_500(fake: FakeDurableClient) -> None:
    fake.before_start_new = lambda: fake.seed("workflow-aaron", "Running")
    assert (await start(fake)).status_code == 409


async def test_restart_after_finished_run_is_202(fake: FakeDurableClient) -> None:
    fake.seed("workflow-aaron", "Completed", output={"outcome": "stopped"})
    response = await start(fake)
    assert response.status_code == 202
    assert fake.instances["workflow-aaron"].runtime_status == "Pending"


async def test_start_passes_settings_into_orchestration_input(fake: FakeDurableClient) -> None:
    await start(fake)
    sent = json.loads(fake.instances["workflow-aaron"].input_text)
    assert (sent["key"], sent["timeoutSeconds"]) == ("aaron", 3600)


# -- check -----------------------------------------------------------------------------------


async def test_check_never_started_is_404(fake: FakeDurableClient) -> None:
    response = await check(fake)
    assert response.status_code == 404
    body = parsed(response)
    assert "no workflow was started for key 'aaron'" in body["error"]


async def test_check_returns_200_with_status_of_that_key_only(fake: FakeDurableClient) -> None:
    fake.seed("workflow-other", "Completed", output="not yours")
    fake.seed("workflow-aaron", "Running", custom_status={"waitingFor": "Workflow", "until": None})
    response = await check(fake)
    assert response.status_code == 200
    assert parsed(response) == {
        "input": "aaron",
        "instanceId": "workflow-aaron",
        "runtimeStatus": "Running",
        "createdTime": "2025-06-01T12:00:00Z",
        "lastUpdatedTime": "2025-06-01T12:00:00Z",
        "customStatus": {"waitingFor": "Workflow", "until": None},
        "output": None,
    }


async def test_check_shows_output_of_finished_run(fake: FakeDurableClient) -> None:
    await start(fake)
    fake.advance(60)
    # The fake host replays the real orchestrator on the event: the output is the app's own.
    assert (await stop(fake, body=b'{"a": 1}')).status_code == 202
    body = parsed(await check(fake))
    assert body["runtimeStatus"] == "Completed"
    assert body["output"] == {"outcome": "stopped", "event": {"a": 1}}
    assert body["lastUpdatedTime"] == "2025-06-01T12:01:00Z"


async def test_keys_differing_in_case_are_different_workflows(fake: FakeDurableClient) -> None:
    await start(fake, "Aaron")
    assert (await check(fake, "aaron")).status_code == 404


# -- stop ------------------------------------------------------------------------------------


async def test_stop_returns_202_and_delivers_the_body_as_payload(fake: FakeDurableClient) -> None:
    fake.seed("workflow-aaron", "Running")
    response = await stop(fake, body=b'{"approved": true}')
    assert response.status_code == 202
    assert response.headers["Location"] == "/api/check/aaron"
    assert parsed(response)["instanceId"] == "workflow-aaron"
    body = parsed(response)
    assert body["confirmed"] is True
    assert body["output"] == {"outcome": "stopped", "event": {"approved": True}}
    [(name, text)] = fake.instances["workflow-aaron"].events
    assert name == "Workflow" and json.loads(json.loads(text))["payload"] == {"approved": True}


async def test_stop_is_202_confirmed_with_the_run_running_while_a_later_step_runs(
        fake: FakeDurableClient) -> None:
    fake.orchestrator = WITH_A_STEP_AFTER_THE_EVENT
    fake.run_activities = False  # the step after the event is in flight
    await start(fake)
    response = await stop(fake, body=b'{"approved": true}')
    assert response.status_code == 202
    body = parsed(response)
    assert (body["confirmed"], body["runtimeStatus"], body["output"]) == (True, "Running", None)
    assert body["customStatus"]["outcome"] == "stopped" and body["customStatus"]["stoppedBy"]
    assert parsed(await check(fake))["customStatus"] == body["customStatus"]
    assert (await stop(fake, body=b"2")).status_code == 409  # the wait is over: one winner


async def test_stop_with_empty_body_sends_null(fake: FakeDurableClient) -> None:
    fake.seed("workflow-aaron", "Running")
    assert (await stop(fake, method="GET")).status_code == 202
    [(_, text)] = fake.instances["workflow-aaron"].events
    assert json.loads(json.loads(text))["payload"] is None


async def test_stop_unknown_key_is_404(fake: FakeDurableClient) -> None:
    response = await stop(fake)
    assert response.status_code == 404
    assert parsed(response)["instanceId"] == "workflow-aaron"


@pytest.mark.parametrize("runtime_status", ["Completed", "Failed", "Terminated", "Canceled"])
async def test_stop_finished_run_is_410(fake: FakeDurableClient, runtime_status: str) -> None:
    fake.seed("workflow-aaron", runtime_status)
    response = await stop(fake)
    assert response.status_code == 410
    assert "already finished" in parsed(response)["error"]


@pytest.mark.parametrize("body", [b"{not json", b'{"a": NaN}', b"Infinity", b"\xff\xfe", b'{"a": 1} trailing'])
async def test_stop_with_malformed_json_is_400_and_raises_nothing(fake: FakeDurableClient, body: bytes) -> None:
    fake.seed("workflow-aaron", "Running")
    response = await stop(fake, body=body)
    assert response.status_code == 400
    assert "request body must be empty or valid JSON" in parsed(response)["error"]
    assert fake.instances["workflow-aaron"].events == []


async def test_stop_payload_reaches_the_orchestrator_unchanged(fake: FakeDurableClient) -> None:
    posted = {"approved": True, "note": "ünïcode \"quoted\"", "n": [1, 2.5, None]}
    await start(fake)
    await stop(fake, body=json.dumps(posted).encode())
    instance = fake.instances["workflow-aaron"]
    # Replay what the host would hand the orchestrator's wait: the stored input and
    # EventRaised.Input.
    history = History(json.loads(instance.input_text)).event_raised(instance.events[0][1])
    assert replay_wait(history.context())["output"] == {"outcome": "stopped", "event": posted}


# -- bad input and backend failures -------------------------------------------------------------


@pytest.mark.parametrize("key", ["", " aaron", "a b", "a/b", "a\\b", "a?b", "a#b", "a\tb", "x" * 65, "@a", "é"])
@pytest.mark.parametrize("route", ["start", "check", "stop"])
async def test_bad_key_is_400_with_the_rule_and_no_backend_call(
    fake: FakeDurableClient, route: str, key: str
) -> None:
    handler = {"start": start, "check": check, "stop": stop}[route]
    response = await handler(fake, key)
    assert response.status_code == 400
    error = parsed(response)["error"]
    assert "a key is 1 to 64 characters" in error
    assert error.isascii() and error.isprintable()
    assert fake.calls == []


@given(st.text(max_size=80))
@settings(max_examples=200, deadline=None)
def test_any_route_value_is_served_or_rejected_with_400(raw: str) -> None:
    fake = FakeDurableClient()
    response = asyncio.run(endpoints.check(request("check", raw, "GET"), fake))
    try:
        parse_key(raw)
    except InvalidKey as exc:
        assert response.status_code == 400
        assert parsed(response) == {"error": str(exc)}
    else:
        assert response.status_code == 404
        assert fake.calls == [("get_status", "workflow-" + raw)]


@pytest.mark.parametrize("route", ["start", "check", "stop"])
async def test_unreachable_backend_is_503_json(fake: FakeDurableClient, route: str) -> None:
    fake.seed("workflow-aaron", "Running")
    fake.fail_next(ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 17071)"))
    response = await {"start": start, "check": check, "stop": stop}[route](fake)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert parsed(response)["error"].startswith("durable backend unavailable: ")


async def test_unexpected_backend_answer_is_502_json(fake: FakeDurableClient) -> None:
    fake.reject_next_start = (500, {"Message": "An error has occurred.", "ExceptionMessage": "boom"})
    response = await start(fake)
    assert response.status_code == 502
    assert "boom" in parsed(response)["error"]


# -- the whole surface through the SDK's real wrapper -----------------------------------------


class TestThroughTheRealWrapper:
    @pytest.fixture
    def host(self, monkeypatch: pytest.MonkeyPatch) -> FakeDurableClient:
        """Point the real client's transport at the in-memory host.

        Patching ``durable_app.DurableOrchestrationClient`` would not work: the decorator binds
        the class when ``function_app`` is imported. The client module's transport functions
        are looked up when each client is constructed, i.e. per request.
        """
        fake = FakeDurableClient()
        transport = FakeHostTransport(fake)
        client_module = importlib.import_module("azure.durable_functions.models.DurableOrchestrationClient")
        monkeypatch.setattr(client_module, "post_async_request", transport.post)
        monkeypatch.setattr(client_module, "get_async_request", transport.get)
        return fake

    @staticmethod
    async def invoke(name: str, req: func.HttpRequest) -> func.HttpResponse:
        function = functions()[name]
        trigger = function.get_trigger()
        return await function.get_user_function()(**{trigger.name: req, "client": binding_json()})

    async def test_full_lifecycle_status_codes(self, host: FakeDurableClient) -> None:
        invoke = self.invoke
        assert (await invoke("check", request("check", "aaron", "GET"))).status_code == 404
        assert (await invoke("stop", request("stop", "aaron"))).status_code == 404
        assert (await invoke("start", request("start", "aaron"))).status_code == 202
        assert (await invoke("start", request("start", "aaron"))).status_code == 409
        checked = await invoke("check", request("check", "aaron", "GET"))
        assert (checked.status_code, parsed(checked)["runtimeStatus"]) == (200, "Pending")
        assert (await invoke("stop", request("stop", "aaron", body=b"{bad"))).status_code == 400
        # The fake host replays the real orchestrator on the event, which ends the run.
        assert (await invoke("stop", request("stop", "aaron", body=b'{"ok": 1}'))).status_code == 202
        assert (await invoke("stop", request("stop", "aaron"))).status_code == 410
        done = await invoke("check", request("check", "aaron", "GET"))
        assert parsed(done)["output"] == {"outcome": "stopped", "event": {"ok": 1}}
        assert (await invoke("start", request("start", "aaron", "GET"))).status_code == 202
        assert (await invoke("check", request("check", "a b", "GET"))).status_code == 400

    async def test_start_uses_the_settings_read_at_startup(
        self, host: FakeDurableClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(function_app, "SETTINGS", Settings(timeout_seconds=30))
        await self.invoke("start", request("start", "aaron"))
        assert json.loads(host.instances["workflow-aaron"].input_text)["timeoutSeconds"] == 30


# -- a status the backend cannot give as JSON (issue 19 item 4) -------------------------------


@pytest.mark.parametrize("field", ["output", "custom_status"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), [float("-inf")]])
async def test_check_of_a_status_that_is_not_json_is_a_502_naming_the_key(
    fake: FakeDurableClient, field: str, value: Any
) -> None:
    # A Python orchestrator may return NaN (the worker's json.dumps allows it).
    fake.seed("workflow-aaron", "Completed", **{field: value})
    response = await check(fake)
    assert response.status_code == 502
    body = parsed(response)
    assert "aaron" in body["error"] and "not valid JSON" in body["error"]
    # A start refused because of that run (409 with the run) is a 502 too, never a bare 500.
    fake.seed("workflow-beth", "Running", **{field: value})
    response = await start(fake, "beth")
    assert response.status_code == 502 and "beth" in parsed(response)["error"]
