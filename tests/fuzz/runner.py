"""Runs fuzz cases on devhost (in-process, virtual time) and compares them with the reference.

One case (:mod:`tests.fuzz.generator`) runs on one or two engines sharing one SQLite file
(``tests/devhost/harness.py``), on a fake clock that jumps from one due instant to the next: the
schedule's actions, the activities' virtual sleeps and the inbox's due messages. A crash drops
every engine and store at once after a drawn number of loop turns (so an episode computed but
not committed is lost, and activities cut mid-way run again), then reopens them and recovers.

Checks per case (:func:`run_case` returns the list of problems, empty when it passes):
- the root's final runtime status, output and custom status equal the reference's;
- every activity call's result is committed at most once per execution (history), every
  execution of the activity is counted (at-least-once: ``re-executions`` in the stats);
- determinism: every episode of each instance's last execution, replayed through the real SDK
  from the history as finally stored, gives the actions, output and custom status the episode
  gave when it ran;
- nothing acknowledged is lost: at the end no message is left due for a live, unsuspended
  instance;
- no episode holds the loop longer than ``EPISODE_BOUND`` seconds.

Command line (what ``make fuzz`` runs)::

    python -m tests.fuzz.runner [--programs N] [--seed S] [--workers 1|2] [--vocab known|all]
    python -m tests.fuzz.runner --case '<json>'      # replays one case (a shrunk failure)
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import heapq
import importlib.util
import itertools
import json
import logging
import os
import random
import sys
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import Any, Callable

import azure.functions as func

from devhost.app.loader import index_app
from devhost.app.status import TERMINAL
from devhost.core import episode
from devhost.core.store import lock_database
from tests.devhost.harness import ORIGIN, FakeClock, Harness
from tests.fuzz import generator, reference

T0 = 1_748_779_200.0  # 2025-06-01T12:00:00Z
ROOT = "fz"
#: No episode may hold the event loop longer than this (s); generous, the machine is shared.
EPISODE_BOUND = 2.0
#: Virtual time after which a case stops (what is still waiting stays Running on both sides).
HORIZON = 40 * 86400.0
APP_DIR = Path(__file__).resolve().parent / "app"


def _load_app() -> Any:
    spec = importlib.util.spec_from_file_location("fuzz_function_app", APP_DIR / "function_app.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_function_app"] = module
    spec.loader.exec_module(module)
    return module


APP = _load_app()
LOADED = index_app(APP.app, str(APP_DIR),
                   json.loads((APP_DIR / "host.json").read_text()))


class Episodes:
    """Wraps ``devhost.core.episode`` while a case runs: times every episode and records what the
    SDK answered in each (for the determinism check)."""

    def __init__(self) -> None:
        self.longest = 0.0
        #: (instance, execution id, history events given, SDK state) per orchestrator call.
        self.calls: list[tuple[str, str, int, dict[str, Any] | None]] = []
        self._compute, self._invoke = episode.compute, episode._invoke

    def __enter__(self) -> Episodes:
        compute, invoke = self._compute, self._invoke

        def timed(app: Any, snap: episode.Snapshot) -> episode.Outcome:
            started = time.perf_counter()
            try:
                return compute(app, snap)
            finally:
                self.longest = max(self.longest, time.perf_counter() - started)

        def recorded(app: Any, inst: Any, request: str) -> Any:
            result = invoke(app, inst, request)
            given = len(json.loads(request)["history"])
            self.calls.append((inst.instance_id, inst.execution_id, given, result[0]))
            return result

        episode.compute, episode._invoke = timed, recorded
        return self

    def __exit__(self, *exc: Any) -> None:
        episode.compute, episode._invoke = self._compute, self._invoke


class VirtualSleeps:
    """The activity's ``SLEEP``: an attempt (call key + attempt number) finishes ``seconds``
    after it first started, also when it is run again after a crash (the work it stands for
    was already under way)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.deadlines: dict[str, float] = {}
        self.waiting: list[tuple[float, int, asyncio.Future]] = []
        self._seq = itertools.count()

    async def sleep(self, seconds: float, token: str | None = None) -> None:
        key = token or f"anon{next(self._seq)}"
        due = self.deadlines.setdefault(key, self.clock.now + seconds)
        if due <= self.clock.now:
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiting, (due, next(self._seq), future))
        await future

    def next_due(self) -> float | None:
        while self.waiting and self.waiting[0][2].done():
            heapq.heappop(self.waiting)  # cancelled by a crash
        return self.waiting[0][0] if self.waiting else None

    def release(self) -> None:
        while self.waiting and self.waiting[0][0] <= self.clock.now:
            _, _, future = heapq.heappop(self.waiting)
            if not future.done():
                future.set_result(None)


class Devhost:
    """One or two engines (workers) on one database file."""

    def __init__(self, path: Path, clock: FakeClock, workers: int) -> None:
        self.path, self.clock, self.workers = path, clock, workers
        self.lock = lock_database(str(path)) if workers > 1 else None
        self.hs = [Harness(path, clock, LOADED, shared=workers > 1) for _ in range(workers)]

    async def settle(self) -> None:
        """Run the loop until no engine has an episode or drain pending (virtual time frozen)."""
        for _ in range(10_000):
            for h in self.hs:
                h.engine.poll()
            for _ in range(5):
                await asyncio.sleep(0)
            if not any(h.engine._ready or h.engine._drain_scheduled for h in self.hs):
                for _ in range(3):
                    await asyncio.sleep(0)
                if not any(h.engine._ready or h.engine._drain_scheduled for h in self.hs):
                    return
        raise RuntimeError("devhost never settled")

    async def crash(self, turns: int) -> None:
        """kill -9 of the whole devhost after ``turns`` loop turns: nothing more is committed,
        running activities and drains are dropped; then a restart on the same file."""
        for _ in range(turns):
            await asyncio.sleep(0)
        for h in self.hs:
            await h.engine.close()  # cancels drains and activities; commits nothing more
            h.store.close()
        shared = self.workers > 1
        self.hs = [Harness(self.path, self.clock, LOADED, shared=shared)
                   for _ in range(self.workers)]
        self.hs[0].engine.recover()  # worker 0 recovers (devhost.host.supervisor)
        await self.settle()

    def next_due(self) -> float | None:
        rows = self.hs[0].store.wake_times()
        dues = [at for _, at in rows if at > self.clock.now]
        return min(dues) if dues else None

    def request(self, worker: int, method: str, path: str, body: Any = None,
                query: dict[str, str] | None = None) -> int:
        h = self.hs[worker % len(self.hs)]
        data = b"" if body is None else json.dumps(body).encode()
        reply = h.api.handle(method, path, query or {}, {"Content-Type": "application/json"},
                             data, ORIGIN)
        return reply.status

    async def close(self) -> None:
        for h in self.hs:
            await h.close()
        if self.lock is not None:
            self.lock.close()


def _act(dh: Devhost, entry: list[Any], worker: int) -> None:
    at, verb, *args = entry
    if verb == "raise":
        target = args[2] if len(args) > 2 else ROOT
        dh.request(worker, "POST", f"/instances/{target}/raiseEvent/{args[0]}", args[1])
    else:
        target = args[0] if args else ROOT
        dh.request(worker, "POST", f"/instances/{target}/{verb}", None,
                   {"reason": f"fuzz {verb} at {at}"})


async def _run_devhost(case: dict[str, Any], directory: Path, stats: dict[str, int]
                       ) -> tuple[dict[str, Any], Devhost, Episodes, list[str]]:
    clock = FakeClock(T0)
    sleeps = VirtualSleeps(clock)
    APP.ATTEMPTS.clear()
    APP.EXECUTIONS.clear()
    APP.SLEEP[:] = [sleeps.sleep]
    rng = random.Random(case["seed"])
    problems: list[str] = []
    dh = Devhost(directory / "fuzz.sqlite3", clock, case["workers"])
    with Episodes() as episodes:
        code = dh.request(0, "POST", f"/orchestrators/fuzz/{ROOT}",
                          json.dumps({"p": case["prog"], "g": 0, "acc": []}))
        assert code == 202, code
        await dh.settle()
        actions = [(e[0], 0, e) for e in case["sched"]] + \
            [(c, 1, None) for c in case.get("crashes", [])]
        actions.sort(key=lambda a: (a[0], a[1]))
        while True:
            candidates = [T0 + a[0] for a in actions[:1]]
            for due in (sleeps.next_due(), dh.next_due()):
                if due is not None:
                    candidates.append(due)
            if not candidates:
                break
            nxt = min(candidates)
            if nxt > T0 + HORIZON:
                break
            clock.now = max(clock.now, nxt)
            sleeps.release()
            while actions and T0 + actions[0][0] <= clock.now:
                _, kind, entry = actions.pop(0)
                if kind == 0:
                    _act(dh, entry, rng.randrange(case["workers"]))
                else:
                    stats["crashes"] += 1
                    await dh.crash(rng.randrange(4))
            await dh.settle()
        status = dh.hs[0].api.handle("GET", f"/instances/{ROOT}", {}, {}, b"", ORIGIN)
        body = json.loads(status.body)
        # Nothing acknowledged is lost: no message is left due for a live, running instance.
        for iid, at in dh.hs[0].store.wake_times():
            inst = dh.hs[0].store.get(iid)
            if at <= clock.now and inst is not None and inst.status not in TERMINAL and \
                    inst.status.value != "Suspended":
                problems.append(f"a message due at {at - T0:.3f} s for {iid} "
                                f"({inst.status.value}) was never delivered")
    stats["executions"] += len(APP.EXECUTIONS)
    stats["re-executions"] += len(APP.EXECUTIONS) - sum(APP.ATTEMPTS.values())
    return body, dh, episodes, problems


def _check_history(dh: Devhost, episodes: Episodes) -> list[str]:
    """At most one result per task id; every episode replays to what it answered."""
    problems: list[str] = []
    store = dh.hs[0].store
    by_instance: dict[str, list[tuple[str, int, dict[str, Any] | None]]] = {}
    for iid, execution, given, state in episodes.calls:
        by_instance.setdefault(iid, []).append((execution, given, state))
    for iid, calls in by_instance.items():
        inst = store.get(iid)
        if inst is None:
            continue
        texts = store.history(iid)
        events = [json.loads(t) for t in texts]
        seen: set[int] = set()
        for ev in events:
            if ev["EventType"] in (5, 6):  # TaskCompleted, TaskFailed
                if ev["TaskScheduledId"] in seen:
                    problems.append(f"{iid}: task {ev['TaskScheduledId']} has two results")
                seen.add(ev["TaskScheduledId"])
        orchestrator = LOADED.orchestrators[inst.name]
        for execution, given, state in calls:
            if execution != inst.execution_id or state is None or given > len(texts):
                continue
            request = "".join((
                '{"history":[', ",".join(texts[:given]), '],"input":',
                inst.input if inst.input is not None else "null",
                ',"instanceId":', json.dumps(iid), ',"isReplaying":true,"parentInstanceId":',
                json.dumps(inst.parent_instance_id), episode._CONTEXT_TAIL))
            try:
                again = json.loads(orchestrator.user_function(
                    context=func.OrchestrationContext(request)))
            except Exception as exc:  # the orchestrator failed: the error carries its state
                again = _error_state(exc)
            for key in ("actions", "isDone", "output", "customStatus"):
                if (again or {}).get(key) != state.get(key):
                    problems.append(
                        f"{iid}: the episode given {given} events answered {key}="
                        f"{json.dumps(state.get(key))[:300]}, its stored history replays to "
                        f"{json.dumps((again or {}).get(key))[:300]} (non-deterministic)")
                    break
    return problems


def _error_state(exc: Exception) -> dict[str, Any] | None:
    _, sep, tail = str(exc).partition("\n\n$OutOfProcData$:")
    return json.loads(tail) if sep else None


def compare(case: dict[str, Any], expected: reference.Outcome, body: dict[str, Any]
            ) -> list[str]:
    """Where devhost's final status departs from the reference's."""
    problems = []
    got_status, got_output = body.get("runtimeStatus"), body.get("output")
    if got_status == "Failed":
        got_output = APP.marker(got_output or "")
    if got_status != expected.status:
        problems.append(f"runtimeStatus: expected {expected.status}, got {got_status}")
    elif got_output != expected.output:
        problems.append(f"output: expected {json.dumps(expected.output)[:2000]}, "
                        f"got {json.dumps(got_output)[:2000]}")
    if body.get("customStatus") != expected.custom_status:
        problems.append(f"customStatus: expected {json.dumps(expected.custom_status)[:200]}, "
                        f"got {json.dumps(body.get('customStatus'))[:200]}")
    return problems


def new_stats() -> dict[str, int]:
    return {"programs": 0, "ambiguous": 0, "unmodelled": 0, "crashes": 0, "executions": 0,
            "re-executions": 0, "episodes": 0}


def run_case(case: dict[str, Any], stats: dict[str, int] | None = None) -> list[str]:
    """Run ``case`` on devhost and the reference; the problems found (empty: it passes)."""
    stats = new_stats() if stats is None else stats
    expected = reference.interpret(case, ROOT, HORIZON)
    if expected.ambiguous:
        stats["unmodelled" if expected.ambiguous.startswith("unmodelled") else "ambiguous"] += 1
        return []
    stats["programs"] += 1

    async def go() -> list[str]:
        with tempfile.TemporaryDirectory() as directory:
            body, dh, episodes, problems = await _run_devhost(case, Path(directory), stats)
            try:
                problems += compare(case, expected, body)
                # At least once: every result the reference's run used was produced by a
                # completed execution of the activity (more are allowed: re-runs after a crash).
                for key, used in expected.results.items():
                    if ":" in key:
                        continue  # a child whose id devhost generates (the reference's differs)
                    done = APP.ATTEMPTS.get(key, 0)
                    if done < used:
                        problems.append(f"activity {key}: {used} result(s) used, only {done} "
                                        f"execution(s) completed")
                problems += _check_history(dh, episodes)
                stats["episodes"] += len(episodes.calls)
                if episodes.longest > EPISODE_BOUND:
                    problems.append(f"an episode held the loop {episodes.longest:.2f} s")
            finally:
                await dh.close()
        return problems

    return asyncio.run(go())


# ---- real processes killed with SIGKILL ---------------------------------------------------------

def _http(base: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}/runtime/webhooks/durabletask{path}", data=data,
                                     method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            text = reply.read()
            return reply.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        text = exc.read()
        return exc.code, json.loads(text) if text else None


def run_case_process(case: dict[str, Any], directory: Path, deadline: float = 30.0
                     ) -> list[str]:
    """Run a :func:`tests.fuzz.generator.generate_realtime` case on ``python -m devhost``
    (wall-clock time), SIGKILL it at the case's crash instants and start it again on the same
    database; then compare the final status with the reference's."""
    from devhost.host.process import DevhostProcess  # only this mode starts processes

    expected = reference.interpret(case, ROOT, HORIZON)
    host = DevhostProcess(APP_DIR, directory / "fuzz.sqlite3", workers=case["workers"])
    host.start()
    try:
        started = time.monotonic()
        code, _ = _http(host.url, "POST", f"/orchestrators/fuzz/{ROOT}",
                        json.dumps({"p": case["prog"], "g": 0, "acc": []}))
        if code != 202:
            return [f"start answered {code}"]
        for _, _verb, name, payload in case["sched"]:
            code, _ = _http(host.url, "POST", f"/instances/{ROOT}/raiseEvent/{name}", payload)
            if code not in (202, 410):  # 410: it already ended (the reference drops it too)
                return [f"raise {name} answered {code}"]
        for at in case["crashes"]:
            time.sleep(max(0.0, started + at - time.monotonic()))
            host.kill()
            host.start()
        body: dict[str, Any] = {}
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            code, body = _http(host.url, "GET", f"/instances/{ROOT}")
            if body and body.get("runtimeStatus") in ("Completed", "Failed", "Terminated"):
                break
            if body and body.get("runtimeStatus") == expected.status == "Running" and \
                    time.monotonic() > started + 6.0:
                break  # it waits for what never comes, as the reference says
            time.sleep(0.1)
    finally:
        host.stop()
    return compare(case, expected, body)


# ---- shrinking ---------------------------------------------------------------------------------

def _variants(case: dict[str, Any]):
    """Smaller cases: schedule entries and crashes dropped, statements dropped, composites
    replaced by one child, generations dropped, activities without retry or duration."""
    for i in range(len(case["sched"])):
        c = copy.deepcopy(case)
        del c["sched"][i]
        yield c
    for i in range(len(case.get("crashes", []))):
        c = copy.deepcopy(case)
        del c["crashes"][i]
        yield c
    if case["workers"] > 1:
        yield {**copy.deepcopy(case), "workers": 1}
    gens = case["prog"]["gens"]
    if len(gens) > 1:
        for g in range(len(gens)):
            c = copy.deepcopy(case)
            del c["prog"]["gens"][g]
            c["prog"]["gens"][-1] = [s for s in c["prog"]["gens"][-1] if s["t"] != "can"]
            yield c
    for path, x in _paths(case["prog"]):
        yield from _expr_variants(case, path, x)
    for g, body in enumerate(gens):
        for i in range(len(body)):
            if body[i]["t"] == "can":
                continue
            c = copy.deepcopy(case)
            del c["prog"]["gens"][g][i]
            yield c
            if body[i].get("catch") is False:
                c = copy.deepcopy(case)
                c["prog"]["gens"][g][i]["catch"] = True
                yield c


def _paths(prog: dict[str, Any]):
    def visit(x: dict[str, Any], path: tuple):
        yield path, x
        for j, c in enumerate(x.get("of", ())):
            yield from visit(c, path + ("of", j))
        if x["e"] == "sub":
            for g, body in enumerate(x["p"]["gens"]):
                for i, st in enumerate(body):
                    if st["t"] == "do":
                        yield from visit(st["x"], path + ("p", "gens", g, i, "x"))
    for g, body in enumerate(prog["gens"]):
        for i, st in enumerate(body):
            if st["t"] == "do":
                yield from visit(st["x"], ("gens", g, i, "x"))


def _set(case: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    c = copy.deepcopy(case)
    node = c["prog"]
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return c


def _expr_variants(case: dict[str, Any], path: tuple, x: dict[str, Any]):
    if x["e"] in ("any", "all"):
        for child in x["of"]:
            yield _set(case, path, copy.deepcopy(child))
        for j in range(len(x["of"])):
            if len(x["of"]) > 1:
                smaller = copy.deepcopy(x)
                del smaller["of"][j]
                yield _set(case, path, smaller)
    if x["e"] == "act":
        if x["r"]:
            yield _set(case, path, {**x, "r": None})
        if len(x["f"]) > 1:
            yield _set(case, path, {**x, "f": x["f"][:-1]})
        if x["d"] > 1:
            yield _set(case, path, {**x, "d": 1.0})


def shrink(case: dict[str, Any], fails: Callable[[dict[str, Any]], bool],
           budget: int = 300) -> dict[str, Any]:
    """The smallest variant of ``case`` (greedy, first improvement) that still ``fails``."""
    tries = 0
    improved = True
    while improved and tries < budget:
        improved = False
        for smaller in _variants(case):
            tries += 1
            if tries > budget:
                break
            if fails(smaller):
                case, improved = smaller, True
                break
    return case


def _kind(problem: str) -> str:
    """What a problem is about (``runtimeStatus``, ``output``, a lost message...), so shrinking
    keeps the failure it started from instead of drifting to another one."""
    head = problem.split(":", 1)[0]
    if head in ("runtimeStatus", "output", "customStatus"):
        return head
    return " ".join(problem.split()[-3:])  # "was never delivered", "(non-deterministic)", ...


def _fails_alike(kind: str) -> Callable[[dict[str, Any]], bool]:
    def fails(case: dict[str, Any]) -> bool:
        try:
            expected = reference.interpret(case, ROOT, HORIZON)
            return not expected.ambiguous and any(_kind(p) == kind for p in run_case(case))
        except Exception:
            return False
    return fails


def vocabulary(name: str) -> frozenset[str]:
    """``all`` draws every feature; ``known`` leaves out the known departures not yet fixed
    (:data:`tests.fuzz.generator.KNOWN`); or a comma-separated list of features to leave out."""
    features = frozenset(generator.FEATURES)
    if name == "all":
        return features
    if name == "known":
        return features - set(generator.KNOWN)
    return features - set(name.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.runner")
    parser.add_argument("--programs", type=int,
                        default=int(os.environ.get("FUZZ_PROGRAMS", "2000")))
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--workers", type=int, default=int(os.environ.get("FUZZ_WORKERS", "1")))
    parser.add_argument("--vocab", default=os.environ.get("FUZZ_VOCAB", "all"))
    parser.add_argument("--case", help="replay one case (JSON text or a file)")
    parser.add_argument("--no-shrink", action="store_true")
    parser.add_argument("--process", type=int, default=0, metavar="N",
                        help="instead: N real-process cases, each killed with SIGKILL 1-2 times")
    args = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # devhost's host-style log lines, thousands per run
    warnings.simplefilter("ignore")  # the SDK warns of every deferred (buffered) event
    if args.case:
        text = Path(args.case).read_text() if os.path.exists(args.case) else args.case
        case = json.loads(text)
        problems = run_case(case)
        print("\n".join(problems) or "passes")
        return 1 if problems else 0
    env_seed = os.environ.get("FUZZ_SEED") or None
    seed = args.seed if args.seed is not None else \
        int(env_seed) if env_seed else random.SystemRandom().randrange(1, 2**31)
    vocab = vocabulary(args.vocab)
    if args.process:
        return _main_process(args.process, seed, args.workers)
    print(f"fuzz: {args.programs} programs from FUZZ_SEED={seed}, {args.workers} worker(s), "
          f"vocabulary {args.vocab}", flush=True)
    stats = new_stats()
    started = time.perf_counter()
    failures = 0
    for i in range(args.programs):
        case = generator.generate(seed * 100_003 + i, vocab, args.workers)
        problems = run_case(case, stats)
        if problems:
            failures += 1
            print(f"\nFAIL program {i} (case seed {case['seed']}):\n  " + "\n  ".join(problems))
            if not args.no_shrink:
                small = shrink(case, _fails_alike(_kind(problems[0])))
                print("shrunk case, reproduce with:\n  .venv/bin/python -m tests.fuzz.runner "
                      f"--case '{json.dumps(small, separators=(',', ':'))}'")
                print("  " + "\n  ".join(run_case(small)))
            if failures >= int(os.environ.get("FUZZ_MAX_FAILURES", "3")):
                break
        if (i + 1) % 100 == 0:
            print(f"  {i + 1} programs, {time.perf_counter() - started:.1f} s", flush=True)
    elapsed = time.perf_counter() - started
    print(f"fuzz: {stats['programs']} programs compared ({stats['ambiguous']} ambiguous and "
          f"{stats['unmodelled']} unmodelled skipped), {stats['episodes']} episodes, "
          f"{stats['crashes']} crashes, "
          f"{stats['executions']} activity executions ({stats['re-executions']} cut by a crash "
          f"and run again), {failures} failing, in {elapsed:.1f} s (FUZZ_SEED={seed})")
    return 1 if failures else 0


def _main_process(programs: int, seed: int, workers: int) -> int:
    print(f"fuzz: {programs} real-process programs (SIGKILL) from FUZZ_SEED={seed}, "
          f"{workers} worker(s)", flush=True)
    started, failures, kills = time.perf_counter(), 0, 0
    for i in range(programs):
        case = generator.generate_realtime(seed * 100_003 + i, workers)
        kills += len(case["crashes"])
        with tempfile.TemporaryDirectory() as directory:
            problems = run_case_process(case, Path(directory))
        if problems:
            failures += 1
            print("FAIL real-process case:\n  " + "\n  ".join(problems) + "\n  case: "
                  + json.dumps(case, separators=(",", ":")), flush=True)
    print(f"fuzz: {programs} real-process programs, {kills} kill -9, {failures} failing, in "
          f"{time.perf_counter() - started:.1f} s (FUZZ_SEED={seed})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
