"""Static checks of the function app, offline: what the host would reject at indexing time.

Two layers: ``azure-functions-doctor`` (PyPI, pinned in requirements-dev.txt) run as a
subprocess, and checks of our own for what it does not cover (durable binding details, the
HTTP surface, host.json durable settings, and determinism of ``workflow/orchestrator.py``,
which the doctor does not follow into because it only scans decorated functions' bodies).
"""

from __future__ import annotations

import ast
import inspect
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app_index import functions

APP_ROOT = Path(__file__).resolve().parent.parent
DOCTOR = Path(sys.executable).parent / "azure-functions-doctor"
#: What the deployment package holds (tests/infra/test_funcignore.py proves the listing).
DEPLOYED = ("function_app.py", "host.json", "requirements.txt", "workflow")

HTTP_SURFACE = {
    "start": ("start/{input}", {"POST", "GET"}),
    "check": ("check/{input}", {"GET"}),
    "stop": ("stop/{input}", {"POST", "GET"}),
}
PUBLIC_SURFACE = {"openapi_document": ("openapi.json", {"GET"})}  # anonymous: the API's description
EVENT_SURFACE = {"stop_from_queue", "purge_finished_runs"}  # queue and timer triggers


def test_azure_functions_doctor_reports_no_failures(tmp_path: Path) -> None:
    """The doctor checks what Azure runs: the deployed files only. It scans every ``.py`` under
    its path, and the repository also holds test apps that misbehave on purpose (an orchestrator
    that blocks in ``time.sleep``, tests/devhost/apps/blocking)."""
    assert DOCTOR.exists(), "pip install -r requirements-dev.txt (azure-functions-doctor)"
    package = tmp_path / "package"
    package.mkdir()
    for name in DEPLOYED:
        source = APP_ROOT / name
        if source.is_dir():
            shutil.copytree(source, package / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, package / name)
    result = subprocess.run(
        [str(DOCTOR), "doctor", "--path", str(package), "--profile", "full", "--format", "json"],
        cwd=package,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stdout)
    failures = [
        f"{item['rule_id']}: {item['value']}"
        for section in report["results"]
        for item in section["items"]
        if item["status"] == "fail"
    ]
    assert failures == []
    assert result.returncode == 0, result.stderr
    assert report["metadata"]["programming_model"] == "v2"


def test_functions_index_with_every_function_the_contract_needs() -> None:
    """The contract's functions are all there (a customised app may add its own, e.g. an
    activity; tests/template pins the exact list)."""
    assert set(functions()) >= {*HTTP_SURFACE, *PUBLIC_SURFACE, *EVENT_SURFACE,
                                "workflow_orchestrator"}
    for function in functions().values():
        function_json = json.loads(function.get_function_json())
        assert function_json["scriptFile"] == "function_app.py"
        assert function_json["bindings"], function.get_function_name()


@pytest.mark.parametrize("name", sorted(HTTP_SURFACE))
def test_http_trigger_has_route_methods_and_function_auth(name: str) -> None:
    route, methods = HTTP_SURFACE[name]
    bindings = json.loads(functions()[name].get_function_json())["bindings"]
    [trigger] = [b for b in bindings if b["type"] == "httpTrigger"]
    assert trigger["route"] == route
    assert set(trigger["methods"]) == methods
    assert trigger["authLevel"] == "FUNCTION"
    assert {"direction": "IN", "type": "durableClient", "name": "client"} in bindings
    assert {"direction": "OUT", "type": "http", "name": "$return"} in bindings


@pytest.mark.parametrize("name", sorted(HTTP_SURFACE))
def test_durable_client_functions_are_async(name: str) -> None:
    wrapper = functions()[name].get_user_function()
    # The SDK's wrapper awaits the user function: a sync one fails at the first request.
    assert inspect.iscoroutinefunction(wrapper.client_function)
    assert list(inspect.signature(wrapper).parameters) == ["req", "client"]


def test_queue_stop_listens_on_workflow_stop_with_the_host_storage_connection() -> None:
    bindings = json.loads(functions()["stop_from_queue"].get_function_json())["bindings"]
    assert {"direction": "IN", "type": "queueTrigger", "name": "msg",
            "queueName": "workflow-stop", "connection": "AzureWebJobsStorage"} in bindings
    assert {"direction": "IN", "type": "durableClient", "name": "client"} in bindings
    wrapper = functions()["stop_from_queue"].get_user_function()
    assert inspect.iscoroutinefunction(wrapper.client_function)


def test_retention_timer_runs_daily_by_default_with_the_schedule_monitor() -> None:
    bindings = json.loads(functions()["purge_finished_runs"].get_function_json())["bindings"]
    [trigger] = [b for b in bindings if b["type"] == "timerTrigger"]
    assert trigger["schedule"] == "0 30 2 * * *"
    assert trigger["useMonitor"] is True and trigger["runOnStartup"] is False


def test_orchestrator_trigger_binds_context() -> None:
    bindings = json.loads(functions()["workflow_orchestrator"].get_function_json())["bindings"]
    assert bindings == [{"direction": "IN", "type": "orchestrationTrigger", "name": "context"}]
    # The SDK's handler parameter is literally named "context".
    handler = functions()["workflow_orchestrator"].get_user_function()
    assert list(inspect.signature(handler).parameters) == ["context"]


def test_host_json_has_bundle_hub_and_no_overwrite_of_running_instances() -> None:
    host = json.loads((APP_ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    assert host["extensionBundle"] == {
        "id": "Microsoft.Azure.Functions.ExtensionBundle",
        "version": "[4.*, 5.0.0)",
    }
    durable = host["extensions"]["durableTask"]
    assert durable["hubName"]
    # Start's idempotency relies on the host refusing to replace an active instance.
    assert durable["overridableExistingInstanceStates"] == "NonRunningStates"
    assert host["extensions"].get("http", {}).get("routePrefix", "api") == "api"


FORBIDDEN_IN_ORCHESTRATOR = {
    "now", "utcnow", "today", "time", "monotonic", "perf_counter", "sleep",
    "uuid1", "uuid4", "random", "randint", "choice", "getenv", "environ", "open",
}
FORBIDDEN_MODULES = {"os", "time", "random", "uuid", "requests", "aiohttp", "socket", "subprocess", "asyncio"}


def test_orchestrator_module_has_no_nondeterministic_calls() -> None:
    tree = ast.parse((APP_ROOT / "workflow" / "orchestrator.py").read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imported.isdisjoint(FORBIDDEN_MODULES), imported & FORBIDDEN_MODULES
    used = {
        node.attr if isinstance(node, ast.Attribute) else node.id
        for node in ast.walk(tree)
        if isinstance(node, (ast.Attribute, ast.Name))
    }
    assert used.isdisjoint(FORBIDDEN_IN_ORCHESTRATOR), used & FORBIDDEN_IN_ORCHESTRATOR
