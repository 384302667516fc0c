"""devhost's queue triggers: message encodings, host.json options, connection settings, and a
devhost that runs everything else when storage is missing or unreachable."""
from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

import azure.functions as func
import pytest

from devhost.app.bindings import QueueFunction, QueueOptions
from devhost.host.process import REPO, DevhostProcess, free_port
from devhost.triggers import azurite
from devhost.triggers.queues import (
    DEV_QUEUE_PORT, ConnectionProblem, QueueListener, connection_string, decode,
    development_connection_string, encode,
)
from tests.azurite_support import Queues, azurite_binary, storage  # noqa: F401 (fixtures)


@pytest.mark.parametrize("body", [b'{"input": "aaron"}', "ünïcode ✓".encode(), b"", b"\x00\xff"])
def test_base64_messages_decode_to_the_bytes_that_were_encoded(body: bytes) -> None:
    assert decode(encode(body, "base64"), "base64") == body


def test_base64_decoding_is_what_the_host_does_by_default() -> None:
    text = base64.b64encode(b'{"input": "aaron"}').decode()
    assert decode(text, QueueOptions().message_encoding) == b'{"input": "aaron"}'


# '{"input": "bob"}' keeps a multiple of 4 base64 letters once the rest is dropped: a lenient
# decoder would turn this plain JSON into junk bytes instead of refusing it.
@pytest.mark.parametrize("text", ['{"input": "aaron"}', '{"input": "bob"}', "abc", "ab=c", "ü"])
def test_text_that_is_not_base64_is_refused_when_the_encoding_is_base64(text: str) -> None:
    with pytest.raises(ValueError, match="not base64"):
        decode(text, "base64")


def test_plain_messages_are_the_utf8_text_itself() -> None:
    assert decode('{"input": "ü"}', "none") == '{"input": "ü"}'.encode()
    assert encode('{"input": "ü"}'.encode(), "none") == '{"input": "ü"}'


def test_queue_options_have_the_host_defaults() -> None:
    assert QueueOptions.from_host_json({}) == QueueOptions(
        batch_size=16, new_batch_threshold=8, max_polling_interval=60.0,
        visibility_timeout=0.0, max_dequeue_count=5, message_encoding="base64")


def test_queue_options_are_read_from_host_json() -> None:
    options = QueueOptions.from_host_json({"extensions": {"queues": {
        "batchSize": 4, "newBatchThreshold": 1, "maxPollingInterval": "00:00:02",
        "visibilityTimeout": "00:00:30", "maxDequeueCount": 2, "messageEncoding": "None"}}})
    assert options == QueueOptions(batch_size=4, new_batch_threshold=1, max_polling_interval=2.0,
                                   visibility_timeout=30.0, max_dequeue_count=2,
                                   message_encoding="none")


def test_a_polling_interval_in_milliseconds_is_read_as_the_v1_host_does() -> None:
    assert QueueOptions.from_host_json(
        {"extensions": {"queues": {"maxPollingInterval": 2000}}}).max_polling_interval == 2.0


@pytest.mark.parametrize("queues, fragment", [
    ({"batchSize": 33}, "batchSize must be 1-32"),
    ({"messageEncoding": "utf8"}, "messageEncoding must be 'base64' or 'none'"),
    ({"maxDequeueCount": 0}, "maxDequeueCount must be at least 1"),
    ({"visibilityTimeout": "soon"}, "not a TimeSpan"),
])
def test_bad_queue_options_are_refused_naming_the_option(queues: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        QueueOptions.from_host_json({"extensions": {"queues": queues}})


def test_development_storage_means_azurite_on_its_default_queue_port() -> None:
    conn = connection_string("AzureWebJobsStorage",
                             {"AzureWebJobsStorage": "UseDevelopmentStorage=true"})
    assert conn == development_connection_string()
    assert f"QueueEndpoint=http://127.0.0.1:{DEV_QUEUE_PORT}/devstoreaccount1" in conn


def test_a_connection_name_may_omit_the_azurewebjobs_prefix() -> None:
    assert connection_string("Storage", {"AzureWebJobsStorage": "X=1"}) == "X=1"


@pytest.mark.parametrize("env, fragment", [
    ({}, "app setting AzureWebJobsStorage is not set"),
    ({"AzureWebJobsStorage": ""}, "app setting AzureWebJobsStorage is not set"),
    ({"AzureWebJobsStorage__queueServiceUri": "https://a.queue.core.windows.net"},
     "identity-based connections"),
])
def test_a_missing_connection_names_the_setting(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConnectionProblem, match=fragment):
        connection_string("AzureWebJobsStorage", env)


def _wait_for_log(host: DevhostProcess, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = host.output()
        if text in log:
            return log
        time.sleep(0.1)
    pytest.fail(f"devhost never logged {text!r}:\n{host.output()}")


@pytest.mark.e2e
@pytest.mark.parametrize("storage, warning", [
    ("", "queue trigger stop_from_queue: app setting AzureWebJobsStorage is not set"),
    (development_connection_string(port=free_port()),
     "queue trigger stop_from_queue: storage from setting AzureWebJobsStorage is unreachable"),
])
def test_devhost_warns_about_the_queue_trigger_and_serves_everything_else(
        devhost_factory: Callable[..., DevhostProcess], storage: str, warning: str) -> None:
    host = devhost_factory(REPO, env={"AzureWebJobsStorage": storage})
    _wait_for_log(host, warning)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(f"{host.url}/api/check/nobody-{free_port()}")
    assert info.value.code == 404  # the HTTP functions answer as usual
    req = urllib.request.Request(f"{host.url}/api/start/w-{free_port()}", method="POST")
    with urllib.request.urlopen(req) as r:
        assert r.status == 202


@pytest.mark.e2e
@pytest.mark.parametrize("ending", [signal.SIGTERM, signal.SIGKILL], ids=["stop", "kill-9"])
def test_start_azurite_runs_the_project_azurite_for_development_storage_and_stops_it(
        tmp_path: Path, ending: signal.Signals) -> None:
    """What ``make run`` does on a fresh clone: with ``AzureWebJobsStorage`` unset it uses the
    development storage, starts the pinned Azurite on its port when nothing listens there, and
    stops it when devhost stops."""
    if azurite.binary() is None:
        reason = azurite.missing_reason() or "run `make azurite`"
        if os.environ.get("DEVHOST_REQUIRE_AZURITE") == "1":
            pytest.fail(f"DEVHOST_REQUIRE_AZURITE=1 but Azurite is not installed: {reason}")
        pytest.skip(f"Azurite is not installed: {reason}")
    if azurite.listening(DEV_QUEUE_PORT):
        pytest.skip(f"something else listens on 127.0.0.1:{DEV_QUEUE_PORT}")
    port = free_port()
    log = tmp_path / "devhost.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "devhost", "--app", str(REPO), "--port", str(port),
             "--db", str(tmp_path / "db.sqlite3"), "--start-azurite"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            env={**{k: v for k, v in os.environ.items() if k != "AzureWebJobsStorage"},
                 "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 60
        while "Host started" not in log.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()
            time.sleep(0.1)
        assert f"Azurite {azurite.VERSION} started on 127.0.0.1:{DEV_QUEUE_PORT}" \
            in log.read_text()
        assert azurite.listening(DEV_QUEUE_PORT)
        if not (REPO / "local.settings.json").exists():  # a fresh clone: no setup step needed
            assert "AzureWebJobsStorage is unset: using UseDevelopmentStorage=true" \
                in log.read_text()
    finally:
        proc.send_signal(ending)
        proc.wait(30)
    deadline = time.monotonic() + 15
    while azurite.listening(DEV_QUEUE_PORT) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not azurite.listening(DEV_QUEUE_PORT), "Azurite outlived devhost"


@pytest.mark.e2e
async def test_a_listener_runs_at_most_a_batch_and_fetches_again_at_the_threshold(
        storage: str) -> None:
    """batchSize 4 and newBatchThreshold 1: four messages run at once, no fifth is fetched while
    they run, and once they finish the rest are delivered; messageEncoding none hands over the
    text as stored."""
    Queues(storage).service.get_queue_client("batch").create_queue()
    for i in range(10):
        Queues(storage).send("batch", f"message {i}", base64_encode=False)
    running: set[str] = set()
    bodies: list[bytes] = []
    peak = 0
    release = asyncio.Event()

    async def function(msg: func.QueueMessage) -> None:
        nonlocal peak
        running.add(msg.id)
        peak = max(peak, len(running))
        bodies.append(msg.get_body())
        await release.wait()
        running.discard(msg.id)

    listener = QueueListener(
        QueueFunction("f", "msg", None, "batch", "Conn", function, True),
        QueueOptions(batch_size=4, new_batch_threshold=1, max_polling_interval=0.2,
                     message_encoding="none"),
        lambda: None, environ={"Conn": storage})
    task = asyncio.create_task(listener.run())
    try:
        for _ in range(300):
            if len(running) == 4:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)  # room for a wrong early fetch to show up
        assert len(running) == 4 and len(bodies) == 4
        release.set()
        for _ in range(300):
            if len(bodies) == 10 and Queues(storage).count("batch") == 0:
                break
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert peak == 4
    assert sorted(bodies) == sorted(f"message {i}".encode() for i in range(10))
    assert Queues(storage).count("batch") == 0


@pytest.mark.e2e
async def test_stop_fetches_nothing_new_and_lets_a_running_message_finish_and_be_deleted(
        storage: str, caplog: pytest.LogCaptureFixture) -> None:
    """devhost's shutdown (SIGTERM): the running function finishes within the grace period,
    its message is deleted; the message not yet fetched stays in the queue."""
    Queues(storage).send("drain", "first", base64_encode=False)
    started, release = asyncio.Event(), asyncio.Event()
    bodies: list[bytes] = []

    async def function(msg: func.QueueMessage) -> None:
        bodies.append(msg.get_body())
        started.set()
        await release.wait()

    listener = QueueListener(
        QueueFunction("drainer", "msg", None, "drain", "Conn", function, True),
        QueueOptions(batch_size=1, new_batch_threshold=0, max_polling_interval=0.2,
                     message_encoding="none"),
        lambda: None, environ={"Conn": storage})
    caplog.set_level("INFO", logger="Function.drainer")
    task = asyncio.create_task(listener.run())
    try:
        await asyncio.wait_for(started.wait(), 20)
        Queues(storage).send("drain", "second", base64_encode=False)
        listener.stop()
        await asyncio.sleep(0.5)
        assert not task.done()  # the running function is not cut
        release.set()
        await asyncio.wait_for(task, 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert bodies == [b"first"]
    assert Queues(storage).texts("drain") == ["second"]
    lines = [r.getMessage() for r in caplog.records if r.name == "Function.drainer"]
    assert lines[0].startswith("Executing 'Functions.drainer' (Reason='New queue message "
                               "detected on 'drain'.', Id=")
    assert lines[1].startswith("Executed 'Functions.drainer' (Succeeded, Id=")


@pytest.mark.e2e
async def test_a_message_whose_function_is_cut_at_the_end_of_the_grace_period_stays_queued(
        storage: str) -> None:
    Queues(storage).send("cut", "only", base64_encode=False)
    started = asyncio.Event()

    async def function(msg: func.QueueMessage) -> None:
        started.set()
        await asyncio.Event().wait()  # never finishes

    listener = QueueListener(
        QueueFunction("cutter", "msg", None, "cut", "Conn", function, True),
        QueueOptions(batch_size=1, new_batch_threshold=0, max_polling_interval=0.2,
                     message_encoding="none"),
        lambda: None, environ={"Conn": storage})
    task = asyncio.create_task(listener.run())
    await asyncio.wait_for(started.wait(), 20)
    listener.stop()
    await asyncio.wait({task}, timeout=0.3)  # a short grace period
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert Queues(storage).count("cut") == 1  # invisible until its lease ends, then delivered


@pytest.mark.parametrize("broken", ["local.settings.json", "host.json"])
def test_queue_tool_refuses_a_broken_settings_file_with_exit_2_and_its_path(
        broken: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from devhost.triggers.queues import main

    (tmp_path / broken).write_text("{not json")
    assert main(["workflow-stop", "{}", "--app", str(tmp_path), "--connection", "NoSuchSetting"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("devhost.queues: ") and str(tmp_path / broken) in err
