"""The management API answers with the real host's status codes (durable-protocol.md §2), under
both the client's ``rpcBaseUrl`` (``/durabletask/``) and the public webhook path, and the Python
client interprets those answers as it does against the real host."""
from __future__ import annotations

import json
from typing import AsyncIterator, Callable
from urllib.parse import quote

import aiohttp
import pytest
from hypothesis import given, strategies as st

from devhost.tools import management
from tests.devhost.support import CAPABILITIES, RPC, WEBHOOK, Api, fresh_id
from devhost.host.process import DevhostProcess

pytestmark = pytest.mark.e2e
BASES = pytest.mark.parametrize("base", [RPC, WEBHOOK], ids=["rpc", "webhook"])


@pytest.fixture(scope="module", params=["fastpath", "loopback-http"])
def host(request: pytest.FixtureRequest,
         module_devhost_factory: Callable[..., DevhostProcess]) -> DevhostProcess:
    """Once with devhost's in-process client shortcut, once with the SDK's own HTTP calls to
    ``rpcBaseUrl`` (``DEVHOST_FASTPATH=0``): the client must see the same answers both ways."""
    env = {"DEVHOST_FASTPATH": "0"} if request.param == "loopback-http" else None
    return module_devhost_factory(CAPABILITIES, env=env)


@pytest.fixture
async def api(host: DevhostProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, host.url)


async def _running(api: Api) -> str:
    iid = fresh_id("run")
    await api.start("waiter", "m", instance_id=iid)
    await api.wait_for(iid, {"Running"})
    return iid


async def _completed(api: Api) -> str:
    iid = fresh_id("done")
    await api.start("chain", "m", instance_id=iid)
    await api.wait_for(iid, {"Completed"})
    return iid


@BASES
async def test_status_is_404_unknown_202_running_200_finished(api: Api, base: str) -> None:
    code, _, body = await api.status(fresh_id("nobody"), base)
    assert (code, body) == (404, "")

    running = await _running(api)
    code, headers, body = await api.status(running, base, "?showInput=false")
    assert code == 202
    assert headers["Retry-After"] == "5"
    assert headers["Location"].endswith(f"{base}/instances/{running}?showInput=false")
    assert body["runtimeStatus"] == "Running" and body["input"] is None
    assert set(body) == {"name", "instanceId", "runtimeStatus", "input", "customStatus",
                         "output", "createdTime", "lastUpdatedTime"}
    assert body["createdTime"].endswith("Z") and len(body["createdTime"]) == 20

    done = await _completed(api)
    code, headers, body = await api.status(done, base)
    assert code == 200 and "Retry-After" not in headers and "Location" not in headers
    assert body["input"] == '"m"'

    failed = fresh_id("failed")
    await api.start("fails", "x", instance_id=failed)
    await api.wait_for(failed)
    code, _, body = await api.status(failed, base)
    assert (code, body["runtimeStatus"]) == (200, "Failed")


async def test_sdk_get_status_of_unknown_instance_is_falsy_not_an_error(api: Api) -> None:
    assert await api.client("get_status", instance_id=fresh_id()) == \
        {"result": {"falsy": True, "runtimeStatus": None}}


@BASES
async def test_raise_event_is_404_unknown_410_finished_400_not_json_202_live(
        api: Api, base: str) -> None:
    code, _ = await api.raise_raw(fresh_id("nobody"), "Go", 1, base)
    assert code == 404
    # The host looks the instance up before it checks the content type.
    code, _, _ = await api.request("POST", f"{base}/instances/{fresh_id()}/raiseEvent/Go",
                                   data=b"x", headers={"Content-Type": "text/plain"})
    assert code == 404
    code, _ = await api.raise_raw(await _completed(api), "Go", 1, base)
    assert code == 410

    running = await _running(api)
    code, _, body = await api.request("POST", f"{base}/instances/{running}/raiseEvent/Go",
                                      data=b"1", headers={"Content-Type": "text/plain"})
    assert code == 400 and "application/json" in body["ExceptionMessage"]
    code, _ = await api.raise_raw(running, "Go", {"v": 1}, base)
    assert code == 202
    assert (await api.wait_for(running))["output"]["got"] == {"v": 1}


async def test_sdk_raise_event_errors_match_the_status_codes(api: Api) -> None:
    nobody = fresh_id("nobody")
    unknown = await api.client("raise_event", instance_id=nobody, event_name="Go", event_data=1)
    assert unknown["error"] == f"No instance with ID {nobody} found."
    done = await _completed(api)
    gone = await api.client("raise_event", instance_id=done, event_name="Go", event_data=1)
    assert gone["error"] == f"Instance with ID {done} is gone: either completed or failed"


@BASES
@pytest.mark.parametrize("operation", ["terminate", "suspend", "resume"])
async def test_control_operations_are_404_unknown_410_finished_202_live(
        api: Api, base: str, operation: str) -> None:
    url = f"{base}/instances/{{}}/{operation}?reason=because"
    assert (await api.request("POST", url.format(fresh_id("nobody"))))[0] == 404
    assert (await api.request("POST", url.format(await _completed(api))))[0] == 410
    live = await _running(api)
    if operation == "resume":  # only a Suspended instance can be resumed
        assert (await api.request("POST", f"{base}/instances/{live}/suspend"))[0] == 202
        await api.wait_for(live, {"Suspended"})
    assert (await api.request("POST", url.format(live)))[0] == 202


async def test_sdk_control_operations_raise_for_unknown_and_accept_finished(api: Api) -> None:
    done = await _completed(api)
    for op in ("terminate", "suspend", "resume"):
        nobody = fresh_id("nobody")
        unknown = await api.client(op, instance_id=nobody, reason="r")
        assert unknown["error"] == f"No instance with ID '{nobody}' found."
        assert await api.client(op, instance_id=done, reason="r") == {"result": None}


@BASES
async def test_purge_is_404_unknown_and_200_with_count(api: Api, base: str) -> None:
    code, _, body = await api.request("DELETE", f"{base}/instances/{fresh_id('nobody')}")
    assert (code, body) == (404, "")
    done = await _completed(api)
    code, _, body = await api.request("DELETE", f"{base}/instances/{done}")
    assert (code, body) == (200, {"instancesDeleted": 1})
    assert (await api.status(done))[0] == 404


@BASES
async def test_purge_by_filter_needs_created_time_from_and_is_404_when_nothing_matches(
        api: Api, base: str) -> None:
    code, _, body = await api.request("DELETE", f"{base}/instances/?runtimeStatus=Completed")
    assert code == 400 and "createdTimeFrom" in body["ExceptionMessage"]
    code, _, body = await api.request(
        "DELETE", f"{base}/instances/?createdTimeFrom=2999-01-01T00:00:00.000000Z")
    assert (code, body) == (404, "")
    nothing = await api.client("purge_instance_history_by",
                               created_time_from="2999-01-01T00:00:00+00:00")
    assert nothing == {"result": {"instancesDeleted": 0}}


async def test_purge_by_filter_deletes_what_matches_and_answers_200_with_count(
        devhost_factory: Callable[..., DevhostProcess]) -> None:
    host = devhost_factory(CAPABILITIES)  # its own database: the filter spans every instance
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        done = [await _completed(api) for _ in range(2)]
        running = await _running(api)
        code, _, body = await api.request(
            "DELETE", f"{WEBHOOK}/instances/?createdTimeFrom=2000-01-01T00:00:00.000000Z"
                      f"&runtimeStatus=Completed,Failed")
        assert (code, body) == (200, {"instancesDeleted": 2})
        assert [(await api.status(i))[0] for i in done] == [404, 404]
        assert (await api.status(running))[0] == 202


@BASES
async def test_restart_of_unknown_instance_is_400(api: Api, base: str) -> None:
    code, _, body = await api.request(
        "POST", f"{base}/instances/{fresh_id('nobody')}/restart?restartWithNewInstanceId=true")
    assert code == 400 and body["ExceptionMessage"]


async def test_sdk_restart_of_unknown_instance_raises(api: Api) -> None:
    result = await api.client("restart", instance_id=fresh_id("nobody"))
    assert result["error"] == "The operation failed with an unexpected status code 400"


@BASES
async def test_starting_a_running_instance_id_again_is_refused_finished_one_replaced(
        api: Api, base: str) -> None:
    running = await _running(api)
    code, _, body = await api.request("POST", f"{base}/orchestrators/waiter/{running}",
                                      body='"again"')
    assert code == 500
    assert body["ExceptionType"].endswith("OrchestrationAlreadyExistsException")
    assert running in body["ExceptionMessage"]

    done = await _completed(api)
    code, headers, body = await api.request("POST", f"{base}/orchestrators/chain/{done}",
                                            body='"new"')
    assert code == 202 and body["id"] == done and headers["Location"].startswith("http://")
    assert (await api.wait_for(done))["output"] == ["Hello new", "Hi Hello new"]


async def test_sdk_start_new_of_a_running_id_raises_with_the_host_error(api: Api) -> None:
    running = await _running(api)
    code, _, body = await api.request("POST", f"/api/orchestrators/waiter/{running}", body="x")
    # The SDK raises Exception(<the error body>) for any non-400 error.
    assert code == 400
    assert "OrchestrationAlreadyExistsException" in body["error"]


@BASES
async def test_start_rejects_invalid_instance_ids_and_bodies_with_400(api: Api, base: str
                                                                      ) -> None:
    code, _, body = await api.request("POST", f"{base}/orchestrators/chain/@entity")
    assert code == 400 and "@" in body["ExceptionMessage"]
    code, _, body = await api.request("POST", f"{base}/orchestrators/chain", data=b"{not json")
    assert code == 400


@BASES
async def test_rewind_and_entities_answer_501(api: Api, base: str) -> None:
    code, _, body = await api.request(
        "POST", f"{base}/instances/{await _completed(api)}/rewind?reason=r")
    assert code == 501 and "rewind" in body["ExceptionMessage"]
    code, _, body = await api.request("GET", f"{base}/entities/Counter/k")
    assert code == 501 and body["ExceptionType"] == "System.NotImplementedException"


@BASES
async def test_list_rejects_a_page_size_below_one_and_a_bad_continuation_token(
        api: Api, base: str) -> None:
    assert (await api.request("GET", f"{base}/instances/?top=0"))[0] == 400
    code, _, _ = await api.request("GET", f"{base}/instances/",
                                   headers={"x-ms-continuation-token": "garbage!"})
    assert code == 400


@BASES
async def test_unknown_management_route_is_404(api: Api, base: str) -> None:
    assert (await api.request("GET", f"{base}/nonsense/route"))[0] == 404


async def _failed(api: Api) -> str:
    iid = fresh_id("failed")
    await api.start("fails", "x", instance_id=iid)
    await api.wait_for(iid)
    return iid


@BASES
async def test_terminate_reason_that_is_json_becomes_the_output_as_that_json(
        api: Api, base: str) -> None:
    """The host stores the reason text and its status API parses it (ParseToJToken)."""
    reasons = {'{"why": "duplicate", "n": 2}': {"why": "duplicate", "n": 2},
               "[1, 2]": [1, 2], "42": 42, '"quoted"': "quoted", "stop it": "stop it",
               "NaN": "NaN"}
    for reason, output in reasons.items():
        iid = await _running(api)
        code, _, _ = await api.request(
            "POST", f"{base}/instances/{iid}/terminate?reason={quote(reason)}")
        assert code == 202
        status = await api.wait_for(iid, {"Terminated"})
        assert status["output"] == output, reason


async def test_sdk_terminate_with_a_json_reason_shows_the_parsed_json(api: Api) -> None:
    iid = await _running(api)
    assert await api.client("terminate", instance_id=iid,
                            reason=json.dumps({"by": "sdk"})) == {"result": None}
    assert (await api.wait_for(iid, {"Terminated"}))["output"] == {"by": "sdk"}


@BASES
async def test_return_internal_server_error_on_failure_makes_a_failed_instance_500(
        api: Api, base: str) -> None:
    failed, done = await _failed(api), await _completed(api)
    code, _, body = await api.status(failed, base, "?returnInternalServerErrorOnFailure=true")
    assert (code, body["runtimeStatus"]) == (500, "Failed")
    assert "kaboom" in json.dumps(body["output"])
    code, _, _ = await api.status(failed, base, "?returnInternalServerErrorOnFailure=True")
    assert code == 500
    for off in ("", "?returnInternalServerErrorOnFailure=false",
                "?returnInternalServerErrorOnFailure=maybe"):
        assert (await api.status(failed, base, off))[0] == 200
    code, _, body = await api.status(done, base, "?returnInternalServerErrorOnFailure=true")
    assert (code, body["runtimeStatus"]) == (200, "Completed")


@BASES
async def test_list_ignores_filters_the_host_cannot_parse(api: Api, base: str) -> None:
    """The host's TryParse calls drop what they cannot read: the request answers 200 as if
    that filter were absent (HttpApiHandler.HandleGetStatusRequestAsync)."""
    prefix = fresh_id("listed")
    done = f"{prefix}-done"
    await api.start("chain", "m", instance_id=done)
    await api.wait_for(done, {"Completed"})
    running = f"{prefix}-running"
    await api.start("waiter", "m", instance_id=running)
    await api.wait_for(running, {"Running"})

    async def listed(query: str) -> set[str]:
        code, _, body = await api.request(
            "GET", f"{base}/instances/?instanceIdPrefix={prefix}&{query}")
        assert code == 200, (query, body)
        return {row["instanceId"] for row in body}

    both = {done, running}
    for ignored in ("runtimeStatus=completed", "runtimeStatus=Sleeping", "runtimeStatus=",
                    "top=abc", "createdTimeFrom=yesterday", "createdTimeTo=someday",
                    "showInput=perhaps"):
        assert await listed(ignored) == both, ignored
    # What parses still filters: names (exact case), numbers, and the parseable part of a list.
    assert await listed("runtimeStatus=Completed") == {done}
    assert await listed("runtimeStatus=1") == {done}
    assert await listed("runtimeStatus=Running,sleeping") == {running}
    assert await listed("runtimeStatus=99") == set()
    assert await listed("top=1") in ({done}, {running})


@BASES
async def test_start_with_timeout_and_polling_interval_waits_for_completion(
        api: Api, base: str) -> None:
    """HttpApiHandler.HandleStartOrchestratorRequestAsync: with both parameters the start
    waits (WaitForCompletionOrCreateCheckStatusResponseAsync)."""
    iid = fresh_id("wait")
    code, _, body = await api.request(
        "POST", f"{base}/orchestrators/chain/{iid}?timeout=30&pollingInterval=0.05",
        body=json.dumps("m"))  # the input as the Python client encodes it
    assert (code, body) == (200, ["Hello m", "Hi Hello m"])

    failed = fresh_id("wait-failed")
    code, _, body = await api.request(
        "POST", f"{base}/orchestrators/fails/{failed}?timeout=30&pollingInterval=0.05",
        body=json.dumps("x"))
    assert (code, body["runtimeStatus"], body["instanceId"]) == (200, "Failed", failed)

    # Not done within the timeout: the check-status answer, as without the parameters.
    waiting = fresh_id("wait-late")
    code, headers, body = await api.request(
        "POST", f"{base}/orchestrators/waiter/{waiting}?timeout=0.2&pollingInterval=0.05")
    assert code == 202 and body["id"] == waiting
    assert headers["Location"] == body["statusQueryGetUri"]

    # Either parameter alone: no wait at all.
    alone = fresh_id("no-wait")
    code, _, body = await api.request("POST", f"{base}/orchestrators/chain/{alone}?timeout=30")
    assert code == 202 and body["id"] == alone


@BASES
async def test_start_that_polls_slower_than_its_timeout_is_400_after_starting(
        api: Api, base: str) -> None:
    iid = fresh_id("bad-wait")
    code, _, body = await api.request(
        "POST", f"{base}/orchestrators/chain/{iid}?timeout=1&pollingInterval=2",
        body=json.dumps("m"))
    assert code == 400 and "should be bigger than retry timeout" in body["ExceptionMessage"]
    await api.wait_for(iid, {"Completed"})


@BASES
async def test_suspend_of_a_suspended_and_resume_of_a_running_instance_are_refused(
        api: Api, base: str) -> None:
    """DurableClient.SuspendAsync/ResumeAsync throw InvalidOperationException, which the
    host's handler answers with 500."""
    iid = await _running(api)
    code, _, body = await api.request("POST", f"{base}/instances/{iid}/resume?reason=r")
    assert code == 500
    assert body["ExceptionType"] == "System.InvalidOperationException"
    assert body["ExceptionMessage"].endswith("because instance is in the Running state.")
    assert (await api.request("POST", f"{base}/instances/{iid}/suspend?reason=r"))[0] == 202
    await api.wait_for(iid, {"Suspended"})
    code, _, body = await api.request("POST", f"{base}/instances/{iid}/suspend?reason=r")
    assert code == 500 and "Suspended state" in body["ExceptionMessage"]
    assert (await api.request("POST", f"{base}/instances/{iid}/resume?reason=r"))[0] == 202
    await api.wait_for(iid, {"Running"})


async def test_sdk_suspend_and_resume_in_the_wrong_state_raise(api: Api) -> None:
    iid = await _running(api)
    refused = await api.client("resume", instance_id=iid, reason="r")
    assert refused["error"] == "The operation failed with an unexpected status code 500"
    assert await api.client("suspend", instance_id=iid, reason="r") == {"result": None}
    await api.wait_for(iid, {"Suspended"})
    refused = await api.client("suspend", instance_id=iid, reason="r")
    assert refused["error"] == "The operation failed with an unexpected status code 500"


@BASES
async def test_restart_with_timeout_and_polling_interval_waits_for_the_new_run(
        api: Api, base: str) -> None:
    done = await _completed(api)
    code, _, body = await api.request(
        "POST", f"{base}/instances/{done}/restart?timeout=30&pollingInterval=0.05")
    assert (code, body) == (200, ["Hello m", "Hi Hello m"])


# ---- hostile JSON and parameters (issue 19 items 4 and 6, issue 15 item 10) ---------------------

DEEP = b"[" * 1000 + b"]" * 1000


@BASES
async def test_raise_event_with_an_empty_or_non_json_body_is_400_as_on_the_host(
        api: Api, base: str) -> None:
    """HttpApiHandler.HandleRaiseEventRequestAsync: ConvertToJToken of an empty or malformed
    body throws JsonReaderException, answered 400 "Invalid JSON content"; nothing is raised."""
    running = await _running(api)
    for data in (b"", b"   ", b"{not json", b"[1,"):
        code, _, body = await api.request("POST", f"{base}/instances/{running}/raiseEvent/Go",
                                          data=data, headers={"Content-Type": "application/json"})
        assert code == 400 and "Invalid JSON content" in body["ExceptionMessage"], (data, body)
    code, _, body = await api.status(running, base)
    assert body["runtimeStatus"] == "Running", body
    # "null" is the JSON for "no payload".
    code, _, _ = await api.request("POST", f"{base}/instances/{running}/raiseEvent/Go",
                                   data=b"null", headers={"Content-Type": "application/json"})
    assert code == 202


@BASES
async def test_non_finite_numbers_in_a_start_input_or_event_are_refused_with_400(
        api: Api, base: str) -> None:
    running = await _running(api)
    for data in (b"NaN", b"[NaN]", b'{"x": Infinity}', b"-Infinity", b"1e999", b"[-1e400]"):
        code, _, body = await api.request("POST", f"{base}/instances/{running}/raiseEvent/Go",
                                          data=data, headers={"Content-Type": "application/json"})
        assert code == 400, (data, code, body)
        iid = fresh_id("nan")
        code, _, body = await api.request("POST", f"{base}/orchestrators/chain/{iid}", data=data)
        assert code == 400 and "JSON" in body["ExceptionMessage"], (data, code, body)
        assert (await api.status(iid, base))[0] == 404
    code, _, body = await api.status(running, base)
    assert code == 202 and body["runtimeStatus"] == "Running", body


@BASES
async def test_a_terminate_reason_the_host_cannot_read_as_json_is_kept_as_text(
        api: Api, base: str) -> None:
    """ParseToJToken falls back to the raw text on JsonReaderException: the status stays
    valid JSON with the reason as a string, whatever the reason says."""
    for reason in ("1e999", "[NaN]", "-Infinity", DEEP.decode()):
        iid = await _running(api)
        code, _, body = await api.request(
            "POST", f"{base}/instances/{iid}/terminate?reason={quote(reason)}")
        assert code == 202, (reason[:20], code, body)
        status = await api.wait_for(iid, {"Terminated"})
        assert status["output"] == reason


@BASES
async def test_json_nested_1000_levels_is_a_400_in_a_start_and_an_event(api: Api, base: str
                                                                          ) -> None:
    running = await _running(api)
    code, _, body = await api.request("POST", f"{base}/instances/{running}/raiseEvent/Go",
                                      data=DEEP, headers={"Content-Type": "application/json"})
    assert code == 400 and "64 levels" in body["ExceptionMessage"], body
    code, _, body = await api.request("POST", f"{base}/orchestrators/chain/{fresh_id()}",
                                      data=DEEP)
    assert code == 400 and "64 levels" in body["ExceptionMessage"], body
    # 64 levels are accepted (Newtonsoft.Json's MaxDepth is 64).
    code, _, _ = await api.request("POST", f"{base}/orchestrators/chain/{fresh_id()}",
                                   data=b"[" * 64 + b"]" * 64)
    assert code == 202


@BASES
async def test_a_page_size_beyond_int32_is_ignored_as_the_hosts_int_tryparse_ignores_it(
        api: Api, base: str) -> None:
    for top in (2**31, 2**63, 2**64, -(2**63), 10**30):
        code, _, body = await api.request("GET", f"{base}/instances/?top={top}")
        assert code == 200 and isinstance(body, list), (top, code, body)


@given(st.text(alphabet=st.characters(max_codepoint=200), max_size=8))
def test_an_instance_id_is_refused_exactly_when_it_holds_a_character_the_host_refuses(
        text: str) -> None:
    # DurableClient.cs: / \ ? # and control characters (C0, DEL and C1, char.IsControl).
    refused = any(c in "/\\?#" or ord(c) < 32 or 127 <= ord(c) < 160 for c in text)
    problem = management._instance_id_problem(text)
    assert (problem is not None and "invalid characters" in problem) == refused \
        or text.startswith("@")
