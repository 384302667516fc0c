"""Request bodies are limited like the Functions host limits them.

The host refuses a body past ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`` (default 100 MB) with 413;
devhost does the same for its functions and the Durable APIs, with a JSON body saying what is
wrong, before the body reaches a function or the store. The tests lower the limit to 1 MiB.
"""
from __future__ import annotations

import json
from typing import AsyncIterator, Callable

import aiohttp
import pytest

from devhost.app.limits import MAX_BODY, body_limit
from devhost.host.process import DevhostProcess
from tests.devhost.support import APPS, RPC, WEBHOOK, Api, fresh_id

LIMIT = 1024 * 1024


def test_the_limit_is_the_hosts_setting_or_its_100_mb_default() -> None:
    assert body_limit({}) == MAX_BODY == 104_857_600
    assert body_limit({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": " 2048 "}) == 2048
    for bad in ("0", "-5", "1e6", "lots"):
        with pytest.raises(ValueError, match="FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"):
            body_limit({"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": bad})


@pytest.fixture(scope="module", params=["fastpath", "loopback-http"])
def host(request: pytest.FixtureRequest,
         module_devhost_factory: Callable[..., DevhostProcess]) -> DevhostProcess:
    env = {"FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": str(LIMIT)}
    if request.param == "loopback-http":
        env["DEVHOST_FASTPATH"] = "0"
    return module_devhost_factory(APPS / "poller", env=env)


@pytest.fixture
async def api(host: DevhostProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, host.url)


def _event(size: int) -> bytes:
    """A JSON string event of exactly ``size`` bytes."""
    return json.dumps("x" * (size - 2)).encode()


async def _chunked(size: int) -> AsyncIterator[bytes]:
    body, step = _event(size), 64 * 1024
    for at in range(0, len(body), step):
        yield body[at:at + step]


@pytest.mark.e2e
@pytest.mark.parametrize("path", [f"{WEBHOOK}/instances/{{}}/raiseEvent/Go",
                                  f"{RPC}/instances/{{}}/raiseEvent/Go",
                                  "/api/poll/quick/{}"])
async def test_a_body_past_the_limit_is_413_with_json_and_changes_nothing(
        api: Api, path: str) -> None:
    iid = fresh_id("big")
    await api.request("POST", f"{WEBHOOK}/orchestrators/waiter/{iid}")
    await api.wait_for(iid, {"Running"})
    headers = {"Content-Type": "application/json"}
    for data in (_event(LIMIT + 1), _chunked(2 * LIMIT)):  # declared length, then chunked
        code, _, body = await api.request("POST", path.format(iid), data=data,  # type: ignore
                                          headers=headers)
        assert code == 413, body
        assert body["limit"] == LIMIT and "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT" in body["error"]
    assert (await api.status(iid))[2]["runtimeStatus"] == "Running"


@pytest.mark.e2e
async def test_a_body_at_the_limit_is_accepted_and_delivered_whole(api: Api) -> None:
    iid = fresh_id("fits")
    await api.request("POST", f"{WEBHOOK}/orchestrators/waiter/{iid}")
    code, _, _ = await api.request("POST", f"{WEBHOOK}/instances/{iid}/raiseEvent/Go",
                                   data=_event(LIMIT),
                                   headers={"Content-Type": "application/json"})
    assert code == 202
    status = await api.wait_for(iid, {"Completed"})
    assert status["output"]["got"] == "x" * (LIMIT - 2)


@pytest.mark.e2e
async def test_a_client_call_past_the_limit_is_refused_with_or_without_the_fast_path(
        api: Api) -> None:
    """The in-process client applies the limit too, so the SDK sees the same 413 either way
    (it reports it as an unrecognised status code)."""
    iid = fresh_id("client")
    await api.request("POST", f"{WEBHOOK}/orchestrators/waiter/{iid}")
    await api.wait_for(iid, {"Running"})
    code, _, body = await api.request("POST", f"/api/raise/{iid}?size={LIMIT}")
    assert code == 200 and "413" in body["error"], body
    assert (await api.status(iid))[2]["runtimeStatus"] == "Running"
    code, _, body = await api.request("POST", f"/api/raise/{iid}?size={LIMIT // 2}")
    assert (code, body) == (200, {"raised": True})
    # The Python client double-encodes event data (a host quirk devhost keeps).
    got = (await api.wait_for(iid, {"Completed"}))["output"]["got"]
    assert got == json.dumps("x" * (LIMIT // 2))
