"""The HTTP face of devhost: the app's HTTP triggers, the Durable client API and the webhooks.

One aiohttp application on one origin serves:
- ``/<routePrefix>/...`` (default ``/api``): the app's HTTP-triggered functions, invoked like the
  Python worker does (``func.HttpRequest`` in, ``func.HttpResponse`` out, the ``durableClient``
  binding as a JSON string);
- ``/durabletask/...``: the Durable client's ``rpcBaseUrl``;
- ``/runtime/webhooks/durabletask/...``: the public management URLs that
  ``create_check_status_response`` hands out (same origin as ``/api``, as the SDK requires);
- ``/admin/host/status``: a readiness probe, as on the real host;
- ``/_devhost/``: the dashboard (:mod:`devhost.tools.dashboard`).

Every request first passes :mod:`devhost.host.guard` (Host and Origin rules, after routing), and
every connection :mod:`devhost.host.connections` (header and body timeouts, the connection cap).

Function keys are not enforced, exactly like ``func start`` locally. Request bodies are limited
like the host limits them (app setting ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT``, default 100 MB):
a larger one is answered 413 with a JSON body before it reaches a function or the store, and no
request holds more than that many body bytes in memory.
"""
from __future__ import annotations

import asyncio
import functools
import logging
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from aiohttp import web

from devhost.app import hostlog
from devhost.app.limits import body_limit, too_large
from devhost.app.loader import HttpFunction, LoadedApp
from devhost.core.engine import Engine
from devhost.host import connections, guard
from devhost.tools.dashboard import Dashboard
from devhost.tools.management import RPC_PATH, WEBHOOK_PATH, ManagementApi, Reply

log = logging.getLogger("devhost.server")


def _too_large(limit: int, size: int | None) -> web.Response:
    return web.json_response(too_large(limit, size), status=413)


@dataclass(frozen=True)
class InvocationContext:
    """What a function declaring a ``context`` parameter receives (the worker's ``func.Context``
    subset that apps use)."""

    invocation_id: str
    function_name: str
    function_directory: str


def _to_response(result: Any) -> web.Response:
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items()}
        if not any(k.lower() == "content-type" for k in headers) and result.mimetype:
            content_type = result.mimetype
            if result.charset and (content_type.startswith("text/")
                                   or content_type == "application/json"):
                content_type += f"; charset={result.charset}"
            headers["Content-Type"] = content_type
        return web.Response(status=result.status_code, body=result.get_body(), headers=headers)
    if result is None:
        return web.Response(status=204)
    if isinstance(result, (bytes, bytearray)):
        return web.Response(body=bytes(result), content_type="application/octet-stream")
    if isinstance(result, str):
        return web.Response(text=result, content_type="text/plain")
    raise TypeError(f"an HTTP function returned {type(result).__name__}, not an HttpResponse")


def raw_tail(raw_path: str, base: str) -> str:
    """The still percent-encoded rest of ``raw_path`` after the route's base path ``base``
    (``/durabletask``), which aiohttp matched on the *decoded* path: ``/%64urabletask/x`` has
    the tail ``/x``. A raw path whose decoded start is not ``base`` (aiohttp would not have
    routed it here) yields the whole raw path, which no handler route matches."""
    pos, decoded = 0, ""
    while len(decoded) < len(base) and pos < len(raw_path):
        chunk = raw_path[pos:pos + 3]
        if chunk[:1] == "%" and len(chunk) == 3 and all(c in HEX for c in chunk[1:]):
            decoded += chr(int(chunk[1:], 16))
            pos += 3
        else:
            decoded += raw_path[pos]
            pos += 1
    if decoded != base:
        return raw_path
    rest = raw_path[pos:]
    # aiohttp routes "%2F" as "/": an encoded separator right after the base is one too.
    return "/" + rest[3:] if rest[:3].upper() == "%2F" else rest


HEX = frozenset("0123456789abcdefABCDEF")


def _from_reply(reply: Reply) -> web.Response:
    return web.Response(status=reply.status, body=reply.body, headers=dict(reply.headers))


class DevServer:
    """Builds the aiohttp application for one loaded app, store and engine."""

    def __init__(self, app: LoadedApp, engine: Engine, management: ManagementApi,
                 bind_host: str = "127.0.0.1", max_body: int | None = None) -> None:
        self.app, self.engine, self.management = app, engine, management
        self.policy = guard.HostPolicy.for_bind(bind_host)
        self.cors = guard.CorsPolicy.for_app(app.directory)
        self.max_body = body_limit() if max_body is None else max_body
        self.rpc_origin = ""
        self._bindings: dict[str, str] = {}

    def binding_for(self, origin: str) -> str:
        binding = self._bindings.get(origin)
        if binding is None:
            binding = self.management.binding(origin, self.rpc_origin or origin)
            self._bindings[origin] = binding
        return binding

    def build(self) -> web.Application:
        web_app = web.Application(client_max_size=self.max_body,
                                  middlewares=[connections.head_middleware,
                                               guard.middleware(self.policy, self.is_app_route,
                                                                self.cors)])
        Dashboard(self.app, self.management.store, self.management,
                  self.engine.forget).register(web_app)
        # "[\s\S]*", not ".*": aiohttp matches the decoded path, where "%0A" is a newline.
        tail = "/{tail:[\\s\\S]*}"
        for base in (RPC_PATH, WEBHOOK_PATH):
            web_app.router.add_route("*", base + tail,
                                     functools.partial(self.serve_management, base))
        web_app.router.add_get("/admin/host/status", self.serve_status)
        prefix = f"/{self.app.route_prefix}" if self.app.route_prefix else ""
        web_app.router.add_route("*", prefix + tail, self.serve_function)
        return web_app

    def is_app_route(self, request: web.Request) -> bool:
        """Whether aiohttp routed ``request`` to the app's functions (decided on the decoded
        path, exactly as routed: :mod:`devhost.host.guard` applies its rule after routing)."""
        return request.match_info.handler == self.serve_function

    async def serve_status(self, request: web.Request) -> web.Response:
        return web.json_response({"state": "Running", "functions": len(self.app.http)})

    async def read_body(self, request: web.Request) -> bytes | web.Response:
        """The request's body, or the 413 reply when it is larger than :attr:`max_body` (a
        declared ``Content-Length`` is refused before anything is read, a chunked body once
        the limit is reached), or the 408 reply when it arrives slower than Kestrel's minimum
        data rate (:func:`devhost.host.connections.read_body`)."""
        declared = request.content_length
        if declared is not None and declared > self.max_body:
            return _too_large(self.max_body, declared)
        try:
            body = await connections.read_body(request, self.max_body)
        except web.HTTPRequestEntityTooLarge:
            return _too_large(self.max_body, None)
        if body is None:
            response = web.json_response(
                {"error": f"the request body arrived slower than "
                          f"{connections.MIN_BODY_RATE:g} bytes/s (after "
                          f"{connections.BODY_GRACE:g} s), the Functions host's minimum"},
                status=408)
            response.force_close()
            return response
        return body

    async def serve_management(self, base: str, request: web.Request) -> web.Response:
        body = await self.read_body(request)
        if isinstance(body, web.Response):
            return body
        tail = raw_tail(request.rel_url.raw_path, base)
        reply = await self.management.serve(request.method, tail, request.query,
                                            request.headers, body,
                                            f"{request.scheme}://{request.host}",
                                            str(request.url))
        return _from_reply(reply)

    async def serve_function(self, request: web.Request) -> web.Response:
        raw = request.rel_url.raw_path
        prefix = f"/{self.app.route_prefix}" if self.app.route_prefix else ""
        relative = raw_tail(raw, prefix)
        allowed: set[str] = set()
        for fn in self.app.http:
            values = fn.route.match(relative)
            if values is None:
                continue
            if fn.methods is not None and request.method not in fn.methods:
                allowed |= fn.methods
                continue
            return await self._invoke(fn, values, request)
        if allowed:
            return web.json_response(
                {"error": f"method {request.method} is not allowed here; "
                          f"use {', '.join(sorted(allowed))}"},
                status=405, headers={"Allow": ", ".join(sorted(allowed))})
        return web.json_response({"error": f"no function is routed at {raw}"}, status=404)

    async def _invoke(self, fn: HttpFunction, values: dict[str, str],
                      request: web.Request) -> web.Response:
        if fn.unsupported:
            return web.json_response(
                {"error": f"function {fn.name} uses bindings devhost does not support: "
                          f"{', '.join(fn.unsupported)}"}, status=501)
        body = await self.read_body(request)
        if isinstance(body, web.Response):
            return body
        origin = f"{request.scheme}://{request.host}"
        req = func.HttpRequest(method=request.method, url=str(request.url),
                               headers=dict(request.headers), params=dict(request.query),
                               route_params=values, body=body)
        kwargs: dict[str, Any] = {fn.trigger_param: req}
        if fn.client_param:
            kwargs[fn.client_param] = self.binding_for(origin)
        invocation = hostlog.Invocation(fn.name, hostlog.HTTP_REASON)
        if fn.wants_context:
            kwargs["context"] = InvocationContext(invocation.id, fn.name, self.app.directory)
        try:
            if fn.is_async:
                result = await fn.user_function(**kwargs)
            else:
                result = await asyncio.get_running_loop().run_in_executor(
                    None, hostlog.in_context(functools.partial(fn.user_function, **kwargs)))
            response = _to_response(result)
        except Exception as exc:
            # The real host answers an unhandled function exception with a bare 500.
            invocation.failed(exc)
            return web.Response(status=500)
        invocation.succeeded()
        return response
