"""Optional shortcuts into SDK internals that make devhost's hot path cheaper.

Each one keeps the SDK's observable behaviour and is installed only when the installed SDK still
looks exactly as it was when the shortcut was written (version range, module attributes, and a
self-check of results); otherwise devhost runs without it and says so. Turn them all off with
``DEVHOST_FASTPATH=0``; the conformance tests run the app's contract both ways.

- ``inproc-client``: the Durable client's calls to devhost's own ``rpcBaseUrl`` are answered
  in-process by the same :class:`~devhost.tools.management.ManagementApi` that serves HTTP, instead of
  a loopback HTTP round trip. Status codes and JSON values are the ones the HTTP path returns
  (handed over as the freshly built value instead of serialised and parsed again), with
  ``http_utils``' conventions (empty body -> None; GET maps None to "").
  Like a network call, every in-process call suspends its caller for one turn of the event loop
  first, so a function that polls the client in a loop cannot starve the host (the episodes
  and requests that loop serves). Calls to any other URL go to the SDK's original functions.
- ``fast-timestamps``: history and status timestamps in devhost's own format
  (``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``) are parsed with ``datetime.fromisoformat`` and given
  dateutil's own tzinfo for ``Z``, so the value, its type and its tzinfo are what ``dateutil.parser.parse``
  returns; anything else still goes to dateutil. (dateutil was ~13 % of devhost's CPU.)
- ``cached-namedtuple``: the replay executor builds the same namedtuple class on every
  orchestrator invocation; the shortcut returns the class built the first time for the same
  arguments.
- ``cached-bindings``: every client function builds a ``DurableOrchestrationClient`` from the
  binding JSON, which devhost hands out identically for one origin; the parsed
  ``DurableOrchestrationBindings`` is reused for the same text (the client only reads it, and
  copies its URL map before filling it in).
- ``strict-typing-env``: ``azure.functions`` reads ``AZURE_FUNCTIONS_DURABLE_STRICT_TYPING``
  on every Durable (de)serialisation, and an unset variable costs a raised and caught KeyError
  each time; when it is unset, devhost sets it to ``""``, which the library reads exactly as
  unset (not one of its truthy values).
"""
from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
import json
import logging
import os
import re
from datetime import datetime
from importlib import metadata
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger("devhost.fastpath")

#: SDK versions the shortcuts were written against and are tested with.
SUPPORTED = re.compile(r"1\.[0-9]+(\.[0-9]+)?$")
_MODELS = "azure.durable_functions.models"
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def enabled() -> bool:
    """Whether ``DEVHOST_FASTPATH`` allows the shortcuts (default: on)."""
    return os.environ.get("DEVHOST_FASTPATH", "1").strip().lower() not in ("0", "false", "no")


def _sdk_version() -> str:
    try:
        return metadata.version("azure-functions-durable")
    except metadata.PackageNotFoundError:
        return "unknown"


def fast_parse(original: Callable[[str], datetime]) -> Callable[[str], datetime]:
    """A drop-in for ``dateutil.parser.parse`` that is fast for devhost's timestamps."""
    # Whatever tzinfo dateutil gives a "Z" stamp (tzutc(), or tzlocal() when the machine's zone
    # is UTC): reuse it so the results are indistinguishable. The install-time self-check
    # verifies this across seasons.
    utc = original("2026-01-01T00:00:00Z").tzinfo

    def parse(text: Any, *args: Any, **kwargs: Any) -> datetime:
        if not args and not kwargs and isinstance(text, str) and _STAMP.match(text):
            return datetime.fromisoformat(text[:-1]).replace(tzinfo=utc)
        return original(text, *args, **kwargs)

    return parse


def _check_parser(parse: Callable[[str], datetime], original: Callable[[str], datetime]) -> bool:
    samples = ["2026-11-28T14:17:34.192394Z", "2026-01-01T00:00:00Z", "2025-06-01T12:00:00.1Z",
               "2026-07-01T00:30:00.000001Z",
               "2025-06-01T12:00:00.123456+02:00", "2025-06-01T12:00:00.1234567Z"]
    for s in samples:
        a, b = parse(s), original(s)
        if a != b or type(a) is not type(b) or type(a.tzinfo) is not type(b.tzinfo) \
                or a.utcoffset() != b.utcoffset():
            return False
    return True


class InprocTransport:
    """Replacements for ``http_utils.{get,post,delete}_async_request`` bound to one
    :class:`~devhost.tools.management.ManagementApi` and its ``rpcBaseUrl``.

    ``handle`` is ``ManagementApi.serve`` (a coroutine function) or any function with
    ``ManagementApi.handle``'s signature returning a reply or an awaitable of one.
    Guarantees: each call yields to the event loop at least once before it is answered.
    """

    def __init__(self, handle: Callable[..., Any], rpc_base: str,
                 originals: dict[str, Callable[..., Any]]) -> None:
        self.handle, self.rpc_base, self.originals = handle, rpc_base, originals
        self.origin = "{0.scheme}://{0.netloc}".format(urlsplit(rpc_base))
        self.calls = 0

    async def _call(self, method: str, url: str, body: bytes, content_type: str | None
                    ) -> list[Any]:
        # A loopback request suspends the caller until the answer arrives; without this a
        # function polling get_status in a loop never gives the loop back: its orchestration
        # never starts and every other request waits (issue 8, item 6).
        await asyncio.sleep(0)
        # The URL starts with rpc_base (``_ours``): what follows is the API's path and query,
        # cut by hand (urlsplit twice per call was a thirtieth of a lifecycle's CPU).
        rest = url[len(self.rpc_base) - 1:].partition("#")[0]
        path, _, query = rest.partition("?")
        headers = {"Content-Type": content_type} if content_type else {}
        reply = self.handle(method, path, dict(parse_qsl(query, keep_blank_values=True)),
                            headers, body, self.origin)
        if inspect.isawaitable(reply):
            reply = await reply
        self.calls += 1
        return [reply.status, reply.value]

    def _ours(self, url: str) -> bool:
        return url.startswith(self.rpc_base)

    async def post(self, url: str, data: Any = None, trace_parent: str | None = None,
                   trace_state: str | None = None,
                   function_invocation_id: str | None = None) -> list[Any]:
        if not self._ours(url):
            return await self.originals["post_async_request"](
                url, data, trace_parent, trace_state, function_invocation_id)
        # aiohttp's ``json=data`` sends nothing (and no JSON content type) for None.
        if data is None:
            return await self._call("POST", url, b"", None)
        return await self._call("POST", url, json.dumps(data).encode(), "application/json")

    async def get(self, url: str, function_invocation_id: str | None = None) -> list[Any]:
        if not self._ours(url):
            return await self.originals["get_async_request"](url, function_invocation_id)
        status, data = await self._call("GET", url, b"", None)
        return [status, "" if data is None else data]

    async def delete(self, url: str, function_invocation_id: str | None = None) -> list[Any]:
        if not self._ours(url):
            return await self.originals["delete_async_request"](url, function_invocation_id)
        return await self._call("DELETE", url, b"", None)


def install(handle: Callable[..., Any], rpc_base: str) -> list[str]:
    """Install every shortcut whose guard passes; returns the names installed.

    ``handle`` is ``ManagementApi.serve``; ``rpc_base`` the ``rpcBaseUrl`` handed to clients.
    """
    if not enabled():
        return []
    version = _sdk_version()
    if not SUPPORTED.match(version):
        log.warning("fast path off: azure-functions-durable %s is outside the tested 1.x range",
                    version)
        return []
    installed: list[str] = []
    try:
        # import_module: the package re-exports classes under the same names as the modules.
        # Any: the SDK is untyped, and its module attributes are what gets replaced here.
        client_module: Any = importlib.import_module(f"{_MODELS}.DurableOrchestrationClient")
        http_utils = importlib.import_module(f"{_MODELS}.utils.http_utils")
        names = ("post_async_request", "get_async_request", "delete_async_request")
        originals = {n: getattr(http_utils, n) for n in names}
        if all(getattr(client_module, n, None) is originals[n] for n in names):
            transport = InprocTransport(handle, rpc_base, originals)
            client_module.post_async_request = transport.post
            client_module.get_async_request = transport.get
            client_module.delete_async_request = transport.delete
            installed.append("inproc-client")
    except ImportError:
        pass
    try:
        status_module: Any = importlib.import_module(f"{_MODELS}.DurableOrchestrationStatus")
        event_module: Any = importlib.import_module(f"{_MODELS}.history.HistoryEvent")
        original = event_module.dt_parse
        parse = fast_parse(original)
        if status_module.dt_parse is original and _check_parser(parse, original):
            event_module.dt_parse = parse
            status_module.dt_parse = parse
            installed.append("fast-timestamps")
    except (ImportError, AttributeError):
        pass
    try:
        from collections import namedtuple

        executor_module: Any = importlib.import_module(f"{_MODELS}.TaskOrchestrationExecutor")
        if getattr(executor_module, "namedtuple", None) is namedtuple:
            executor_module.namedtuple = functools.lru_cache(maxsize=32)(namedtuple)
            installed.append("cached-namedtuple")
    except ImportError:
        pass
    try:
        bindings = importlib.import_module(f"{_MODELS}.DurableOrchestrationBindings")
        cls = bindings.DurableOrchestrationBindings
        parse_bindings = cls.from_json.__func__
        if getattr(parse_bindings, "__wrapped__", None) is None:
            cached: Any = functools.lru_cache(maxsize=16)(parse_bindings)
            cls.from_json = classmethod(cached)
            installed.append("cached-bindings")
    except (ImportError, AttributeError):
        pass
    try:
        codec = importlib.import_module("azure.functions._durable_functions")
        if os.environ.get(codec._STRICT_ENV_VAR) is None and "" not in codec._TRUTHY \
                and not codec._is_strict_mode():
            os.environ[codec._STRICT_ENV_VAR] = ""
            installed.append("strict-typing-env")
    except (ImportError, AttributeError):
        pass
    return installed
