"""``python -m devhost durable <verb>`` (devhost.tools.cli): every func durable verb against a running
devhost and on a stopped one's database, tables and --json, and the documented exit codes."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from devhost.host.process import REPO, DevhostProcess, free_port
from devhost.tools import cli
from tests.devhost.support import CAPABILITIES, fresh_id

pytestmark = pytest.mark.e2e


def durable(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def durable_json(*argv: str) -> Any:
    code, out, err = durable(*argv, "--json")
    assert code == 0, err
    return json.loads(out)


def wait_status(url: str, iid: str, wanted: set[str], timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        status = durable_json("get-runtime-status", "--url", url, "--id", iid, "--show-output")
        if status["runtimeStatus"] in wanted or time.monotonic() > deadline:
            assert status["runtimeStatus"] in wanted, status
            return status
        time.sleep(0.05)


@pytest.fixture(scope="module")
def host(module_devhost_factory: Callable[..., DevhostProcess]) -> DevhostProcess:
    return module_devhost_factory(CAPABILITIES)


def test_start_new_passes_the_input_as_the_python_client_would(host: DevhostProcess) -> None:
    iid = fresh_id("cli")
    code, out, err = durable("start-new", "--url", host.url, "--function-name", "waiter",
                             "--input", '{"order": 42}', "--id", iid)
    assert (code, err) == (0, "") and f"as instance {iid}" in out
    status = wait_status(host.url, iid, {"Running"})
    assert status["customStatus"] == {"stage": "waiting", "input": {"order": 42}}
    generated = durable_json("start-new", "--url", host.url, "--function-name", "chain",
                             "--input", '"ann"')
    done = wait_status(host.url, generated["id"], {"Completed"})
    assert done["output"] == ["Hello ann", "Hi Hello ann"]


def test_ids_with_spaces_quotes_and_percent_signs_reach_the_right_instance(
        host: DevhostProcess) -> None:
    iid = fresh_id('odd "id"') + " %41%"
    started = durable_json("start-new", "--url", host.url, "--function-name", "waiter",
                           "--id", iid, "--input", '"o"')
    assert started["id"] == iid
    assert wait_status(host.url, iid, {"Running"})["instanceId"] == iid
    assert durable("raise-event", "--url", host.url, "--id", iid, "--event-name", "Go")[0] == 0
    assert wait_status(host.url, iid, {"Completed"})["output"] == {"got": None, "input": "o"}


def test_raise_event_delivers_the_json_and_get_history_shows_it(host: DevhostProcess,
                                                              tmp_path: Path) -> None:
    iid = fresh_id("cli")
    durable_json("start-new", "--url", host.url, "--function-name", "waiter", "--id", iid,
                 "--input", '"w"')
    data = tmp_path / "event.json"
    data.write_text('{"approved": true}')
    code, out, _ = durable("raise-event", "--url", host.url, "--id", iid, "--event-name", "Go",
                           "--event-data", f"@{data}")
    assert code == 0 and "Raised event 'Go'" in out
    assert wait_status(host.url, iid, {"Completed"})["output"] == \
        {"got": {"approved": True}, "input": "w"}
    code, table, _ = durable("get-history", "--url", host.url, "--id", iid)
    assert code == 0
    assert table.splitlines()[0].split() == ["Timestamp", "EventType", "Name", "TaskId", "Data"]
    assert any("EventRaised" in line and "Go" in line and '{"approved":true}' in line
               for line in table.splitlines())
    events = durable_json("get-history", "--url", host.url, "--id", iid)
    assert [e["EventType"] for e in events if e["EventType"].startswith("Execution")] == \
        ["ExecutionStarted", "ExecutionCompleted"]


def test_suspend_resume_terminate_and_a_second_terminate_is_refused(host: DevhostProcess) -> None:
    iid = fresh_id("cli")
    durable_json("start-new", "--url", host.url, "--function-name", "waiter", "--id", iid,
                 "--input", '"s"')
    wait_status(host.url, iid, {"Running"})
    assert durable("suspend", "--url", host.url, "--id", iid, "--reason", "look")[0] == 0
    wait_status(host.url, iid, {"Suspended"})
    assert durable("resume", "--url", host.url, "--id", iid)[0] == 0
    wait_status(host.url, iid, {"Running"})
    code, out, _ = durable("terminate", "--url", host.url, "--id", iid, "--reason", "enough")
    assert code == 0 and "accepted" in out
    assert wait_status(host.url, iid, {"Terminated"})["output"] == "enough"
    code, out, err = durable("terminate", "--url", host.url, "--id", iid)
    assert (code, out) == (cli.REFUSED, "") and "410" in err and "already finished" in err
    code, _, err = durable("get-runtime-status", "--url", host.url, "--id", fresh_id("none"))
    assert code == cli.REFUSED and "404" in err


def test_get_instances_filters_and_pages_with_the_continuation_token(host: DevhostProcess) -> None:
    prefix = fresh_id("page") + "-"
    ids = [f"{prefix}{i}" for i in range(5)]
    for iid in ids:
        durable_json("start-new", "--url", host.url, "--function-name", "waiter", "--id", iid,
                     "--input", '"p"')
    seen, token, pages = [], None, 0
    while True:
        args = ["get-instances", "--url", host.url, "--instance-id-prefix", prefix, "--top", "2"]
        page = durable_json(*args, *(["--continuation-token", token] if token else []))
        seen += [i["instanceId"] for i in page["instances"]]
        token, pages = page["continuationToken"], pages + 1
        if not token:
            break
    assert sorted(seen) == ids and pages == 3
    for iid in ids:
        wait_status(host.url, iid, {"Running"})
    durable("terminate", "--url", host.url, "--id", ids[0])
    wait_status(host.url, ids[0], {"Terminated"})
    code, out, _ = durable("get-instances", "--url", host.url, "--instance-id-prefix", prefix,
                           "--runtime-status", "Terminated", "--show-input")
    lines = out.splitlines()
    assert code == 0 and lines[0].split()[:3] == ["InstanceId", "Name", "RuntimeStatus"]
    assert [line.split()[0] for line in lines[2:-1]] == [ids[0]]
    assert lines[-1] == "1 instance(s)"


def test_purge_history_and_delete_task_hub(devhost_factory: Callable[..., DevhostProcess]
                                           ) -> None:
    host = devhost_factory(CAPABILITIES)
    done = [durable_json("start-new", "--url", host.url, "--function-name", "chain",
                         "--input", f'"{n}"')["id"] for n in "ab"]
    live = durable_json("start-new", "--url", host.url, "--function-name", "waiter",
                        "--input", '"x"')["id"]
    for iid in done:
        wait_status(host.url, iid, {"Completed"})
    code, out, _ = durable("purge-history", "--url", host.url, "--runtime-status", "Completed")
    assert (code, out.strip()) == (0, "Purged 2 instance(s)")
    assert durable("purge-history", "--url", host.url, "--runtime-status", "Completed")[1] \
        .strip() == "Purged 0 instance(s)"
    assert durable_json("delete-task-hub", "--url", host.url) == {"instancesDeleted": 1}
    assert durable("get-runtime-status", "--url", host.url, "--id", live)[0] == cli.REFUSED


def test_rewind_is_refused_without_sending_anything() -> None:
    code, out, err = durable("rewind", "--url", f"http://127.0.0.1:{free_port()}", "--id", "x")
    assert (code, out) == (cli.UNSUPPORTED, "") and "rewind is not supported" in err


def test_no_devhost_running_is_a_clear_error_with_exit_3() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = durable("get-instances", "--url", url)
    assert (code, out) == (cli.UNREACHABLE, "")
    assert f"devhost is not running at {url}" in err


@pytest.mark.parametrize("argv, problem", [
    (["start-new", "--function-name", "chain", "--input", "not json"], "--input is not valid JSON"),
    (["raise-event", "--id", "x", "--event-name", "Go", "--event-data", "{"], "--event-data"),
    (["fly-away"], "invalid choice"),
    (["terminate"], "--id"),
    (["get-instances", "--url", "http://a", "--db", "b"], "not both"),
])
def test_bad_command_lines_exit_2_and_say_why(argv: list[str], problem: str) -> None:
    code, out, err = durable(*argv)
    assert (code, out) == (cli.USAGE, "") and problem in err


def test_database_mode_reads_and_queues_work_for_the_next_start_and_refuses_a_busy_db(
        tmp_path: Path) -> None:
    db = tmp_path / "cli.sqlite3"
    host = DevhostProcess(CAPABILITIES, db).start()
    try:
        iid = durable_json("start-new", "--url", host.url, "--function-name", "chain",
                           "--input", '"one"')["id"]
        wait_status(host.url, iid, {"Completed"})
        code, _, err = durable("get-instances", "--db", str(db), "--app", str(CAPABILITIES))
        assert code == cli.UNREACHABLE and "in use by another devhost" in err
    finally:
        host.stop()
    on_db = ["--db", str(db), "--app", str(CAPABILITIES)]
    listed = durable_json("get-instances", *on_db)
    assert [i["instanceId"] for i in listed["instances"]] == [iid]
    queued = durable_json("start-new", *on_db, "--function-name", "chain", "--input", '"two"',
                          "--id", "queued")
    assert queued["id"] == "queued"
    assert durable_json("get-runtime-status", *on_db, "--id", "queued")["runtimeStatus"] == \
        "Pending"
    code, _, err = durable("get-instances", "--db", str(tmp_path / "missing.sqlite3"))
    assert code == cli.UNREACHABLE and "no devhost database" in err
    host.start()
    try:
        assert wait_status(host.url, "queued", {"Completed"})["output"] == \
            ["Hello two", "Hi Hello two"]
    finally:
        host.stop()


def test_python_m_devhost_durable_is_the_command_and_plain_devhost_still_serves(
        host: DevhostProcess) -> None:
    result = subprocess.run([sys.executable, "-m", "devhost", "durable", "get-instances",
                             "--url", host.url, "--top", "1", "--json"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)) == {"instances", "continuationToken"}
    # `python -m devhost` without a verb is the server: the fixture's host was started so.
    assert f"Dashboard: http://localhost:{host.port}/_devhost/" in host.output()


def test_table_cells_escape_control_characters() -> None:
    assert cli.printable("a\x1b[2Jb\nc") == "a\\x1b[2Jb\\nc"
    text = cli.table([["x\rkill", {"k": [1]}]], ["Id", "Value"])
    assert "\r" not in text and '{"k":[1]}' in text


# ---- files that are not a stopped devhost's database (issue 19 item 7) -------------------------


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _foreign_sqlite(path: Path, script: str, application_id: int = 0) -> None:
    import sqlite3
    db = sqlite3.connect(path)
    db.executescript(script)
    if application_id:
        db.execute(f"PRAGMA application_id={application_id}")
    db.commit()
    db.close()


FOREIGN = {
    "another program's SQLite file": (
        lambda p: _foreign_sqlite(p, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                                     "INSERT INTO notes (body) VALUES ('keep me');"),
        "another program"),
    "a SQLite file with its own application id": (
        lambda p: _foreign_sqlite(p, "CREATE TABLE t (x);", application_id=0x46697265),
        "application id 0x46697265"),
    "a foreign instances table": (
        lambda p: _foreign_sqlite(p, "CREATE TABLE instances (id TEXT, status TEXT);"
                                     "INSERT INTO instances VALUES ('a', 'Running');"),
        "another program (instances)"),
    "an empty file": (lambda p: p.write_bytes(b""), "is empty"),
    "a text file": (lambda p: p.write_text("name,status\na,Running\n" * 10), "not a SQLite"),
}


@pytest.mark.parametrize("case", list(FOREIGN))
def test_the_cli_leaves_a_file_that_is_not_a_devhost_database_unchanged_and_exits_3(
        tmp_path: Path, case: str) -> None:
    make, says = FOREIGN[case]
    db = tmp_path / "data.db"
    make(db)
    before = _snapshot(tmp_path)
    for verb in (["get-instances"], ["start-new", "--function-name", "chain", "--id", "x"],
                 ["purge-history"]):
        code, out, err = durable(*verb, "--db", str(db), "--app", str(CAPABILITIES))
        assert code == cli.UNREACHABLE, (case, code, out, err)
        assert says in err and err.count("\n") == 1 and "Traceback" not in err, err
    # Not one byte changed: no WAL switch, no tables, no -wal/-shm/.lock beside it.
    assert _snapshot(tmp_path) == before


def test_the_cli_refuses_a_read_only_database_and_a_read_only_directory_with_exit_3(
        tmp_path: Path) -> None:
    from devhost.core.store import Store
    store_dir = tmp_path / "ro"
    store_dir.mkdir()
    db = store_dir / "devhost.sqlite3"
    Store(str(db)).close()
    db.chmod(0o444)
    try:
        code, _, err = durable("get-instances", "--db", str(db), "--app", str(CAPABILITIES))
        assert code == cli.UNREACHABLE and "read-only" in err and err.count("\n") == 1, err
        db.chmod(0o644)
        store_dir.chmod(0o555)
        code, _, err = durable("get-instances", "--db", str(db), "--app", str(CAPABILITIES))
        assert code == cli.UNREACHABLE and "read-only" in err and err.count("\n") == 1, err
    finally:
        store_dir.chmod(0o755)
        db.chmod(0o644)


def test_a_devhost_store_that_predates_the_application_id_is_recognised_by_its_schema(
        tmp_path: Path) -> None:
    import sqlite3

    from devhost.core.store import APPLICATION_ID, SCHEMA
    db = tmp_path / "old.sqlite3"
    _foreign_sqlite(db, SCHEMA)  # what devhost wrote before it set an application id
    listed = durable_json("get-instances", "--db", str(db), "--app", str(CAPABILITIES))
    assert listed["instances"] == []
    check = sqlite3.connect(db)
    assert check.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    check.close()


def test_devhost_refuses_to_serve_on_another_programs_database_and_leaves_it_unchanged(
        tmp_path: Path) -> None:
    db = tmp_path / "theirs.db"
    FOREIGN["another program's SQLite file"][0](db)
    before = _snapshot(tmp_path)
    host = DevhostProcess(CAPABILITIES, db, log=tmp_path.parent / f"{tmp_path.name}.log")
    with pytest.raises(RuntimeError, match="exited with 2") as info:
        host.start(timeout=30)
    assert "another program" in str(info.value)
    assert _snapshot(tmp_path) == before
