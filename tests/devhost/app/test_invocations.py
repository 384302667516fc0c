"""Orchestrator code never holds the host (issue 15 item 7): it runs on orchestrator threads,
so a blocking or endless orchestrator leaves requests, other orchestrations and shutdown
answered; at ``functionTimeout`` its invocation is aborted and retried as the extension does.
The app (``apps/blocking``) sets functionTimeout to 4 s."""
from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest

from devhost.app import invocations
from devhost.host.process import DevhostProcess
from tests.devhost.support import APPS, RPC, Api, fresh_id, wait_for_line

APP = APPS / "blocking"
#: A request the loop cannot answer in this long is frozen (on 0b5d982 it waited for the
#: orchestrator: 3 s, or forever).
ANSWER_BOUND = 1.5


# ---- functionTimeout as the host reads it ------------------------------------------------------

def test_function_timeout_defaults_to_the_hosts_30_minutes_and_reads_timespans() -> None:
    assert invocations.function_timeout({}) == 30 * 60.0  # ScriptJobHostOptionsSetup default
    assert invocations.function_timeout({"functionTimeout": "00:00:02"}) == 2.0
    assert invocations.function_timeout({"functionTimeout": "1.02:03:04.5"}) == \
        86400 + 2 * 3600 + 3 * 60 + 4.5
    assert invocations.function_timeout({"functionTimeout": "-1"}) is None  # no limit
    for bad in ("00:00:00.5", "soon", "1:2:3:4"):
        with pytest.raises(ValueError):
            invocations.function_timeout({"functionTimeout": bad})
    assert invocations.function_timeout({"functionTimeout": "5"}) == 5 * 86400.0


def test_a_malformed_function_timeout_is_refused_when_the_app_loads(tmp_path: Path) -> None:
    from devhost.app.loader import AppLoadError, index_app
    import azure.durable_functions as df

    with pytest.raises(AppLoadError, match="functionTimeout"):
        index_app(df.DFApp(), str(tmp_path), {"functionTimeout": "00:00:00"})


# ---- a blocking orchestrator holds only its own thread -----------------------------------------

@pytest.fixture
def host(tmp_path: Path) -> Iterator[DevhostProcess]:
    started = DevhostProcess(APP, tmp_path / "db.sqlite3", log_level="Information").start()
    yield started
    started.kill()


async def _start(api: Api, name: str, value: Any, instance_id: str) -> None:
    code, _, body = await api.request("POST", f"{RPC}/orchestrators/{name}/{instance_id}",
                                      body=json.dumps(value))
    assert code == 202, (code, body)


async def _timed_status(api: Api, instance_id: str) -> tuple[float, dict[str, Any]]:
    began = time.monotonic()
    code, _, body = await asyncio.wait_for(api.status(instance_id), 30)
    assert code in (200, 202), (code, body)
    return time.monotonic() - began, body


async def test_a_sleeping_orchestrator_leaves_requests_and_other_orchestrations_answered(
        host: DevhostProcess, tmp_path: Path) -> None:
    witness = tmp_path / "asleep"
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        sleeper, other = fresh_id("sleep"), fresh_id("quick")
        await _start(api, "sleeper", [3, str(witness)], sleeper)
        await wait_for_line(witness)  # its episode sleeps for 3 s from here
        began = time.monotonic()
        took, body = await _timed_status(api, sleeper)
        assert took < ANSWER_BOUND and body["runtimeStatus"] in ("Pending", "Running")
        await _start(api, "quick", "hi", other)
        assert (await api.wait_for(other, timeout=5))["output"] == "hi"
        assert time.monotonic() - began < 2.5, "the other orchestration waited for the sleep"
        assert (await api.wait_for(sleeper, timeout=10))["output"] == "slept"


async def test_an_orchestrator_that_never_yields_is_aborted_at_function_timeout_and_retried(
        host: DevhostProcess) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        spinner = fresh_id("spin")
        began = time.monotonic()
        await _start(api, "spinner", None, spinner)
        for _ in range(5):  # while it spins, its status is answered
            took, body = await _timed_status(api, spinner)
            assert took < ANSWER_BOUND, took
            assert body["runtimeStatus"] in ("Pending", "Running")
            await asyncio.sleep(0.1)
        # The extension aborts a timed-out orchestrator invocation and runs it again
        # (DurableTaskExtension.OrchestrationMiddleware: SessionAbortedException).
        done = await api.wait_for(spinner, timeout=20)
        assert done["output"] == "recovered after 1 timeout(s)", done
        assert time.monotonic() - began >= 4.0  # not before functionTimeout
    assert "Timeout value of 00:00:04 exceeded by function 'Functions.spinner'" in host.output()


async def test_a_stuck_orchestrator_thread_never_holds_the_shutdown(
        host: DevhostProcess) -> None:
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        stubborn = fresh_id("stuck")
        await _start(api, "stubborn", None, stubborn)
        took, _ = await _timed_status(api, stubborn)
        assert took < ANSWER_BOUND
        await asyncio.sleep(4.5)  # past functionTimeout: the thread swallowed the interrupt
        took, body = await _timed_status(api, stubborn)
        assert took < ANSWER_BOUND and body["runtimeStatus"] in ("Pending", "Running")
    assert "exceeded by function 'Functions.stubborn'" in host.output()
    assert host.proc is not None
    host.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(host.proc.wait, 15) == 0, host.output()


async def test_an_activity_past_function_timeout_fails_its_call_with_the_hosts_message(
        host: DevhostProcess) -> None:
    # TaskActivityShim handles FunctionTimeoutError as a user code error: the call fails.
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        slow, fast = fresh_id("slow"), fresh_id("fast")
        await _start(api, "slow_call", 30, slow)
        await _start(api, "slow_call", 0, fast)
        assert (await api.wait_for(fast, timeout=10))["output"] == "finished"
        done = await api.wait_for(slow, timeout=20)
        assert done["runtimeStatus"] == "Completed", done
        assert "Timeout value of 00:00:04 was exceeded by function: Functions.nap" in \
            done["output"], done["output"]
