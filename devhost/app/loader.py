"""Load an unmodified v2-model ``function_app.py`` and index its functions as the host would.

Guarantees: ``app.get_functions()`` is called exactly once (a second call raises in the SDK);
``local.settings.json`` ``Values`` reach the environment before the app is imported, without
overriding variables that are already set (as ``func start`` does); the app is imported with its
directory as the working directory, because the Durable SDK reads ``./host.json`` on import.
"""
from __future__ import annotations

import importlib.util
import inspect
import json
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

from devhost.app.appfiles import AppLoadError, read_host_json
from devhost.app.bindings import QueueFunction, QueueOptions, TimerFunction
from devhost.app.invocations import DEFAULT_FUNCTION_TIMEOUT, function_timeout
from devhost.app.routes import RouteTemplate
from devhost.app.status import RuntimeStatus, overridable_states

#: Bindings devhost knows how to feed; any other binding makes the function unsupported.
_KNOWN_BINDINGS = {"httpTrigger", "http", "durableClient", "orchestrationTrigger",
                   "activityTrigger", "timerTrigger", "queueTrigger"}


@dataclass(frozen=True)
class HttpFunction:
    """An HTTP-triggered function and what is needed to call it like the worker does."""

    name: str
    route: RouteTemplate
    methods: frozenset[str] | None
    auth_level: str
    trigger_param: str
    client_param: str | None
    user_function: Callable[..., Any]
    is_async: bool
    wants_context: bool
    unsupported: tuple[str, ...]


@dataclass(frozen=True)
class ActivityFunction:
    name: str
    input_param: str
    user_function: Callable[..., Any]
    is_async: bool


@dataclass(frozen=True)
class OrchestratorFunction:
    name: str
    user_function: Callable[..., str]


@dataclass(frozen=True)
class LoadedApp:
    """Everything devhost needs from an app directory."""

    directory: str
    route_prefix: str
    hub_name: str
    overridable: frozenset[RuntimeStatus]
    http: tuple[HttpFunction, ...]
    orchestrators: dict[str, OrchestratorFunction]
    activities: dict[str, ActivityFunction]
    warnings: tuple[str, ...] = field(default=())
    timers: tuple[TimerFunction, ...] = field(default=())
    queues: tuple[QueueFunction, ...] = field(default=())
    queue_options: QueueOptions = field(default_factory=QueueOptions)
    #: host.json ``functionTimeout`` in seconds (None: no limit); see devhost.app.invocations.
    function_timeout: float | None = DEFAULT_FUNCTION_TIMEOUT


def _find_app(module: Any) -> Any:
    import azure.functions as func

    apps = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    if len(apps) != 1:
        raise AppLoadError(f"function_app.py must define exactly one FunctionApp/DFApp, "
                           f"found {len(apps)}")
    return apps[0]


def load_app(directory: str) -> LoadedApp:
    """Import ``<directory>/function_app.py`` and index its functions.

    Raises: AppLoadError when the file is missing, fails to import, or declares a function
    devhost cannot index (reported with the function's name).
    """
    directory = os.path.abspath(directory)
    script = os.path.join(directory, "function_app.py")
    if not os.path.exists(script):
        raise AppLoadError(f"no function_app.py in {directory}")
    host = read_host_json(directory)
    os.chdir(directory)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    spec = importlib.util.spec_from_file_location("function_app", script)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["function_app"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise AppLoadError(f"importing {script} failed: {type(exc).__name__}: {exc}") from exc
    return index_app(_find_app(module), directory, host)


def index_app(app: Any, directory: str = ".", host: dict[str, Any] | None = None) -> LoadedApp:
    """Index an already imported FunctionApp/DFApp (calls its ``get_functions()`` once).

    ``host`` is the parsed host.json (route prefix, hub name, overridable states).
    Raises: AppLoadError for a function devhost cannot index.
    """
    extensions = (host or {}).get("extensions") or {}
    durable = extensions.get("durableTask") or {}
    route_prefix = ((extensions.get("http") or {}).get("routePrefix", "api") or "").strip("/")
    functions = app.get_functions()

    http: list[HttpFunction] = []
    orchestrators: dict[str, OrchestratorFunction] = {}
    activities: dict[str, ActivityFunction] = {}
    timers: list[TimerFunction] = []
    queues: list[QueueFunction] = []
    warnings: list[str] = []
    for fn in functions:
        name = fn.get_function_name()
        bindings = json.loads(fn.get_function_json())["bindings"]
        trigger = next((b for b in bindings if b["type"].endswith("Trigger")), None)
        user = fn.get_user_function()
        unsupported = tuple(b["type"] for b in bindings if b["type"] not in _KNOWN_BINDINGS)
        if trigger is None:
            warnings.append(f"{name}: no trigger, skipped")
            continue
        if trigger["type"] == "httpTrigger":
            client = next((b["name"] for b in bindings if b["type"] == "durableClient"), None)
            methods = trigger.get("methods")
            try:
                route = RouteTemplate(trigger.get("route") or name)
            except ValueError as exc:
                raise AppLoadError(f"{name}: {exc}") from exc
            if unsupported:
                warnings.append(f"{name}: bindings {', '.join(unsupported)} are not supported "
                                f"by devhost; calls answer 501")
            http.append(HttpFunction(
                name=name, route=route,
                methods=frozenset(m.upper() for m in methods) if methods else None,
                auth_level=str(trigger.get("authLevel", "function")).lower(),
                trigger_param=trigger["name"], client_param=client, user_function=user,
                is_async=inspect.iscoroutinefunction(user),
                wants_context="context" in inspect.signature(user).parameters,
                unsupported=unsupported))
        elif trigger["type"] == "orchestrationTrigger":
            host_name = trigger.get("orchestration") or name
            orchestrators[host_name] = OrchestratorFunction(host_name, user)
        elif trigger["type"] == "activityTrigger":
            host_name = trigger.get("activity") or name
            activities[host_name] = ActivityFunction(host_name, trigger["name"], user,
                                                     inspect.iscoroutinefunction(user))
        elif trigger["type"] in ("timerTrigger", "queueTrigger"):
            if unsupported:
                warnings.append(f"{name}: bindings {', '.join(unsupported)} are not supported "
                                f"by devhost, skipped")
                continue
            client = next((b["name"] for b in bindings if b["type"] == "durableClient"), None)
            is_async = inspect.iscoroutinefunction(user)
            if trigger["type"] == "timerTrigger":
                timers.append(TimerFunction(
                    name=name, trigger_param=trigger["name"], client_param=client,
                    schedule=str(trigger.get("schedule") or ""),
                    run_on_startup=bool(trigger.get("runOnStartup", False)),
                    use_monitor=bool(trigger.get("useMonitor", True)),
                    user_function=user, is_async=is_async))
            else:
                queues.append(QueueFunction(
                    name=name, trigger_param=trigger["name"], client_param=client,
                    queue_name=str(trigger.get("queueName") or ""),
                    connection=str(trigger.get("connection") or "AzureWebJobsStorage"),
                    user_function=user, is_async=is_async))
        else:
            warnings.append(f"{name}: {trigger['type']} is not supported by devhost, skipped")
    http.sort(key=lambda f: f.route.precedence)
    try:
        overridable = overridable_states(durable.get("overridableExistingInstanceStates"))
    except ValueError as exc:
        raise AppLoadError(f"host.json: {exc}") from exc
    try:
        queue_options = QueueOptions.from_host_json(host)
        timeout = function_timeout(host)
    except ValueError as exc:
        raise AppLoadError(f"host.json: {exc}") from exc
    return LoadedApp(directory=os.path.abspath(directory), route_prefix=route_prefix,
                     hub_name=durable.get("hubName") or "TestHubName",
                     overridable=overridable, http=tuple(http), orchestrators=orchestrators,
                     activities=activities, warnings=tuple(warnings), timers=tuple(timers),
                     queues=tuple(queues), queue_options=queue_options,
                     function_timeout=timeout)
