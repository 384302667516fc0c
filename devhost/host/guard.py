"""Who may talk to devhost: the Host rule (DNS rebinding) and the Origin rule (cross-site requests).

The rule, applied to every request after routing (so it sees exactly the route aiohttp chose,
however the path was spelled: ``%64``, ``%2F``, ``%2e%2e``, mixed case):

1. **Host.** The ``Host`` header must name this machine as the developer reaches it: a loopback
   name (``localhost``, ``*.localhost``, ``127.0.0.1``, ``[::1]``), the address devhost was told
   to bind (``--host``) unless that is a wildcard, or a name listed in ``DEVHOST_ALLOWED_HOSTS``
   (comma separated; ``*`` turns the rule off). Any port. Anything else is refused with 403: a
   page on ``evil.example`` whose DNS name is rebound to 127.0.0.1 still sends
   ``Host: evil.example``, so it can neither read the dashboard nor drive any route.
2. **Origin, devhost's own routes** (every route that is not one of the app's HTTP functions:
   the dashboard, ``/durabletask/``, the management webhooks ``/runtime/webhooks/durabletask/``,
   ``/admin/``), any method but GET/HEAD/OPTIONS: a request that carries an ``Origin`` header
   must come from devhost's own origin (same scheme, host and port as its ``Host``), and one
   marked ``Sec-Fetch-Site: cross-site`` or ``same-site`` is refused. A request without
   ``Origin`` is a server-to-server call (the Durable SDK client, curl, scripts following
   ``create_check_status_response`` URLs) and passes: browsers always send ``Origin`` on a
   cross-origin POST, PUT, PATCH or DELETE, so a foreign page cannot forge one without it.
3. **Origin, the app's routes** (``/api/...``), every method, GET included (an app's GET may
   change state, as this project's ``start`` and ``stop`` do): a request whose ``Origin`` is
   neither devhost's own nor allowed by ``Host.CORS`` in ``local.settings.json`` is refused, and
   so is one without ``Origin`` marked ``Sec-Fetch-Site: cross-site`` or ``same-site`` (an
   ``<img>``, a link or a no-cors fetch from another site). ``Host.CORS`` is read as Core Tools
   reads it (comma-separated origins, ``*`` for any; ``CORSCredentials``), and an allowed origin
   gets the CORS answer Core Tools gives it, preflight included, so a local front end on another
   port works. On Azure, function keys (which a foreign page does not have) and the platform's
   CORS play this part; locally keys are not enforced, so this rule does.

Refusals are JSON ``{"error": ...}`` with status 403; devhost sends CORS headers only to origins
``Host.CORS`` allows, so any other page can never read an answer either.
"""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})
CROSS_SITE = frozenset({"cross-site", "same-site"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` names devhost answers; ``allow_any`` turns the Host rule off."""

    names: frozenset[str]
    allow_any: bool = False

    @classmethod
    def for_bind(cls, bind_host: str, extra: str | None = None) -> HostPolicy:
        """The policy for a devhost bound to ``bind_host``; ``extra`` is the
        ``DEVHOST_ALLOWED_HOSTS`` text (read from the environment when None)."""
        if extra is None:
            extra = os.environ.get("DEVHOST_ALLOWED_HOSTS", "")
        listed = {n.strip().lower().strip("[]") for n in extra.split(",") if n.strip()}
        names = set(LOOPBACK_NAMES) | (listed - {"*"})
        if bind_host.lower() not in WILDCARD_BINDS:
            names.add(bind_host.lower().strip("[]"))
        return cls(frozenset(names), allow_any="*" in listed)

    def allows(self, host_header: str | None) -> bool:
        """Whether a request with this ``Host`` header is for us (a missing header is not)."""
        if self.allow_any:
            return True
        if not host_header:
            return False
        return _allowed(self.names, host_header)


@dataclass(frozen=True)
class CorsPolicy:
    """The origins ``Host.CORS`` allows on the app's routes, as Core Tools applies them.

    Core Tools (``Actions/HostActions/Startup.cs`` in Azure/azure-functions-core-tools) splits
    ``Host.CORS`` on commas and configures ASP.NET Core's ``WithOrigins(...).AllowAnyHeader()
    .AllowAnyMethod()``, plus ``AllowCredentials()`` when ``Host.CORSCredentials`` is true.
    ASP.NET compares origins exactly, case-insensitively; ``*`` allows any origin.
    """

    origins: frozenset[str] = frozenset()
    credentials: bool = False

    @property
    def any_origin(self) -> bool:
        return "*" in self.origins

    def allows(self, origin: str | None) -> bool:
        """Whether ``origin`` (an ``Origin`` header) is allowed by ``Host.CORS``."""
        if origin is None or not self.origins:
            return False
        return self.any_origin or origin.strip().lower() in self.origins

    @classmethod
    def from_host_settings(cls, host: Mapping[str, Any] | None) -> CorsPolicy:
        """The policy of a ``local.settings.json`` ``Host`` object (None: no CORS)."""
        host = host or {}
        text = host.get("CORS") or ""
        origins = frozenset(o.strip().lower().rstrip("/") for o in str(text).split(",")
                            if o.strip())
        credentials = str(host.get("CORSCredentials", "")).strip().lower() == "true"
        return cls(origins, credentials and bool(origins))

    @classmethod
    def for_app(cls, directory: str) -> CorsPolicy:
        """``Host.CORS`` / ``Host.CORSCredentials`` of ``<directory>/local.settings.json``; no
        file, or no ``Host`` object, allows no origin. An unreadable file allows none either:
        :func:`devhost.app.loader.load_settings` reports it when the app loads."""
        path = os.path.join(directory, "local.settings.json")
        try:
            with open(path, encoding="utf-8-sig") as fh:
                settings = json.load(fh)
        except (OSError, ValueError):
            return cls()
        host = settings.get("Host") if isinstance(settings, dict) else None
        return cls.from_host_settings(host if isinstance(host, dict) else None)


NO_CORS = CorsPolicy()


@functools.lru_cache(maxsize=1024)
def _allowed(names: frozenset[str], host_header: str) -> bool:
    # Cached: every request pays this check, and a devhost sees a handful of Host values.
    name = _host_name(host_header)
    return name is not None and (name in names or name.endswith(".localhost"))


def _host_name(host_header: str) -> str | None:
    """The lower-cased name part of a ``Host`` header (port and IPv6 brackets removed)."""
    try:
        parts = urlsplit("//" + host_header.strip())
        return (parts.hostname or "").lower() or None
    except ValueError:
        return None


def refusal(request: web.Request, policy: HostPolicy, app_route: bool = False,
            cors: CorsPolicy = NO_CORS) -> str | None:
    """Why ``request`` must be refused under the module's rule, or None if it may pass.

    ``app_route``: the request was routed to one of the app's HTTP functions (rule 3); any
    other route is devhost's own (rule 2).
    """
    host = request.headers.get("Host")
    if not policy.allows(host):
        return (f"devhost does not answer requests for host {host!r}; open it as "
                f"http://localhost:<port>/ or list the name in DEVHOST_ALLOWED_HOSTS")
    if not app_route and request.method.upper() in SAFE_METHODS:
        return None
    site = request.headers.get("Sec-Fetch-Site", "").lower()
    origin = request.headers.get("Origin")
    own_origin = f"{request.scheme}://{host}".lower()
    if origin is not None and origin.strip().lower() == own_origin:
        return None
    if app_route:
        if cors.allows(origin):
            return None
        if origin is None and site not in CROSS_SITE:
            return None
        told = f"origin {origin!r}" if origin is not None else f"a {site} page"
        return (f"requests from {told} may not call the app's functions; only pages served "
                f"by devhost itself ({own_origin}) and origins listed in Host.CORS of "
                f"local.settings.json may")
    if site in CROSS_SITE:
        return f"a {site} request from a browser may not change devhost's state"
    if origin is None:
        return None
    return (f"requests from origin {origin!r} may not change devhost's state; only pages "
            f"served by devhost itself ({own_origin}) may")


def cors_headers(request: web.Request, cors: CorsPolicy) -> dict[str, str]:
    """The CORS response headers for an app-route request from an allowed origin (none for
    any other), as ASP.NET Core's CORS middleware answers under Core Tools' policy."""
    origin = request.headers.get("Origin")
    if not cors.allows(origin):
        return {}
    assert origin is not None
    headers = {"Vary": "Origin"}
    if cors.any_origin and not cors.credentials:
        headers["Access-Control-Allow-Origin"] = "*"
    else:
        headers["Access-Control-Allow-Origin"] = origin
    if cors.credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers


def _preflight(request: web.Request, cors: CorsPolicy) -> web.Response | None:
    """The answer to a CORS preflight from an allowed origin (``AllowAnyMethod`` and
    ``AllowAnyHeader``: what was asked for is allowed), else None."""
    wanted = request.headers.get("Access-Control-Request-Method")
    if request.method != "OPTIONS" or not wanted:
        return None
    headers = cors_headers(request, cors)
    if not headers:
        return None
    headers["Access-Control-Allow-Methods"] = wanted
    asked = request.headers.get("Access-Control-Request-Headers")
    if asked:
        headers["Access-Control-Allow-Headers"] = asked
    return web.Response(status=204, headers=headers)


def middleware(policy: HostPolicy, is_app_route: Callable[[web.Request], bool] = lambda r: False,
               cors: CorsPolicy = NO_CORS) -> Middleware:
    """An aiohttp middleware applying :func:`refusal` to every request, after routing:
    ``is_app_route`` says whether aiohttp routed the request to one of the app's functions."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            request.url  # noqa: B018 (builds the URL every handler uses from Host)
        except ValueError as exc:
            # Kestrel refuses a Host header it cannot parse with 400 before any routing.
            return web.json_response(
                {"error": f"the Host header {request.headers.get('Host')!r} is not a valid "
                          f"host[:port]: {exc}"}, status=400)
        app_route = is_app_route(request)
        problem = refusal(request, policy, app_route, cors)
        if problem is not None:
            return web.json_response({"error": problem}, status=403)
        if not app_route:
            return await handler(request)
        preflight = _preflight(request, cors)
        if preflight is not None:
            return preflight
        response = await handler(request)
        for name, value in cors_headers(request, cors).items():
            response.headers[name] = value
        return response

    return guard
