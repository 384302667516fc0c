"""The fast path's in-process Durable client yields to the event loop like a network call does.

An HTTP function that polls ``get_status`` in a loop awaits nothing but the client. Over
loopback HTTP every call suspends the coroutine; the in-process transport must too, or the loop
that serves HTTP and runs episodes is starved: the polled orchestration never starts and other
requests wait until the poller gives up (issue 8, item 6). Each test runs with the fast path on
and off (``DEVHOST_FASTPATH=0``), and on with two workers; the poller stops after ``seconds``
so a regression fails instead of hanging, and nothing here asserts a duration.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator, Callable

import aiohttp
import pytest

from devhost.host.process import DevhostProcess
from tests.devhost.support import APPS, WEBHOOK, Api, fresh_id

pytestmark = pytest.mark.e2e
POLLER = APPS / "poller"


@pytest.fixture(scope="module", params=["fastpath", "loopback-http", "fastpath-two-workers"])
def host(request: pytest.FixtureRequest,
         module_devhost_factory: Callable[..., DevhostProcess]) -> DevhostProcess:
    env = {"DEVHOST_FASTPATH": "0"} if request.param == "loopback-http" else None
    # With two workers the poller's own worker queued the start, so it runs the episodes too.
    workers = 2 if request.param.endswith("two-workers") else 1
    return module_devhost_factory(POLLER, env=env, workers=workers)


@pytest.fixture
async def api(host: DevhostProcess) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, host.url)


async def test_a_function_polling_get_status_lets_its_orchestration_run(api: Api) -> None:
    iid = fresh_id("quick")
    code, _, body = await api.request("POST", f"/api/poll/quick/{iid}?seconds=10")
    assert code == 200, body
    # Before the fix the poller spun for its whole budget and saw Pending every time.
    assert body["runtimeStatus"] == "Completed" and body["output"] == "done", body


async def test_a_function_polling_get_status_does_not_hold_up_other_requests(api: Api) -> None:
    iid = fresh_id("wait")
    poller = asyncio.create_task(api.request("POST", f"/api/poll/waiter/{iid}?seconds=10"))
    # The poller starts the instance itself; this raise gets 404 until it exists. It is served
    # while the poller is still polling only if the poll loop lets the host serve requests.
    while True:
        code, _ = await api.raise_raw(iid, "Go", {"from": "concurrent request"}, WEBHOOK)
        if code == 202 or poller.done():
            break
        assert code == 404, code
        await asyncio.sleep(0.01)
    code, _, body = await poller
    assert code == 200, body
    assert body["runtimeStatus"] == "Completed", body
    assert body["output"] == {"got": {"from": "concurrent request"}}, body
