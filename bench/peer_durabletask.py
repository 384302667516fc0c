"""The Durable Task peer: the app's lifecycle on Microsoft's ``durabletask`` Python SDK (PyPI
``durabletask`` 1.12) and its in-memory backend (``durabletask.testing``).

This is the same family as the app: DTFx's programming model (orchestrators replayed from
history, external events, a task hub), here with the SDK's own gRPC worker and client talking
to the in-memory sidecar the SDK ships for tests, all in one process over loopback gRPC.

The lifecycle is the one :func:`bench.load.lifecycles` drives through the app: an orchestration
is scheduled with the business key as its instance ID and waits for the external event
``"Workflow"``; the client raises it with the payload and waits for completion (the backend's
``WaitForInstanceCompletion``, no status polling), and the output must be ``{"outcome":
"stopped", "event": payload}``. Every lifecycle is verified twice: the awaited state must be
COMPLETED with that output, and afterwards every instance is read back through the client's
``get_orchestration_state``; any mismatch raises :class:`PeerMismatch`, so a figure is never
produced from wrong answers. Nothing is durable here (the backend is memory), which flatters
the peer: devhost commits every transition to SQLite.

``python -m bench.peer_durabletask --lifecycles 2000 --concurrency 8 --json`` prints exactly one
JSON object (the dict :func:`run` returns) as its last stdout line.

How the in-memory backend waits, which shapes the figures (read from its
``in_memory_backend.py``): a raise that lands while the orchestration's first episode is still
in flight is re-queued when that episode completes, without waking the work-item stream, which
then finds it only at its next 0.1 s wake-up. Driving schedule and raise back to back (as the
app's load client does) hits that often, one lifecycle at a time nearly always (send->done
p50 about 100 ms); the ``parked`` figures wait, untimed, until the first episode has completed
(``wait_for_orchestration_start``) before raising, measuring the event-to-waiting-orchestration
path alone.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from bench.load import Samples, percentile
from devhost.host.process import free_port

EVENT = "Workflow"
#: Closed-loop drivers (client threads), as for the DBOS peer.
DEFAULT_CONCURRENCY = 8
#: How long a client waits for one completion before the run fails.
COMPLETION_TIMEOUT_S = 60.0
#: Untimed lifecycles first, so gRPC channels and the worker's threads are warm.
WARMUP = 20


class PeerMismatch(AssertionError):
    """A lifecycle ended with something other than the expected output."""


def expected_output(payload: Any) -> dict[str, Any]:
    """The output every lifecycle must end with: the app's contract."""
    return {"outcome": "stopped", "event": payload}


def lifecycle(ctx: Any, _input: Any) -> Any:
    """The orchestrator: wait for one ``Workflow`` event, end with the app's output."""
    payload = yield ctx.wait_for_external_event(EVENT)
    return expected_output(payload)


def _check(key: str, payload: Any, state: Any) -> None:
    from durabletask.client import OrchestrationStatus

    if state is None or state.runtime_status != OrchestrationStatus.COMPLETED:
        raise PeerMismatch(f"{key}: ended {getattr(state, 'runtime_status', None)}, "
                           f"expected COMPLETED")
    if state.get_output() != expected_output(payload):
        raise PeerMismatch(f"{key}: output {state.get_output()!r}, "
                           f"expected {expected_output(payload)!r}")


def _phase(client: Any, keys: list[str], concurrency: int, park: bool = False
           ) -> tuple[Samples, float]:
    """Run ``keys`` lifecycles on ``concurrency`` driver threads; (samples, wall seconds).
    ``park``: raise only once the first episode has completed (untimed wait)."""
    samples = Samples()

    def one(i: int) -> None:
        key, payload = keys[i], {"n": i}
        t0 = time.perf_counter()
        client.schedule_new_orchestration(lifecycle, instance_id=key)
        t1 = time.perf_counter()
        if park:
            client.wait_for_orchestration_start(key, timeout=COMPLETION_TIMEOUT_S)
            t1_send = time.perf_counter()
            t1, start_latency = t1_send, t1 - t0
        else:
            start_latency = t1 - t0
        client.raise_orchestration_event(key, EVENT, data=payload)
        state = client.wait_for_orchestration_completion(key, timeout=COMPLETION_TIMEOUT_S)
        t2 = time.perf_counter()
        _check(key, payload, state)
        samples.add(start_latency, t2 - t1)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="peer-driver") as pool:
        list(pool.map(one, range(len(keys))))  # re-raises the first driver failure
    return samples, time.perf_counter() - t0


def _verify_stored(client: Any, keys: list[str]) -> None:
    """Read every instance back (not the awaited state): COMPLETED with the expected output."""
    for i, key in enumerate(keys):
        _check(key, {"n": i}, client.get_orchestration_state(key))


def run(lifecycles: int, concurrency: int, unloaded: int = 50, *, warmup: int = WARMUP,
        before_stop: Callable[[Any], None] | None = None) -> dict[str, float]:
    """Start the in-memory backend on a free port, a worker and a client; measure; stop.

    Phases, each with its own keys (``peer-warm-i``, ``peer-one-i``, ``peer-parked-i``,
    ``peer-cN-i``): ``warmup`` untimed lifecycles; ``unloaded`` one at a time (start latency =
    the schedule call returning; send->done = from just before the raise to the awaited
    completion); ``unloaded`` more one at a time, raising once parked (``..._parked_*``); then
    ``lifecycles`` by ``concurrency`` closed-loop drivers, whose wall time gives the throughput.

    Returns floats only: ``peer_durabletask_lifecycles_per_s``, ``..._send_to_done_p50_ms`` /
    ``_p99_ms``, ``..._start_p50_ms`` / ``_p99_ms`` (unloaded), the same under load
    (``..._loaded_*``), and the sizes used. Raises :class:`PeerMismatch` on any wrong outcome.
    The backend, worker and client are stopped before returning, on success or failure;
    ``before_stop`` (for tests) is called with the backend after the last check, before that.
    """
    if lifecycles < 1 or concurrency < 1 or unloaded < 1 or warmup < 0:
        raise ValueError("lifecycles, concurrency and unloaded must be >= 1, warmup >= 0")
    from durabletask.client import TaskHubGrpcClient
    from durabletask.testing import create_test_backend
    from durabletask.worker import TaskHubGrpcWorker

    # The SDK logs every schedule, raise and completion at INFO: keep the output for results.
    quiet = logging.getLogger("bench.peer_durabletask.sdk")
    quiet.setLevel(logging.ERROR)
    logging.getLogger("durabletask").setLevel(logging.WARNING)
    port = free_port()
    backend = create_test_backend(port=port, max_history_size=100)
    try:
        address = f"localhost:{port}"
        worker = TaskHubGrpcWorker(host_address=address, logger=quiet)
        worker.add_orchestrator(lifecycle)
        worker.start()
        client = TaskHubGrpcClient(host_address=address, logger=quiet)
        try:
            if warmup:
                _phase(client, [f"peer-warm-{i}" for i in range(warmup)], min(4, concurrency))
            one_keys = [f"peer-one-{i}" for i in range(unloaded)]
            one, _ = _phase(client, one_keys, 1)
            parked_keys = [f"peer-parked-{i}" for i in range(unloaded)]
            parked, _ = _phase(client, parked_keys, 1, park=True)
            loaded_keys = [f"peer-c{concurrency}-{i}" for i in range(lifecycles)]
            loaded, wall = _phase(client, loaded_keys, concurrency)
            _verify_stored(client, one_keys)
            _verify_stored(client, parked_keys)
            _verify_stored(client, loaded_keys)
            if before_stop is not None:
                before_stop(backend)
        finally:
            # Stopping cancels the worker's work-item stream, which it logs as an error.
            quiet.setLevel(logging.CRITICAL)
            client.close()
            worker.stop()
    finally:
        backend.stop()
    return {
        "peer_durabletask_lifecycles_per_s": lifecycles / wall,
        "peer_durabletask_send_to_done_p50_ms": percentile(one.send_to_done, 0.5),
        "peer_durabletask_send_to_done_p99_ms": percentile(one.send_to_done, 0.99),
        "peer_durabletask_start_p50_ms": percentile(one.start, 0.5),
        "peer_durabletask_start_p99_ms": percentile(one.start, 0.99),
        "peer_durabletask_parked_send_to_done_p50_ms": percentile(parked.send_to_done, 0.5),
        "peer_durabletask_parked_send_to_done_p99_ms": percentile(parked.send_to_done, 0.99),
        "peer_durabletask_loaded_send_to_done_p50_ms": percentile(loaded.send_to_done, 0.5),
        "peer_durabletask_loaded_send_to_done_p99_ms": percentile(loaded.send_to_done, 0.99),
        "peer_durabletask_loaded_start_p50_ms": percentile(loaded.start, 0.5),
        "peer_durabletask_loaded_start_p99_ms": percentile(loaded.start, 0.99),
        "peer_durabletask_lifecycles": float(lifecycles),
        "peer_durabletask_concurrency": float(concurrency),
    }


def main(argv: list[str] | None = None) -> int:
    """CLI: run once and print the result; the last stdout line is always the JSON object."""
    parser = argparse.ArgumentParser(prog="python -m bench.peer_durabletask",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lifecycles", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--unloaded", type=int, default=50)
    parser.add_argument("--json", action="store_true",
                        help="print only the JSON object (for the benchmark runner)")
    args = parser.parse_args(argv)
    result = run(args.lifecycles, args.concurrency, args.unloaded)
    if not args.json:
        from importlib.metadata import version

        print(f"durabletask {version('durabletask')}, in-memory backend")
        for name, value in result.items():
            print(f"  {name:44} {value:12.3f}")
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
