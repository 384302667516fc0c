"""The management API answers with the real host's status codes (durable-protocol.md §2), under
both the client's ``rpcBaseUrl`` (``/durabletask/``) and the public webhook path, and the Python
client interprets those answers as it does against the real host."""
from __future__ import annotations

from typing import AsyncIterator, Callable

import aiohttp
import pytest

from tests.devhost.support import CAPABILITIES, RPC, WEBHOOK, Api, fresh_id
from devhost.process import DevhostProcess

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
    running = await _running(api)
    assert (await api.request("POST", url.format(running)))[0] == 202


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
async def test_list_rejects_bad_filters_with_400(api: Api, base: str) -> None:
    assert (await api.request("GET", f"{base}/instances/?runtimeStatus=Sleeping"))[0] == 400
    assert (await api.request("GET", f"{base}/instances/?top=0"))[0] == 400
    code, _, _ = await api.request("GET", f"{base}/instances/",
                                   headers={"x-ms-continuation-token": "garbage!"})
    assert code == 400


@BASES
async def test_unknown_management_route_is_404(api: Api, base: str) -> None:
    assert (await api.request("GET", f"{base}/nonsense/route"))[0] == 404
