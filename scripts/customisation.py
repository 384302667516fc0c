"""Prove the customisation path on a copy: ``python scripts/customisation.py``.

Applies the README's one-line customisation to a fresh temporary copy of the repository (the
working tree is never touched): ``yield context.call_activity("notify", output)`` after the wait
in ``workflow/orchestrator.py``, and a ``notify`` activity in ``function_app.py`` that takes
``NOTIFY_SECONDS`` (0 unless set; this script sets ``--activity-seconds``, default 2, where the
activity runs on devhost). Then, in that copy:

1. On devhost, the stop answers while ``notify`` runs: 202 ``confirmed: true``, the run
   ``Running``; the run completes once ``notify`` returns. Prints the figures.
2. The template tests (``tests/template``) fail, and every failure names the command that fixes
   it.
3. Those commands (``python -m tests.golden.record``, ``python -m tests.template.snapshot``) are
   run; the template tests then pass.
4. The contract tests (``-m "not template"``, the files of ``--contract``) pass unchanged.

Exits 0 when all four hold; prints each step's verdict and time.

    python scripts/customisation.py                  # unit contract tests (seconds)
    python scripts/customisation.py --contract all   # + e2e and proofs on devhost (minutes)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

WAIT_LINE = "    output = yield from wait_for_stop(context, request)"
STEP_LINE = '    yield context.call_activity("notify", output)'
ACTIVITY = '''

@app.activity_trigger(input_name="output")
def notify(output: dict) -> None:
    """The customisation's step after the event (a notification, as slow as NOTIFY_SECONDS)."""
    import os
    import time
    time.sleep(float(os.environ.get("NOTIFY_SECONDS", "0")))
'''
FIX_COMMANDS = ("python -m tests.golden.record", "python -m tests.template.snapshot")
UNIT_CONTRACT = ("tests/test_lookup.py", "tests/test_function_app.py", "tests/test_orchestrator.py",
                 "tests/test_queue_stop.py", "tests/test_static_check.py", "tests/test_openapi.py",
                 "tests/test_inputs.py", "tests/test_responses.py", "tests/test_status.py",
                 "tests/test_settings.py", "tests/test_retention.py")
DEVHOST_CONTRACT = ("tests/e2e/test_app_contract.py", "tests/proofs/test_guarantees.py",
                    "tests/proofs/test_bad_input.py", "tests/proofs/test_openapi_conformance.py",
                    "tests/e2e/test_queue_and_retention.py")


class AlreadyCustomised(Exception):
    """The app at hand is not the template: the customisation cannot be applied to it."""


def customise(root: Path) -> None:
    """The README's one-line customisation, applied to the copy at ``root``.

    Raises:
        AlreadyCustomised: the orchestrator has no single wait line to add the step after, or
            the app already has a function named ``notify``.
    """
    orchestrator = root / "workflow" / "orchestrator.py"
    lines = orchestrator.read_text().split("\n")
    if lines.count(WAIT_LINE) != 1:
        raise AlreadyCustomised(f"workflow/orchestrator.py: the wait line is not there once: "
                                f"{WAIT_LINE.strip()}")
    if re.search(r"^def notify\(", (root / "function_app.py").read_text(), re.M):
        raise AlreadyCustomised("function_app.py already defines notify")
    at = lines.index(WAIT_LINE) + 1
    orchestrator.write_text("\n".join(lines[:at] + [STEP_LINE] + lines[at:]))
    app = root / "function_app.py"
    app.write_text(app.read_text() + ACTIVITY)


def pytest(root: Path, *args: str, notify_seconds: float = 0.0,
           timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    # COLUMNS: pytest cuts each short-summary line to the terminal's width; keep the messages.
    env = {**os.environ, "NOTIFY_SECONDS": str(notify_seconds), "COLUMNS": "100000"}
    return subprocess.run([PYTHON, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=root, capture_output=True, text=True, timeout=timeout, env=env)


def summary(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stdout.strip().splitlines()
    return lines[-1] if lines else result.stderr.strip()[-300:]


def request(url: str, method: str = "GET", body: Any = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def measure(root: Path, activity_seconds: float) -> bool:
    """Step 1, on devhost serving the customised copy; prints the figures."""
    sys.path.insert(0, str(root))
    from devhost.host.process import DevhostProcess

    with tempfile.TemporaryDirectory(prefix="custom-devhost-") as tmp:
        host = DevhostProcess(root, Path(tmp) / "devhost.sqlite3",
                              env={"WORKFLOW_TIMEOUT_SECONDS": "0",
                                   "NOTIFY_SECONDS": str(activity_seconds)}).start()
        try:
            api = f"{host.url}/api"
            assert request(f"{api}/start/custom", "POST")[0] == 202
            deadline = time.monotonic() + 30
            while request(f"{api}/check/custom")[1].get("customStatus") is None:
                assert time.monotonic() < deadline, "the run never started waiting"
                time.sleep(0.01)
            began = time.monotonic()
            code, body = request(f"{api}/stop/custom", "POST", {"approved": True})
            answered = time.monotonic() - began
            while (done := request(f"{api}/check/custom")[1])["runtimeStatus"] != "Completed":
                assert time.monotonic() - began < activity_seconds + 30, done
                time.sleep(0.01)
            finished = time.monotonic() - began
        finally:
            host.stop()
    ok = (code == 202 and body.get("confirmed") is True and body.get("runtimeStatus") == "Running"
          and answered < 1.0 and done["output"] == {"outcome": "stopped", "event": {"approved": True}})
    print(f"  stop answered {code} confirmed={body.get('confirmed')} "
          f"runtimeStatus={body.get('runtimeStatus')} in {answered * 1000:.0f} ms; "
          f"the run Completed {finished:.2f} s after the stop (notify takes {activity_seconds} s)")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--activity-seconds", type=float, default=2.0)
    parser.add_argument("--contract", default="unit", choices=["unit", "all"],
                        help="unit: the fake-host contract tests; all: also e2e and proofs")
    parser.add_argument("--keep", action="store_true", help="keep the customised copy")
    args = parser.parse_args(argv)
    verdicts: list[tuple[str, bool, float]] = []

    def step(name: str, ok: bool, began: float, detail: str = "") -> None:
        verdicts.append((name, ok, time.monotonic() - began))
        print(f"{'ok  ' if ok else 'FAIL'}  {time.monotonic() - began:6.1f} s  {name}"
              + (f"\n        {detail}" if detail else ""), flush=True)

    from mutants import copy_repository  # scripts/ is on sys.path when this file is run

    tmp = tempfile.mkdtemp(prefix="customised-")
    root = Path(tmp)
    copy_repository(root)
    try:
        customise(root)
    except AlreadyCustomised as exc:
        print(f"this app is not the template, the check does not apply: {exc}")
        return 2
    print(f"customised copy: {root}")

    began = time.monotonic()
    step("the stop answers 202 confirmed:true while notify runs (devhost)",
         measure(root, args.activity_seconds), began)

    began = time.monotonic()
    result = pytest(root, "tests/template", "-rf")
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    unnamed = [line for line in failures if not any(c in line for c in FIX_COMMANDS)]
    step(f"template tests fail ({len(failures)}), each naming its fix command",
         result.returncode == 1 and bool(failures) and not unnamed, began,
         "\n        ".join(unnamed[:5]))

    began = time.monotonic()
    fixed = all(subprocess.run([PYTHON, "-m", *command.split()[2:]], cwd=root,
                               env={**os.environ, "NOTIFY_SECONDS": "0"},
                               capture_output=True, text=True, timeout=600).returncode == 0
                for command in FIX_COMMANDS)
    result = pytest(root, "tests/template")
    step("after " + " and ".join(f"`{c}`" for c in FIX_COMMANDS) + ", template tests pass: "
         + summary(result), fixed and result.returncode == 0, began)

    runs: list[tuple[str, tuple[str, ...], float]] = [("unit, fake host", UNIT_CONTRACT, 0.0)]
    if args.contract == "all":  # the activity as slow as on devhost above: stops answer first
        runs.append(("devhost", DEVHOST_CONTRACT, args.activity_seconds))
    for name, files, seconds in runs:
        began = time.monotonic()
        result = pytest(root, "-m", "not template", *files, notify_seconds=seconds)
        step(f"contract tests pass unchanged ({name}): {summary(result)}",
             result.returncode == 0, began,
             "\n        ".join(re.findall(r"^FAILED .*$", result.stdout, re.M)[:10]))

    if not args.keep:
        subprocess.run(["rm", "-rf", str(root)], check=False)
    return 0 if all(ok for _, ok, _ in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
