"""``python -m bench``: lifecycle throughput and latency of the app on devhost, against the HTTP
ceiling (a bare aiohttp hello world) and two peers (DBOS on SQLite, Microsoft's ``durabletask``
SDK on its in-memory backend), all measured in this run; plus status-read latency while
orchestrations replay long histories (:mod:`bench.replay`).

The devhost / DBOS ratio comes from interleaved rounds (:func:`measure_peer_rounds`): this
shared machine's speed drifts within minutes, and a peer measured minutes after devhost saw
another machine (the peer alone ranged from 147 to 290 lifecycles/s across days).

Prints a readable table, then one JSON object on the last line. ``--size smoke`` is the small
run CI can afford, ``--size tiny`` the one the test suite runs to prove the benchmark works;
``--size full`` is the published one (100,000 seeded instances).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import eternal, load, replay
from bench.seed import ORCHESTRATOR, seed, seed_key
from devhost.host.process import REPO, DevhostProcess, free_port

SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(hello=300, lifecycles=30, unloaded=10, small=20, large=200, checks=20,
                 scans=1, peer=20, replay_timers=50, replay_reads=30, replay_deadline=5.0,
                 peer_rounds=1),
    "smoke": dict(hello=4000, lifecycles=300, unloaded=40, small=100, large=3000, checks=200,
                  scans=2, peer=300, replay_timers=1000, replay_reads=200,
                  replay_deadline=10.0, peer_rounds=1),
    # 2,250 timers: histories of 4.5k events growing to ~5k while measured (issue 8's 4-6k).
    "full": dict(hello=40000, lifecycles=4000, unloaded=300, small=100, large=100_000,
                 checks=1000, scans=3, peer=3000, replay_timers=2250, replay_reads=1000,
                 replay_deadline=30.0, peer_rounds=3),
}


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores {model}, Python {platform.python_version()}"


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} not ready in {timeout}s")


def measure_hello(size: dict[str, Any], concurrencies: list[int]) -> dict[int, float]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "bench.hello", "--port", str(port)], cwd=REPO)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/", proc)
        asyncio.run(load.hello(f"http://127.0.0.1:{port}/", 500, 8))  # warm-up
        return {c: asyncio.run(load.hello(f"http://127.0.0.1:{port}/", size["hello"], c)).rate
                for c in concurrencies}
    finally:
        proc.terminate()
        proc.wait(10)


def measure_devhost(size: dict[str, Any], concurrencies: list[int], workdir: Path,
                    env: dict[str, str], workers: int) -> dict[str, Any]:
    host = DevhostProcess(REPO, workdir / "lifecycles.sqlite3", env=env, workers=workers).start()
    try:
        asyncio.run(load.lifecycles(host.url, 50, 4, "warm"))
        unloaded = asyncio.run(load.lifecycles(host.url, size["unloaded"], 1, "one"))
        loaded = {c: asyncio.run(load.lifecycles(host.url, size["lifecycles"], c, f"c{c}"))
                  for c in concurrencies}
    finally:
        host.stop()
    return {"unloaded": unloaded, "loaded": loaded}


def measure_lookups(size: dict[str, Any], workdir: Path, env: dict[str, str],
                    workers: int) -> dict[str, Any]:
    db = workdir / "lookups.sqlite3"
    results: dict[str, Any] = {}
    seeded = 0
    for label, total in (("small", size["small"]), ("large", size["large"])):
        seed(str(db), seeded, total - seeded)
        seeded = total
        host = DevhostProcess(REPO, db, env=env, workers=workers).start()
        try:
            keys = [seed_key(i) for i in range(0, total, max(1, total // 97))]
            asyncio.run(load.checks(host.url, keys, 50))
            results[f"check_{label}"] = asyncio.run(load.checks(host.url, keys, size["checks"]))
            if label == "large":
                results["scan_large"] = asyncio.run(load.scan_checks(
                    host.url, [seed_key(total // 2 + i) for i in range(size["scans"])],
                    ORCHESTRATOR))
        finally:
            host.stop()
    return results


def measure_peer(size: dict[str, Any], workdir: Path, concurrency: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.peer_dbos", "--lifecycles", str(size["peer"]),
         "--concurrency", str(concurrency), "--workdir", str(workdir / "dbos"), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"DBOS peer failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_peer_rounds(size: dict[str, Any], workdir: Path, env: dict[str, str], workers: int,
                        concurrency: int, peer_concurrency: int) -> list[dict[str, Any]]:
    """``size["peer_rounds"]`` rounds, each devhost's lifecycles at ``concurrency`` (a fresh
    devhost, as in :func:`measure_devhost`) and right after it the DBOS peer's: both sides of
    each ratio see the same minute of this machine. Returns one dict per round: ``devhost``
    and ``dbos`` (lifecycles/s), ``ratio``, and ``peer`` (the DBOS peer's own figures)."""
    rounds = []
    for i in range(size["peer_rounds"]):
        (workdir / f"round{i}").mkdir()
        dh = measure_devhost(size, [concurrency], workdir / f"round{i}", env, workers)
        peer = measure_peer(size, workdir / f"round{i}", peer_concurrency)
        rate, dbos = dh["loaded"][concurrency].rate, peer["peer_dbos_lifecycles_per_s"]
        rounds.append({"devhost": rate, "dbos": dbos, "ratio": rate / dbos, "peer": peer})
    return rounds


def median_round(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The round with the median ratio (the upper one of an even count)."""
    return sorted(rounds, key=lambda r: r["ratio"])[len(rounds) // 2]


def measure_peer_durabletask(size: dict[str, Any], concurrency: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.peer_durabletask", "--lifecycles", str(size["peer"]),
         "--concurrency", str(concurrency), "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        raise RuntimeError(f"durabletask peer failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_replay(size: dict[str, Any], workdir: Path, env: dict[str, str]) -> dict[str, float]:
    """Status reads during replay (:mod:`bench.replay`), on one devhost worker: the process
    whose event loop serves the reads is the one replaying."""
    host = DevhostProcess(replay.APP, workdir / "replay.sqlite3", env=env, workers=1).start()
    try:
        run = asyncio.run(replay.run(host.url, timers=size["replay_timers"],
                                     reads=size["replay_reads"],
                                     deadline=size["replay_deadline"]))
    finally:
        host.stop()
    return run.figures()


def measure_eternal(size: dict[str, Any], workdir: Path, env: dict[str, str]
                    ) -> dict[str, float]:
    """Status reads and a terminate while an orchestration continues as new forever
    (:mod:`bench.eternal`), on one devhost worker."""
    host = DevhostProcess(replay.APP, workdir / "eternal.sqlite3", env=env, workers=1).start()
    try:
        return asyncio.run(eternal.run(host.url, reads=size["replay_reads"],
                                       deadline=size["replay_deadline"]))
    finally:
        host.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--size", choices=sorted(SIZES), default="full")
    parser.add_argument("--concurrency", default="8,32,64,128",
                        help="comma-separated loaded concurrencies to try (best one reported)")
    parser.add_argument("--no-peer", action="store_true", help="skip both peers")
    parser.add_argument("--peer-concurrency", type=int, default=8,
                        help="DBOS drivers (its throughput is flat from 1 to 64; 8 keeps its tail "
                             "latency sane)")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="devhost worker processes (default: one per core, at most 4: they "
                             "share one SQLite write lock); the same run also measures one "
                             "worker as a baseline")
    parser.add_argument("--devhost-env", action="append", default=[],
                        help="NAME=VALUE for the devhost process (e.g. DEVHOST_INPROC_CLIENT=0)")
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    env = {"WORKFLOW_TIMEOUT_SECONDS": "0"}
    env.update(dict(kv.split("=", 1) for kv in args.devhost_env))

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        hello = measure_hello(size, concurrencies)
        dh = measure_devhost(size, concurrencies, workdir, env, args.workers)
        best_c = max(dh["loaded"].items(), key=lambda kv: kv[1].rate)[0]
        # Baselines in the same run, at the best concurrency: devhost without its SDK
        # shortcuts, and devhost in one process.
        (workdir / "plain").mkdir()
        plain = measure_devhost(size, [best_c], workdir / "plain",
                                {**env, "DEVHOST_FASTPATH": "0"}, args.workers)
        (workdir / "one").mkdir()
        one_worker = measure_devhost(size, [best_c], workdir / "one", env, 1)
        lookups = measure_lookups(size, workdir, env, args.workers)
        replayed = measure_replay(size, workdir, env)
        replayed.update(measure_eternal(size, workdir, env))
        rounds = [] if args.no_peer else measure_peer_rounds(
            size, workdir, env, args.workers, best_c, args.peer_concurrency)
        middle = median_round(rounds) if rounds else None
        peer: dict[str, Any] = {}
        if middle is not None:
            peer = dict(middle["peer"])
            peer.update(measure_peer_durabletask(size, args.peer_concurrency))

    best = dh["loaded"][best_c]
    hello_rps = max(hello.values())
    one = dh["unloaded"]
    result: dict[str, Any] = {
        "size": args.size,
        "machine": machine(),
        "hello_rps": round(hello_rps, 1),
        "lifecycles_per_s": round(best.rate, 1),
        "best_concurrency": best_c,
        "hello_per_lifecycle": round(hello_rps / best.rate, 2),
        "workers": args.workers,
        "lifecycles_per_s_one_worker": round(one_worker["loaded"][best_c].rate, 1),
        "lifecycles_per_s_no_fastpath": round(plain["loaded"][best_c].rate, 1),
        "stop_to_completed_p50_ms_no_fastpath":
            round(load.percentile(plain["unloaded"].stop_to_completed, 0.5), 3),
        "start_p50_ms": round(load.percentile(one.start, 0.5), 3),
        "start_p99_ms": round(load.percentile(one.start, 0.99), 3),
        "stop_to_completed_p50_ms": round(load.percentile(one.stop_to_completed, 0.5), 3),
        "stop_to_completed_p99_ms": round(load.percentile(one.stop_to_completed, 0.99), 3),
        "loaded_start_p50_ms": round(load.percentile(best.start, 0.5), 3),
        "loaded_start_p99_ms": round(load.percentile(best.start, 0.99), 3),
        "loaded_stop_to_completed_p50_ms": round(load.percentile(best.stop_to_completed, 0.5), 3),
        "loaded_stop_to_completed_p99_ms": round(load.percentile(best.stop_to_completed, 0.99), 3),
        "check_p50_ms_small": round(load.percentile(lookups["check_small"].check, 0.5), 3),
        "check_p50_ms_large": round(load.percentile(lookups["check_large"].check, 0.5), 3),
        "scan_check_p50_ms_large": round(load.percentile(lookups["scan_large"].check, 0.5), 1),
        "instances_small": size["small"],
        "instances_large": size["large"],
    }
    result.update({k: round(v, 3) for k, v in replayed.items()})
    result.update({k: round(v, 3) for k, v in peer.items()})
    if middle is not None:
        result["devhost_per_dbos"] = round(middle["ratio"], 3)
        result["peer_rounds"] = [{"devhost": round(r["devhost"], 1), "dbos": round(r["dbos"], 1),
                                  "ratio": round(r["ratio"], 3)} for r in rounds]
    print()
    print(f"Machine: {result['machine']}   size: {args.size}   devhost workers: {args.workers}")
    print(f"{'measure':46} {'value':>12}")
    print(f"{'bare aiohttp hello (req/s), per concurrency':46} "
          + "  ".join(f"c{c}={r:,.0f}" for c, r in hello.items()))
    print(f"{'lifecycles/s, per concurrency':46} "
          + "  ".join(f"c{c}={r.rate:,.0f}" for c, r in dh["loaded"].items()))
    rows = [
        ("hello_rps (best)", f"{hello_rps:,.0f}"),
        (f"lifecycles_per_s (best, c={best_c})", f"{best.rate:,.1f}"),
        ("hello_rps / lifecycles_per_s (tracked)", f"{hello_rps / best.rate:.2f}"),
        (f"lifecycles_per_s with 1 worker (c={best_c})",
         f"{result['lifecycles_per_s_one_worker']:,.1f}"),
        (f"lifecycles_per_s without fast path (c={best_c})",
         f"{result['lifecycles_per_s_no_fastpath']:,.1f}"),
        ("start p50 / p99 ms, unloaded", f"{result['start_p50_ms']:.2f} / {result['start_p99_ms']:.2f}"),
        ("stop->Completed p50 / p99 ms, unloaded",
         f"{result['stop_to_completed_p50_ms']:.2f} / {result['stop_to_completed_p99_ms']:.2f}"),
        (f"start p50 / p99 ms, c={best_c}",
         f"{result['loaded_start_p50_ms']:.2f} / {result['loaded_start_p99_ms']:.2f}"),
        (f"stop->Completed p50 / p99 ms, c={best_c}",
         f"{result['loaded_stop_to_completed_p50_ms']:.2f} / "
         f"{result['loaded_stop_to_completed_p99_ms']:.2f}"),
        (f"check p50 ms, {size['small']:,} instances", f"{result['check_p50_ms_small']:.2f}"),
        (f"check p50 ms, {size['large']:,} instances", f"{result['check_p50_ms_large']:.2f}"),
        (f"original scan check p50 ms, {size['large']:,}", f"{result['scan_check_p50_ms_large']:,.1f}"),
        ("status read p50 / p99 ms, idle (1 worker)",
         f"{result['status_read_p50_ms_idle']:.2f} / {result['status_read_p99_ms_idle']:.2f}"),
        (f"same, 4 replaying {result['replay_history_events_min']:,.0f}-"
         f"{result['replay_history_events_max']:,.0f} events",
         f"{result['status_read_p50_ms_during_replay']:.1f} / "
         f"{result['status_read_p99_ms_during_replay']:.1f}"),
        ("same, an eternal continue_as_new loop running",
         f"{result['eternal_status_read_p50_ms']:.1f} / "
         f"{result['eternal_status_read_p99_ms']:.1f}"),
        ("terminate of that loop -> Terminated ms", f"{result['eternal_terminate_ms']:.1f}"),
    ]
    if peer:
        rows += [(f"devhost / DBOS, {len(rounds)} interleaved round(s) at c={best_c}",
                  "  ".join(f"{r['devhost']:,.0f}/{r['dbos']:,.0f}={r['ratio']:.2f}"
                            for r in rounds)),
                 ("devhost / DBOS, median round (issue 15: >= 5)", f"{result['devhost_per_dbos']:.2f}"),
                 ("DBOS peer lifecycles/s (median round)",
                  f"{peer['peer_dbos_lifecycles_per_s']:,.1f}"),
                 ("DBOS peer send->done p50 ms", f"{peer['peer_dbos_send_to_done_p50_ms']:.2f}"),
                 ("durabletask peer lifecycles/s",
                  f"{peer['peer_durabletask_lifecycles_per_s']:,.1f}"),
                 ("durabletask peer send->done p50 ms (parked)",
                  f"{peer['peer_durabletask_send_to_done_p50_ms']:.1f} "
                  f"({peer['peer_durabletask_parked_send_to_done_p50_ms']:.1f})")]
    for name, value in rows:
        print(f"{name:46} {value:>12}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
