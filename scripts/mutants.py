"""``make mutants``: one small change per guarantee must make the test that proves it fail.

Each mutant below names the guarantee it breaks (the README's guarantees table, in order), a
one-line change (a line of the code, found by its content, never by its number: it may move and
be re-indented), and the test(s) that must catch it. Every mutant is applied to a fresh temporary
copy of the repository (``git ls-files``; the working tree is never touched) and the named tests
run there with this virtualenv's Python. A mutant whose tests still pass *survived*; one whose
line is no longer in its file (the code was customised or rewritten) *no longer applies* and is
named with the line it looked for. Either way the script prints them and exits 1.

    python scripts/mutants.py            # run all (``make mutants``)
    python scripts/mutants.py -k stop    # only mutants whose guarantee or file matches "stop"
    python scripts/mutants.py --table    # print docs/mutation-testing.md's table, run nothing
    python scripts/mutants.py --baseline # the named tests pass without the mutations
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
GUARANTEES = "tests/proofs/test_guarantees.py"


@dataclass(frozen=True)
class Mutant:
    guarantee: str
    path: str
    original: str  # one whole line of ``path``; matched without its leading spaces
    mutated: str
    tests: tuple[str, ...]


MUTANTS = [
    Mutant("lookup is a point read", "workflow/lookup.py",
           "        status = await client.get_status(key.instance_id)",
           "        status = next((s for s in await client.get_status_all() "
           "if s.instance_id == key.instance_id), None)",
           (f"{GUARANTEES}::test_check_is_a_point_read_never_a_listing",)),
    Mutant("start is idempotent", "host.json",
           '      "overridableExistingInstanceStates": "NonRunningStates",',
           '      "overridableExistingInstanceStates": "AnyState",',
           (f"{GUARANTEES}::test_thousand_concurrent_starts_of_one_input_make_one_instance",)),
    Mutant("no lost stop before the first wait", "devhost/core/episode.py",
           "        if m.execution_id is None or m.execution_id == inst.execution_id:",
           "        if (m.execution_id is None or m.execution_id == inst.execution_id) and not ("
           "m.kind == 'event' and inst.status == RuntimeStatus.PENDING):",
           (f"{GUARANTEES}::test_stop_before_orchestrator_waits_is_not_lost",)),
    Mutant("no lost stop across kill -9", "devhost/tools/management.py",
           "            self.store.enqueue(message, LIVE)",
           "            __import__('asyncio').get_running_loop().call_later("
           "0.5, self.store.enqueue, message, LIVE)",
           (f"{GUARANTEES}::test_event_acknowledged_by_the_host_survives_kill_9_before_it_is_processed",)),
    Mutant("of concurrent stops exactly one wins", "workflow/lookup.py",
           "    if stopped_by == stop_id:",
           "    if stopped_by is not None:",
           (f"{GUARANTEES}::test_fifty_concurrent_stops_give_exactly_one_202_and_one_outcome",)),
    Mutant("a stop is answered when the run takes its event", "workflow/lookup.py",
           '    return not status.is_active or (isinstance(custom, Mapping) and custom.get("outcome") is not None)',
           "    return not status.is_active",
           ("tests/test_lookup.py::test_stop_is_confirmed_while_a_step_after_the_event_still_runs",)),
    Mutant("timer and stop racing give one outcome", "workflow/orchestrator.py",
           "        winner = yield context.task_any([event, timer])",
           "        winner = yield event",
           (f"{GUARANTEES}::test_timer_and_stop_racing_give_exactly_one_outcome",)),
    # The same guarantee as the row above (an acknowledged stop outlives kill -9), and the same
    # mutant: the deterministic proof kills it; the chaos test's random kills may miss its window.
    Mutant("survives kill -9 (chaos)", "devhost/tools/management.py",
           "            self.store.enqueue(message, LIVE)",
           "            __import__('asyncio').get_running_loop().call_later("
           "0.5, self.store.enqueue, message, LIVE)",
           (f"{GUARANTEES}::test_event_acknowledged_by_the_host_survives_kill_9_before_it_is_processed",
            "tests/proofs/test_chaos.py")),
    Mutant("bad input is never echoed", "workflow/inputs.py",
           '                f"key contains disallowed character {describe_character(character)} "',
           '                f"key contains disallowed character {character!r} "',
           ("tests/proofs/test_bad_input.py::test_rejected_input_is_never_echoed_verbatim",)),
    Mutant("the API matches its OpenAPI document", "workflow/responses.py",
           '    body: dict[str, Any] = {"error": str(exc)}',
           '    body: dict[str, Any] = {"error": str(exc), "status": int(code)}',
           ("tests/proofs/test_openapi_conformance.py",)),
    Mutant("the payload arrives as posted", "workflow/orchestrator.py",
           "        return json.loads(payload)",
           "        return payload",
           ("tests/test_orchestrator.py::test_payload_from_python_client_arrives_as_posted",)),
    Mutant("timeouts over 6 days are split", "devhost/core/episode.py",
           "                 '\"maximumShortTimerDuration\":\"6.00:00:00\",'",
           "                 '\"maximumShortTimerDuration\":\"12.00:00:00\",'",
           ("tests/devhost/core/test_engine.py::test_ten_day_timer_is_split_into_3_day_timers_and_fires_only_after_10_days",)),
    Mutant("replay is deterministic (recorded runs)", "workflow/orchestrator.py",
           "        else context.current_utc_datetime + timedelta(seconds=request.timeout_seconds)",
           "        else __import__('datetime').datetime.utcnow() + "
           "timedelta(seconds=request.timeout_seconds)",
           ("tests/template/test_template_golden_histories.py::test_golden_history_replays_to_recorded_response",)),
    Mutant("the app is a valid v2 app", "function_app.py",
           "async def check(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:",
           "async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:",
           ("tests/test_static_check.py",)),
    Mutant("fast path off installs nothing", "devhost/host/fastpath.py",
           '    return os.environ.get("DEVHOST_FASTPATH", "1").strip().lower() not in ("0", "false", "no")',
           "    return True",
           ("tests/devhost/host/test_fastpath.py::test_fast_path_off_installs_nothing_and_sets_nothing",)),
    Mutant("the HTTP contract holds end to end", "workflow/responses.py",
           '        {"Location": check_location(key), "Retry-After": str(RETRY_AFTER_SECONDS)},',
           '        {"Retry-After": str(RETRY_AFTER_SECONDS)},',
           ("tests/e2e/test_app_contract.py::test_start_check_stop_lifecycle_follows_the_contract",)),
    Mutant("workers refuse an episode from a changed history", "devhost/core/store.py",
           '                raise StaleHistory(f"{iid}: the history changed while the episode ran")',
           "                pass",
           ("tests/devhost/core/test_store.py::test_shared_store_refuses_an_episode_computed_from_a_history_another_worker_changed",)),
    Mutant("the WAL stays bounded", "devhost/core/store.py",
           '        self.db.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")',
           '        self.db.execute("PRAGMA wal_autocheckpoint=0")',
           ("tests/devhost/core/test_store.py::test_wal_stays_bounded_under_writes_that_never_pause",)),
    Mutant("a polling function does not starve devhost", "devhost/host/fastpath.py",
           "        await asyncio.sleep(0)",
           "        pass",
           ("tests/devhost/host/test_fastpath_yields.py::test_a_function_polling_get_status_lets_its_orchestration_run",)),
    Mutant("the management API answers as the host's", "devhost/tools/management.py",
           '            payload["reason"] = terminate_output(reason)',
           '            payload["reason"] = reason',
           ("tests/devhost/tools/test_management.py::test_terminate_reason_that_is_json_becomes_the_output_as_that_json",)),
    Mutant("hostile JSON through the management API is a 400", "devhost/core/payloads.py",
           "_STRICT = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)",
           "_STRICT = json.JSONDecoder()",
           ("tests/devhost/tools/test_management.py::test_non_finite_numbers_in_a_start_input_or_event_are_refused_with_400",)),
    Mutant("check of a status that is not JSON is a 502", "workflow/responses.py",
           "    except ValueError:",
           "    except TypeError:",
           ("tests/test_function_app.py::test_check_of_a_status_that_is_not_json_is_a_502_naming_the_key",)),
    Mutant("a stop payload past 64 KiB is a 413 before it is parsed", "workflow/inputs.py",
           "    if len(body) > MAX_PAYLOAD_BYTES:",
           "    if len(body) > MAX_PAYLOAD_BYTES * 1024:",
           ("tests/test_inputs.py::test_a_payload_past_the_size_limit_is_refused_before_it_is_parsed",)),
    Mutant("a body past the limit is 413, one at it is delivered", "devhost/host/server.py",
           "        if declared is not None and declared > self.max_body:",
           "        if declared is not None and declared >= self.max_body:",
           ("tests/devhost/host/test_request_limit.py::test_a_body_at_the_limit_is_accepted_and_delivered_whole",)),
    Mutant("a huge transaction does not leave the WAL past its limit", "devhost/core/store.py",
           '        busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()',
           '        busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()',
           ("tests/devhost/core/test_store_wal_limit.py",)),
    Mutant("workers die with the supervisor", "devhost/host/supervisor.py",
           "        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)",
           "        pass",
           ("tests/devhost/host/test_supervisor.py::test_sigkill_of_the_supervisor_alone_takes_its_workers_down",)),
    Mutant("each worker runs on its own CPU", "devhost/host/supervisor.py",
           "                    affinity.pin(config.worker_cpus[index])",
           "                    affinity.pin(config.worker_cpus[0])",
           ("tests/devhost/host/test_affinity.py::test_each_worker_and_every_thread_it_starts_run_on_their_own_cpu",)),
    Mutant("a queued stop ends the run (real devhost, Azurite)", "devhost/triggers/queues.py",
           "            body = decode(message.content, self.options.message_encoding)",
           '            body = decode(message.content, "none")',
           ("tests/e2e/test_queue_and_retention.py::test_a_queued_stop_ends_the_run_with_its_payload",)),
    Mutant("a queued stop follows the HTTP stop's rules", "workflow/queue_stop.py",
           '        payload = parse_payload(json.dumps(document.get("event")).encode("utf-8"))',
           '        payload = document.get("event")',
           ("tests/test_queue_stop.py",)),
    Mutant("retention purges exactly the old finished runs", "workflow/retention.py",
           "        window_end = min(max(created) + timedelta(seconds=1), cutoff - timedelta(microseconds=1))",
           "        window_end = max(created) + timedelta(seconds=1)",
           ("tests/test_retention.py",)),
    Mutant("a timer missed while devhost was down runs at startup", "devhost/triggers/timers.py",
           "    return due is not None and due <= now",
           "    return due is not None and due < now",
           ("tests/devhost/triggers/test_timers.py",)),
    Mutant("the queue trigger decodes as messageEncoding says", "devhost/triggers/queues.py",
           '        return base64.b64decode(text.encode("ascii"), validate=True)',
           '        return base64.b64decode(text.encode("ascii"))',
           ("tests/devhost/triggers/test_queues.py::test_text_that_is_not_base64_is_refused_when_the_encoding_is_base64",)),
    Mutant("continue_as_new loses no event", "devhost/core/episode.py",
           '               if m.kind == "event" and delivered_at[m.msg_id] > finished_at}',
           '               if m.kind == "event" and delivered_at[m.msg_id] < finished_at}',
           ("tests/devhost/core/test_episode.py::test_event_raised_during_continue_as_new_generations_is_delivered",
            "tests/devhost/core/test_episode.py::test_event_landing_with_the_timer_that_continued_as_new_reaches_the_next_generation",
            "tests/devhost/core/test_episode.py::test_events_a_generation_had_buffered_die_with_it")),
    Mutant("control messages outlive a continue_as_new", "devhost/core/store.py",
           '                db.execute("DELETE FROM inbox WHERE instance_id=? AND execution_id=?",',
           "                db.execute(\"DELETE FROM inbox WHERE instance_id=? AND (execution_id=? "
           "OR kind IN ('terminate', 'suspend'))\",",
           ("tests/devhost/core/test_episode.py::test_control_committed_by_the_other_worker_during_continue_as_new_is_kept",)),
    Mutant("an episode commits only from the status it read", "devhost/core/episode.py",
           "                         len(snap.history.texts), expected_status=inst.status, consumed=consumed)",
           "                         len(snap.history.texts), consumed=consumed)",
           ("tests/devhost/core/test_episode.py::test_suspend_committed_by_the_other_worker_before_the_first_episode_is_kept",)),
    Mutant("one sub-orchestration id, two creators", "devhost/core/store.py",
           "                if row is not None and RuntimeStatus(row[0]) not in start.replaceable:",
           "                if row is not None and RuntimeStatus(row[0]) == RuntimeStatus.RUNNING:",
           ("tests/devhost/core/test_episode.py::test_two_parents_racing_for_one_child_id_one_gets_it_the_other_already_exists",
            "tests/devhost/core/test_episode.py::test_sub_orchestration_never_replaces_a_client_started_running_instance")),
    Mutant("non-determinism fails the instance", "devhost/core/episode.py",
           "        missing = sorted(t for t in self.facts.scheduled if t >= self.seq)",
           "        missing = sorted(t for t in self.facts.scheduled if t > self.seq)",
           ("tests/devhost/core/test_episode.py::test_replay_that_no_longer_schedules_a_recorded_task_fails_as_non_deterministic",)),
    Mutant("a raised event goes to the newest waiter of its name", "devhost/core/episode.py",
           "                waiters.pop().done(at)",
           "                waiters.pop(0).done(at)",
           ("tests/devhost/core/test_episode_rules.py::test_raised_event_goes_to_the_newest_waiter_of_its_name",)),
    Mutant("retried calls take ids in event order", "devhost/core/episode.py",
           "        due = [self.facts.result_at[t] for t in self._retrying if t in self.facts.result_at]",
           "        due = []",
           ("tests/devhost/core/test_episode_rules.py::test_retried_calls_inside_task_all_take_ids_in_event_order",)),
    Mutant("the last failed attempt surfaces at once", "devhost/core/episode.py",
           "            fire_at = self.at",
           "            fire_at = self.at + retry_delay(options, node.attempt, node.first_at, self.at)",
           ("tests/devhost/core/test_episode_rules.py::test_the_last_failed_attempt_surfaces_without_another_retry_interval",)),
    Mutant("a terminated child fails its parent's call", "devhost/core/episode.py",
           "    commit.messages = _parent_notice(inst, at, failed=True, reason=reason if isinstance(",
           "    commit.messages = [] and _parent_notice(inst, at, failed=True, reason=reason if isinstance(",
           ("tests/devhost/core/test_episode_rules.py::test_terminating_a_sub_orchestration_fails_the_parents_call_with_the_reason",)),
    Mutant("a child never takes its parent's id", "devhost/core/episode.py",
           "               for own in (inst.instance_id, inst.parent_instance_id) if own is not None):",
           "               for own in (inst.parent_instance_id,) if own is not None):",
           ("tests/devhost/core/test_episode_rules.py::test_a_sub_orchestration_with_the_parents_own_id_fails_the_parent_and_keeps_its_history",)),
    Mutant("custom status is capped at 16 KB", "devhost/core/episode.py",
           "    if size_kb <= MAX_CUSTOM_STATUS_KB:",
           "    if size_kb <= MAX_CUSTOM_STATUS_KB * 1024:",
           ("tests/devhost/core/test_episode_rules.py::test_custom_status_over_16_kb_of_utf16_fails_the_orchestration_as_the_host_does",)),
    Mutant("an orchestration ends only once every action is awaited", "devhost/core/episode.py",
           "    if done_at is None and state is not None:",
           "    if done_at is None and state is None:",
           ("tests/fuzz/test_fuzz.py::test_a_caught_task_all_failure_keeps_the_instance_running_while_a_sibling_is_pending",)),
    Mutant("the last episode's actions still run", "devhost/core/episode.py",
           "        if not walked:",
           "        if True:",
           ("tests/fuzz/test_fuzz.py::test_what_the_last_episode_schedules_still_runs",)),
    Mutant("a child created as the orchestration continues as new starts", "devhost/core/episode.py",
           "    commit.new_work, commit.cancel_timers = [], []",
           "    commit.new_work, commit.cancel_timers, commit.children = [], [], []",
           ("tests/fuzz/test_fuzz.py::test_a_child_created_in_the_episode_that_continues_as_new_still_starts",)),
    Mutant("timers already due arrive in creation order", "devhost/core/episode.py",
           "                    max(fire_at, self.at), self.inst.execution_id, task_id))",
           "                    fire_at, self.inst.execution_id, task_id))",
           ("tests/fuzz/test_fuzz.py::test_timers_already_due_arrive_in_the_order_they_were_created",)),
    Mutant("every pending timer survives a restart", "devhost/core/store.py",
           '        return list(self.db.execute("SELECT DISTINCT instance_id, visible_at FROM inbox"))',
           '        return list(self.db.execute("SELECT instance_id, MIN(visible_at) FROM inbox '
           'GROUP BY instance_id"))',
           ("tests/fuzz/test_fuzz.py::test_a_restart_keeps_every_pending_timer_of_an_instance",)),
    Mutant("a failing episode is retried a bounded number of times", "devhost/core/engine.py",
           "        if attempts < MAX_ATTEMPTS:",
           "        if attempts <= MAX_ATTEMPTS:",
           ("tests/devhost/core/test_episode.py::test_an_episode_that_keeps_failing_fails_the_instance_after_bounded_tries",)),
    Mutant("orchestrator code and replay stay off the HTTP path", "devhost/core/engine.py",
           "        return self._orchestrators.submit(run, self.app)",
           "        run(self.app); ran = concurrent.futures.Future(); ran.set_result(None); return ran",
           ("tests/devhost/core/test_episode.py::test_the_loop_keeps_serving_requests_while_a_long_history_replays",
            "tests/devhost/app/test_invocations.py::test_a_sleeping_orchestrator_leaves_requests_and_other_orchestrations_answered")),
    Mutant("a stuck orchestrator is aborted at functionTimeout and retried", "devhost/core/engine.py",
           "            job.timers.append(loop.call_later(self._function_timeout, self._timed_out, job))",
           "            pass",
           ("tests/devhost/app/test_invocations.py::test_an_orchestrator_that_never_yields_is_aborted_at_function_timeout_and_retried",)),
    Mutant("generations take turns with everything else", "devhost/core/engine.py",
           "                await asyncio.sleep(0)",
           "                pass",
           ("tests/devhost/core/test_fairness.py::test_an_eternal_continue_as_new_loop_leaves_status_reads_and_terminate_prompt[one-worker]",)),
    Mutant("raises to a Suspended instance cost the same each", "devhost/core/engine.py",
           "                if inst.status == RuntimeStatus.SUSPENDED:",
           "                if False:",
           ("tests/devhost/core/test_engine.py::test_raises_to_a_suspended_instance_cost_the_same_each_and_all_arrive_in_order",)),
    Mutant("SIGTERM lets running work finish", "devhost/host/assembly.py",
           "            waits.append(self.engine.close(self.config.grace))",
           "            waits.append(self.engine.close())",
           ("tests/devhost/host/test_shutdown.py::test_sigterm_lets_a_running_activity_finish_and_it_is_not_run_again",)),
    Mutant("host-style logs at host.json levels", "devhost/app/hostlog.py",
           "                if len(name) >= best:",
           "                if best < 0:",
           ("tests/devhost/app/test_hostlog.py::test_host_json_levels_hide_lines_by_category_and_show_pure_replays_at_debug",)),
    Mutant("queue and timer functions log and drain", "devhost/triggers/queues.py",
           "                await asyncio.wait(list(self._inflight))  # stopping: let them finish",
           "                pass",
           ("tests/devhost/triggers/test_queues.py::test_stop_fetches_nothing_new_and_lets_a_running_message_finish_and_be_deleted",)),
    Mutant("devhost.testing visits every due moment", "devhost/testing/__init__.py",
           "            self.clock.now = max(self.clock.now, min(due))",
           "            self.clock.now = max(self.clock.now, target)",
           ("tests/devhost/test_testing.py::test_an_approval_reminds_every_day_and_records_the_decision",)),
]


def copy_repository(into: Path) -> None:
    """The tracked files (as they are in the working tree), without the virtualenv."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


class NoLongerApplies(Exception):
    """The mutant's line is not in its file exactly once: the code it mutates has changed."""


def apply(mutant: Mutant, root: Path) -> None:
    """Replace the mutant's line, found by its content (leading spaces aside), keeping the
    indentation it has now.

    Raises:
        NoLongerApplies: the line is absent or ambiguous (the message says which and where).
    """
    path = root / mutant.path
    if not path.is_file():
        raise NoLongerApplies(f"{mutant.path} no longer exists")
    lines = path.read_text().split("\n")
    wanted = mutant.original.strip()
    hits = [i for i, line in enumerate(lines) if line.strip() == wanted]
    if len(hits) != 1:
        raise NoLongerApplies(f"{mutant.path}: the line is there {len(hits)} times, not once: "
                              f"{wanted}")
    line = lines[hits[0]]
    indent = line[:len(line) - len(line.lstrip())]
    lines[hits[0]] = indent + mutant.mutated.strip()
    path.write_text("\n".join(lines))


def kill_processes_under(root: Path) -> int:
    """SIGKILL every process whose command line names ``root`` (Linux ``/proc``); how many."""
    marker = str(root).encode()
    killed = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
                killed += 1
        except (OSError, ProcessLookupError):
            continue  # gone meanwhile, or not ours to read
    return killed


def run(mutant: Mutant, timeout: float, mutate: bool = True) -> tuple[str, float, str]:
    """``killed`` (the tests failed), ``SURVIVED`` (they passed), ``NO LONGER APPLIES`` (its line
    is gone) or ``error`` (no verdict), the seconds it took, and pytest's line for the first
    failing test (or why the mutant no longer applies)."""
    started = time.monotonic()
    detail = ""
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        root = Path(tmp)
        copy_repository(root)
        if mutate:
            try:
                apply(mutant, root)
            except NoLongerApplies as exc:
                return "NO LONGER APPLIES", time.monotonic() - started, str(exc)
        try:
            result = subprocess.run(
                [PYTHON, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                 "--timeout=300", *mutant.tests],
                cwd=root, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return "killed (timeout)", time.monotonic() - started, detail
        finally:
            # A mutant can break cleanup itself (e.g. workers that no longer die with their
            # supervisor): kill whatever still runs from this copy.
            kill_processes_under(root)
    # pytest: 0 all passed, 1 some failed; anything else is a usage/collection problem.
    verdict = {0: "SURVIVED", 1: "killed"}.get(result.returncode, f"error (pytest {result.returncode})")
    if verdict.startswith("error"):
        print(result.stdout[-2000:], result.stderr[-2000:], sep="\n", file=sys.stderr)
    elif verdict == "killed":
        # Name the test that failed, so a reader sees the kill came from the intended test and
        # not from an unrelated failure (a fixture that cannot start devhost, a missing tool);
        # ``--baseline`` checks that the named tests pass without the change.
        first = next((line for line in result.stdout.splitlines()
                      if re.match(r"(FAILED|ERROR) \S+\.py", line)), "")
        detail = first[:200]
    return verdict, time.monotonic() - started, detail


def table() -> str:
    rows = ["| guarantee | one-line change | caught by |", "|---|---|---|"]
    for m in MUTANTS:
        change = f"`{m.path}`: `{m.original.strip()}` → `{m.mutated.strip()}`".replace("|", "\\|")
        rows.append(f"| {m.guarantee} | {change} | " + ", ".join(f"`{t}`" for t in m.tests) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-k", default="", help="only mutants whose guarantee or file contains this")
    parser.add_argument("--table", action="store_true", help="print the table of docs/mutation-testing.md and exit")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant")
    parser.add_argument("--baseline", action="store_true",
                        help="run the named tests without the mutations: each must pass")
    args = parser.parse_args(argv)
    if args.table:
        print(table())
        return 0
    chosen = [m for m in MUTANTS if args.k in m.guarantee or args.k in m.path]
    if args.baseline:
        failing = []
        for mutant in chosen:
            verdict, seconds, detail = run(mutant, args.timeout, mutate=False)
            ok = verdict == "SURVIVED"  # unmutated, the tests passed
            print(f"{'passes' if ok else 'FAILS ' + verdict:>18}  {seconds:6.1f} s  "
                  f"{mutant.guarantee}", flush=True)
            if not ok:
                failing.append(mutant)
                print(f"{'':>30}{detail}", flush=True)
        return 1 if failing else 0
    began = time.monotonic()
    results = []
    for mutant in chosen:
        verdict, seconds, detail = run(mutant, args.timeout)
        results.append((mutant, verdict, seconds))
        print(f"{verdict:>18}  {seconds:6.1f} s  {mutant.guarantee}", flush=True)
        if detail:
            print(f"{'':>30}{detail}", flush=True)
    survived = [m for m, verdict, _ in results if not verdict.startswith("killed")]
    print(f"\n{len(results) - len(survived)} of {len(results)} mutants killed in "
          f"{time.monotonic() - began:.0f} s")
    for m, verdict, _ in results:
        if verdict == "NO LONGER APPLIES":
            print(f"NO LONGER APPLIES: {m.guarantee} ({m.path}): its line is gone; point the "
                  f"mutant at the code that now keeps this guarantee: {m.original.strip()}")
        elif not verdict.startswith("killed"):
            print(f"NOT KILLED: {m.guarantee} ({m.path})")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())
