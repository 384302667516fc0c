"""devhost.host.shutdown: SIGTERM stops accepting connections, lets running requests and activities
finish within the grace period and commits them; past it, devhost exits anyway (never waiting
for a function's thread) and the unfinished activity calls run again at the next start. One
worker and ``--workers 2`` (the supervisor forwards, waits, exits 0)."""
from __future__ import annotations

import asyncio
import http.client
import os
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import aiohttp
import pytest

from devhost.host.process import DevhostProcess
from tests.devhost.support import APPS, Api, fresh_id, wait_for_line

pytestmark = pytest.mark.e2e

APP = APPS / "hostlog"


@pytest.fixture(params=[1, 2], ids=["one-worker", "two-workers"])
def workers(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.fixture
def hosts() -> Iterator[list[DevhostProcess]]:
    started: list[DevhostProcess] = []
    yield started
    for host in started:
        host.kill()



def _refuses_connections(url: str) -> bool:
    try:
        urllib.request.urlopen(f"{url}/admin/host/status", timeout=0.5).close()
    except urllib.error.URLError as exc:
        return isinstance(exc.reason, ConnectionRefusedError)
    except ConnectionRefusedError:
        return True
    except (http.client.RemoteDisconnected, ConnectionResetError, TimeoutError):
        # Connected at the instant the server closed (its backlog was reset, or aiohttp
        # parked the connection until the end): ask again on a new connection.
        return False
    return False


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


async def test_sigterm_lets_a_running_activity_finish_and_it_is_not_run_again(
        tmp_path: Path, workers: int, hosts: list[DevhostProcess]) -> None:
    host = DevhostProcess(APP, tmp_path / "db.sqlite3", workers=workers)
    hosts.append(host.start())
    key = fresh_id("hold")
    runs, release = tmp_path / f"{key}.runs", tmp_path / f"{key}.release"
    async with aiohttp.ClientSession() as session:
        await Api(session, host.url).start("holding", {"dir": str(tmp_path), "key": key},
                                           instance_id=key)
    await wait_for_line(runs)  # the activity is running, and waits for the release file
    assert host.proc is not None
    host.proc.send_signal(signal.SIGTERM)
    # Shutting down: no new connection is accepted while the activity still runs.
    _wait_until(lambda: _refuses_connections(host.url), "devhost kept accepting connections")
    assert host.proc.poll() is None, "devhost exited before its activity finished"
    release.touch()
    assert host.proc.wait(30) == 0, host.output()
    assert "will run again" not in host.output()

    host.start()
    async with aiohttp.ClientSession() as session:
        status = await Api(session, host.url).wait_for(key, timeout=15)
    assert status["output"] == "released"
    assert len(runs.read_text().split()) == 1  # its result was committed at shutdown


async def test_an_activity_past_the_grace_period_is_named_and_runs_again_after_restart(
        tmp_path: Path, workers: int, hosts: list[DevhostProcess]) -> None:
    host = DevhostProcess(APP, tmp_path / "db.sqlite3", workers=workers,
                          args=("--grace", "0.5"))
    hosts.append(host.start())
    key = fresh_id("hold")
    runs, release = tmp_path / f"{key}.runs", tmp_path / f"{key}.release"
    async with aiohttp.ClientSession() as session:
        await Api(session, host.url).start("holding", {"dir": str(tmp_path), "key": key},
                                           instance_id=key)
    await wait_for_line(runs)
    assert host.proc is not None
    host.proc.send_signal(signal.SIGTERM)
    # The activity's thread never returns by itself: devhost must not wait for it.
    assert host.proc.wait(30) == 0, host.output()
    output = host.output()
    assert "will run again at the next start" in output, output
    assert f"activity 'hold' of instance '{key}' (task 0)" in output

    release.touch()
    host.start()
    async with aiohttp.ClientSession() as session:
        status = await Api(session, host.url).wait_for(key, timeout=15)
    assert status["output"] == "released"
    assert len(runs.read_text().split()) == 2  # at least once: the cut run and the rerun


async def test_sigterm_lets_a_running_http_request_finish(
        tmp_path: Path, hosts: list[DevhostProcess]) -> None:
    host = DevhostProcess(APP, tmp_path / "db.sqlite3")
    hosts.append(host.start())
    key = fresh_id("wait")
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(Api(session, host.url).request(
            "GET", f"/api/wait/{key}?dir={tmp_path}"))
        await wait_for_line(tmp_path / f"{key}.runs")
        assert host.proc is not None
        host.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(_wait_until, lambda: _refuses_connections(host.url),
                                "devhost kept accepting connections")
        # Long enough for a shutdown that does not wait to cut the request; the 30 s grace
        # period makes this never fail for one that does.
        await asyncio.sleep(1.0)
        assert not request.done() and host.proc.poll() is None
        (tmp_path / f"{key}.release").touch()
        code, _, body = await request
    assert (code, body) == (200, "released")  # answered, although devhost was stopping
    assert await asyncio.to_thread(host.proc.wait, 30) == 0, host.output()


async def test_a_second_signal_stops_at_once_and_names_the_running_activity(
        tmp_path: Path, hosts: list[DevhostProcess]) -> None:
    host = DevhostProcess(APP, tmp_path / "db.sqlite3")
    hosts.append(host.start())
    key = fresh_id("hold")
    async with aiohttp.ClientSession() as session:
        await Api(session, host.url).start("holding", {"dir": str(tmp_path), "key": key},
                                           instance_id=key)
    await wait_for_line(tmp_path / f"{key}.runs")
    assert host.proc is not None
    host.proc.send_signal(signal.SIGINT)  # Ctrl+C: a 30 s grace period begins
    _wait_until(lambda: "stopping" in host.output(), "devhost did not start stopping")
    host.proc.send_signal(signal.SIGINT)  # Ctrl+C again: stop now
    assert host.proc.wait(30) == 0, host.output()
    assert "a second signal came before 1 activity call(s) finished" in host.output()
    assert f"activity 'hold' of instance '{key}'" in host.output()


async def test_ctrl_c_to_the_process_group_stops_two_workers_gracefully(
        tmp_path: Path, hosts: list[DevhostProcess]) -> None:
    host = DevhostProcess(APP, tmp_path / "db.sqlite3", workers=2)
    hosts.append(host.start())
    key = fresh_id("hold")
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        await api.start("holding", {"dir": str(tmp_path), "key": key}, instance_id=key)
        await wait_for_line(tmp_path / f"{key}.runs")
        assert host.proc is not None
        # What `make run WORKERS=2` gets from Ctrl+C: SIGINT to the supervisor and the workers
        # at once. It must count as one request to stop (a second one stops at once).
        os.killpg(host.proc.pid, signal.SIGINT)
        _wait_until(lambda: _refuses_connections(host.url), "devhost kept accepting connections")
        assert host.proc.poll() is None
        (tmp_path / f"{key}.release").touch()
        assert await asyncio.to_thread(host.proc.wait, 30) == 0, host.output()
    assert "second signal" not in host.output() and "will run again" not in host.output()


async def test_a_request_past_the_grace_period_does_not_keep_devhost_alive(
        tmp_path: Path, hosts: list[DevhostProcess]) -> None:
    host = DevhostProcess(APP, tmp_path / "db.sqlite3", args=("--grace", "0.5"))
    hosts.append(host.start())
    key = fresh_id("wait")
    async with aiohttp.ClientSession() as session:
        request = asyncio.ensure_future(Api(session, host.url).request(
            "GET", f"/api/wait/{key}?dir={tmp_path}"))
        await wait_for_line(tmp_path / f"{key}.runs")
        assert host.proc is not None
        host.proc.send_signal(signal.SIGTERM)
        # The sync function's thread never returns by itself (no release file).
        assert await asyncio.to_thread(host.proc.wait, 30) == 0, host.output()
        with pytest.raises(aiohttp.ClientError):
            await request  # cut at the end of the grace period, never answered
