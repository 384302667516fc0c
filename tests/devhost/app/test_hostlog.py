"""devhost.app.hostlog and devhost.app.failures: host-style invocation lines, failures with the user's
own frames, and host.json levels read the way the host reads them."""
from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Callable, Iterator

import aiohttp
import pytest

from devhost.app import failures, hostlog
from devhost.app.hostlog import LogLevels
from devhost.host.process import DevhostProcess
from tests.devhost.support import APPS, Api, fresh_id, stored_history

APP = APPS / "hostlog"
DEVHOST_DIR = str(Path(hostlog.__file__).resolve().parent.parent)

EXECUTING = re.compile(r"Executing 'Functions\.(\w+)' \(Reason='([^']*)', Id=([0-9a-f-]{36})\)")
EXECUTED = re.compile(
    r"Executed 'Functions\.(\w+)' \((Succeeded|Failed), Id=([0-9a-f-]{36}), Duration=(\d+)ms\)")


# ---- levels, as the host's rule selector reads them ---------------------------------------------

def test_longest_matching_category_prefix_wins_case_insensitively() -> None:
    levels = LogLevels.from_host_json({"logging": {"logLevel": {
        "default": "Error", "Function": "Warning", "function.hello": "Debug",
        "Host.Results": "Information"}}})
    assert levels.level_for("Function.hello") == logging.DEBUG
    assert levels.level_for("Function.Hello.User") == logging.DEBUG
    # A prefix of the text, not of dotted segments: the host matches "Function.helloWorld" too.
    assert levels.level_for("Function.helloWorld") == logging.DEBUG
    assert levels.level_for("Function.greet") == logging.WARNING
    assert levels.level_for("Host.Results") == logging.INFO
    assert levels.level_for("Host.Triggers.DurableTask") == logging.ERROR
    assert levels.level_for("DurableTask.Core") == logging.ERROR


def test_a_wildcard_rule_matches_any_middle() -> None:
    levels = LogLevels.from_host_json({"logging": {"logLevel": {
        "default": "Information", "Function.*.User": "None"}}})
    assert levels.level_for("Function.hello.User") == hostlog.NONE
    assert levels.level_for("Function.hello") == logging.INFO


def test_none_silences_a_category_even_for_critical_records() -> None:
    levels = LogLevels.from_host_json({"logging": {"logLevel": {"DurableTask.Core": "None"}}})
    assert levels.level_for("DurableTask.Core") > logging.CRITICAL
    assert levels.level_for("DurableTask.AzureStorage") == logging.INFO  # default Information


def test_the_log_level_flag_replaces_every_rule() -> None:
    levels = LogLevels.from_host_json({"logging": {"logLevel": {
        "default": "Trace", "Function": "Debug"}}}, override="warning")
    assert levels.level_for("Function.hello") == logging.WARNING
    assert levels.level_for("anything.else") == logging.WARNING


def test_a_level_the_host_would_refuse_is_named_with_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match=r"logLevel\.Function: 'Verbose' is not a log level "
                                         r"\(use one of Trace, Debug, Information"):
        LogLevels.from_host_json({"logging": {"logLevel": {"Function": "Verbose"}}})


# ---- the console ------------------------------------------------------------------------------

@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """devhost's console handler configured on a string, as ``python -m devhost`` configures
    it on stderr; the process's logging is put back afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, hostlog._handler, hostlog._levels)
    stream = io.StringIO()
    hostlog.configure(LogLevels(), stream)
    try:
        yield stream
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        hostlog._handler, hostlog._levels = saved[2], saved[3]


class _Collect(logging.Handler):
    """A handler a user's app may add (a telemetry exporter)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_host_lines_are_written_as_records_are_and_reach_no_python_handler(
        console: io.StringIO) -> None:
    collect = _Collect()
    logging.getLogger().addHandler(collect)
    invocation = hostlog.Invocation("greet", hostlog.HTTP_REASON)
    logging.getLogger("my.app").info("hello %s", "there")
    invocation.succeeded()
    lines = console.getvalue().splitlines()
    stamp = r"\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] "
    assert re.fullmatch(stamp + EXECUTING.pattern, lines[0]), lines[0]
    assert re.fullmatch(stamp + "hello there", lines[1]), lines[1]  # Function.greet.User
    assert re.fullmatch(stamp + EXECUTED.pattern, lines[2]), lines[2]
    # On the host the Executing/Executed lines are the host's own: the worker's Python
    # handlers see only what the function logged.
    assert [r.getMessage() for r in collect.records] == ["hello there"]
    # The same text the formatter gives a record of that time.
    created = 1_764_806_400.0423
    record = logging.LogRecord("Function.greet", logging.INFO, __file__, 0, "Executed", (),
                               None)
    record.created, record.msecs = created, (created - int(created)) * 1000
    console.truncate(0)
    console.seek(0)
    assert isinstance(hostlog._handler, logging.Handler)
    hostlog._handler.write_line(created, "Executed")
    assert console.getvalue() == hostlog.HostFormatter().format(record) + "\n"


def test_a_deferred_episode_writes_executing_at_its_start_then_what_it_logged(
        console: io.StringIO) -> None:
    invocation = hostlog.Invocation("orchestrate", hostlog.DURABLE_REASON, "i1", defer=True)
    began = time.time()
    logging.getLogger("my.app").info("inside")
    time.sleep(0.02)
    invocation.succeeded()
    lines = console.getvalue().splitlines()
    assert [EXECUTING.search(lines[0]) is not None, lines[1].endswith("] inside"),
            EXECUTED.search(lines[2]) is not None] == [True, True, True], lines
    # Written last but stamped with the time the episode began, as on the host.
    began_stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(began)) + \
        f".{int((began - int(began)) * 1000):03d}"
    assert lines[0][1:24] <= began_stamp < lines[2][1:24]


# ---- the user's frames --------------------------------------------------------------------------

def _check_stock(item: str) -> None:
    raise LookupError(f"no stock for {item}")


def _reserve(item: str) -> None:
    _check_stock(item)


def _ask_devhost() -> None:
    hostlog.parse_level("Verbose")  # user code calling into devhost (as the in-process client)


def test_devhost_frames_never_appear_even_below_user_code() -> None:
    try:
        _ask_devhost()
    except ValueError as exc:
        caught = exc
    names = [frame.name for frame in failures.user_frames(caught)]
    assert names[-1] == "_ask_devhost"
    assert DEVHOST_DIR not in failures.host_text(caught)
    assert failures.host_text(caught).startswith(
        "Result: Failure\nException: ValueError: 'Verbose' is not a log level")


def test_an_activity_failure_has_the_hosts_reason_and_serialised_exception() -> None:
    try:
        _reserve("widget")
    except LookupError as exc:
        reason, details = failures.activity_failure("reserve", exc)
    assert reason.startswith("Activity function 'reserve' failed: Result: Failure\n"
                             "Exception: LookupError: no stock for widget\nStack: ")
    data = json.loads(details)
    assert reason == f"Activity function 'reserve' failed: {data['Message']}"
    assert data["RemoteMessage"] == "LookupError: no stock for widget"
    assert "in _check_stock" in data["RemoteStackTrace"]


# ---- a running devhost --------------------------------------------------------------------------

def _app_with_levels(tmp: Path, levels: dict[str, str]) -> Path:
    """A copy of the test app whose host.json sets ``logging.logLevel``."""
    app = tmp / "app"
    app.mkdir()
    shutil.copy(APP / "function_app.py", app / "function_app.py")
    host = json.loads((APP / "host.json").read_text())
    host["logging"] = {"logLevel": levels}
    (app / "host.json").write_text(json.dumps(host))
    return app


@pytest.fixture
def start_devhost(tmp_path: Path) -> Iterator[Callable[..., DevhostProcess]]:
    started: list[DevhostProcess] = []

    def start(app: Path = APP, log_level: str | None = None) -> DevhostProcess:
        host = DevhostProcess(app, tmp_path / f"db{len(started)}.sqlite3", log_level=log_level)
        started.append(host)
        return host.start()

    yield start
    for host in started:
        host.stop()


async def _delivered(host: DevhostProcess, instance_id: str, event: str,
                     timeout: float = 10.0) -> None:
    """Wait until an episode delivered ``event`` (it is in the stored history; that episode's
    log lines are written right after its commit, in the same event-loop turn)."""
    deadline = time.monotonic() + timeout
    while not any(ev.get("Name") == event for ev in stored_history(host.db, instance_id)):
        assert time.monotonic() < deadline, f"{event} never reached {instance_id}"
        await asyncio.sleep(0.02)


def _records(host: DevhostProcess) -> list[str]:
    """The log split into records (a record starts with ``[<time>Z]``)."""
    return re.split(r"\n(?=\[\d{4}-\d\d-\d\dT[\d:.]+Z\] )", host.log.read_text())


async def test_every_invocation_logs_executing_and_executed_with_one_id(
        start_devhost: Callable[..., DevhostProcess]) -> None:
    host = start_devhost()
    key = fresh_id("hello")
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        await api.start("hello", "ada", instance_id=key)
        assert (await api.wait_for(key))["output"] == "Hello ada"
    log = host.log.read_text()
    started = {m[3]: (m[1], m[2]) for m in EXECUTING.finditer(log)}
    finished = {m[3]: (m[1], m[2]) for m in EXECUTED.finditer(log)}
    assert set(started) == set(finished)
    by_function: dict[str, list[str]] = {}
    for invocation_id, (name, reason) in started.items():
        assert finished[invocation_id] == (name, "Succeeded")
        by_function.setdefault(name, []).append(reason)
    assert by_function["start"] == [hostlog.HTTP_REASON]
    assert by_function["greet"] == ["(null)"]
    # Two orchestrator episodes: the start, and the activity's result.
    assert by_function["hello"] == ["(null)", "(null)"]
    # A sync activity logs from devhost's thread pool, through its own logger: still the
    # function's category (Function.greet.User), printed plainly.
    assert re.search(r"\[[\dT:.-]+Z\] greeting ada\n", log), log
    # What the orchestrator logs comes out between its episode's two lines, as on the host.
    lines = [line for line in log.splitlines() if "Functions.hello'" in line
             or f"hello orchestrator episode for {key}" in line]
    assert len(lines) == 6
    for executing, own, executed in (lines[0:3], lines[3:6]):
        ids = EXECUTING.search(executing), EXECUTED.search(executed)
        assert ids[0] and ids[1] and ids[0][3] == ids[1][3], (executing, executed)
        # The function's own log, in category Function.hello.User, printed as the host does.
        assert re.fullmatch(rf"\[[\dT:.-]+Z\] hello orchestrator episode for {key}", own), own


async def test_a_failed_activity_is_logged_once_with_its_frames_and_instance_and_fails_the_run(
        start_devhost: Callable[..., DevhostProcess]) -> None:
    host = start_devhost()
    key = fresh_id("order")
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        await api.start("order", key, instance_id=key)
        status = await api.wait_for(key)
    assert status["runtimeStatus"] == "Failed"
    output = status["output"]
    assert output.startswith(
        f"Orchestrator function 'order' failed: Activity function 'reserve' failed: "
        f"Result: Failure\nException: LookupError: no stock for {key}\nStack:   File ")
    assert "in _check_stock" in output and DEVHOST_DIR not in output
    failed = [r for r in _records(host) if "Executed 'Functions.reserve' (Failed" in r]
    assert len(failed) == 1, failed
    record = failed[0]
    assert f"Functions.reserve (instance '{key}')" in record
    assert f"Exception: LookupError: no stock for {key}" in record
    assert 'function_app.py", line' in record and "in reserve" in record
    # The sync activity ran in devhost's thread pool: neither devhost nor the pool shows.
    assert DEVHOST_DIR not in record and "concurrent" not in record
    # The run failing because of it is the orchestrator's own failure, also logged once.
    assert len([r for r in _records(host) if "Executed 'Functions.order' (Failed" in r
                and key in r]) == 1


async def test_a_failed_orchestrator_is_logged_with_its_frames_and_no_devhost_frames(
        start_devhost: Callable[..., DevhostProcess]) -> None:
    host = start_devhost()
    key = fresh_id("broken")
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        await api.start("broken", key, instance_id=key)
        status = await api.wait_for(key)
    assert status["runtimeStatus"] == "Failed"
    assert status["output"] == f"Orchestrator function 'broken' failed: broken after greeting: {key}"
    failed = [r for r in _records(host) if "Executed 'Functions.broken' (Failed" in r]
    assert len(failed) == 1, failed
    assert f"(instance '{key}')" in failed[0]
    assert f"Exception: ValueError: broken after greeting: {key}" in failed[0]
    assert "in broken" in failed[0] and DEVHOST_DIR not in failed[0]
    assert "azure/durable_functions" not in failed[0]


async def test_a_failed_http_function_answers_500_and_logs_the_users_frames(
        start_devhost: Callable[..., DevhostProcess]) -> None:
    host = start_devhost()
    async with aiohttp.ClientSession() as session:
        code, _, _ = await Api(session, host.url).request("GET", "/api/boom")
    assert code == 500
    failed = [r for r in _records(host) if "Executed 'Functions.boom' (Failed" in r]
    assert len(failed) == 1, failed
    assert "Exception: LookupError: no stock for http-widget" in failed[0]
    assert "in boom" in failed[0] and DEVHOST_DIR not in failed[0]


async def test_host_json_levels_hide_lines_by_category_and_show_pure_replays_at_debug(
        start_devhost: Callable[..., DevhostProcess], tmp_path: Path) -> None:
    app = _app_with_levels(tmp_path, {"default": "Information", "Function": "Warning",
                                      "Function.waiter": "Debug"})
    host = start_devhost(app)
    key, order, hello = fresh_id("wait"), fresh_id("order"), fresh_id("hello")
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        await api.start("waiter", None, instance_id=key)
        await api.wait_for(key, {"Running"})
        # An event nobody waits for: the episode only replays.
        assert (await api.raise_raw(key, "Noise", 1))[0] == 202
        await _delivered(host, key, "Noise")
        assert (await api.raise_raw(key, "Go", 2))[0] == 202
        assert (await api.wait_for(key))["output"] == 2
        await api.start("order", order, instance_id=order)
        await api.wait_for(order)
        await api.start("hello", "ada", instance_id=hello)
        await api.wait_for(hello)
    log = host.log.read_text()
    names = [m[1] for m in EXECUTING.finditer(log)]
    assert "start" not in names and "hello" not in names  # "Function": "Warning" hides them
    # ... and what the functions log at Information (Function.hello.User).
    assert "hello orchestrator episode" not in log
    assert names.count("waiter") == 3  # start, the pure replay (Debug), the event
    # Errors pass a Warning level: the failure is still there.
    assert "Executed 'Functions.reserve' (Failed" in log


async def test_pure_replays_are_hidden_at_information(
        start_devhost: Callable[..., DevhostProcess]) -> None:
    host = start_devhost()
    key = fresh_id("wait")
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        await api.start("waiter", None, instance_id=key)
        await api.wait_for(key, {"Running"})
        assert (await api.raise_raw(key, "Noise", 1))[0] == 202
        await _delivered(host, key, "Noise")
        assert (await api.raise_raw(key, "Go", 2))[0] == 202
        await api.wait_for(key)
    names = [m[1] for m in EXECUTING.finditer(host.log.read_text())]
    assert names.count("waiter") == 2  # the start and the event; the replay is at Debug


async def test_the_log_level_flag_overrides_host_json(
        start_devhost: Callable[..., DevhostProcess], tmp_path: Path) -> None:
    app = _app_with_levels(tmp_path, {"default": "Debug"})
    host = start_devhost(app, log_level="None")
    key = fresh_id("order")
    async with aiohttp.ClientSession() as session:
        api = Api(session, host.url)
        await api.start("order", key, instance_id=key)
        assert (await api.wait_for(key))["runtimeStatus"] == "Failed"
    log = host.log.read_text()
    assert "Host started" in log  # the banner is output, not a log record
    assert "Executing 'Functions." not in log and "Executed 'Functions." not in log
