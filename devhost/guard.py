"""Who may talk to devhost: the Host rule (DNS rebinding) and the Origin rule (cross-site requests).

The rule, applied to every request before routing:

1. **Host.** The ``Host`` header must name this machine as the developer reaches it: a loopback
   name (``localhost``, ``*.localhost``, ``127.0.0.1``, ``[::1]``), the address devhost was told
   to bind (``--host``) unless that is a wildcard, or a name listed in ``DEVHOST_ALLOWED_HOSTS``
   (comma separated; ``*`` turns the rule off). Any port. Anything else is refused with 403: a
   page on ``evil.example`` whose DNS name is rebound to 127.0.0.1 still sends
   ``Host: evil.example``, so it can neither read the dashboard nor drive any route.
2. **Origin**, for devhost's own endpoints (the dashboard, ``/durabletask/`` and the management
   webhooks ``/runtime/webhooks/durabletask/``) and any method but GET/HEAD/OPTIONS: a request that
   carries an ``Origin`` header must come from devhost's own origin (same scheme, host and port as
   its ``Host``), and one marked ``Sec-Fetch-Site: cross-site`` or ``same-site`` is refused. A
   request without ``Origin`` is a server-to-server call (the Durable SDK client, curl, scripts
   following ``create_check_status_response`` URLs) and passes: browsers always send ``Origin`` on
   a cross-origin POST, PUT, PATCH or DELETE, so a foreign page cannot forge one without it.
   The app's own routes (``/api/...``) get the Host rule only: whether they accept cross-origin
   calls is the app's business, as with ``func start``.

Refusals are JSON ``{"error": ...}`` with status 403; devhost sends no CORS headers, so a foreign
page can never read an answer either.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

#: Paths devhost itself serves (as opposed to the app's routes).
OWN_PREFIXES = ("/_devhost", "/durabletask", "/runtime/webhooks/durabletask", "/admin")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_BINDS = frozenset({"", "0.0.0.0", "::"})

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


def refusal(request: web.Request, policy: HostPolicy) -> str | None:
    """Why ``request`` must be refused under the module's rule, or None if it may pass."""
    host = request.headers.get("Host")
    if not policy.allows(host):
        return (f"devhost does not answer requests for host {host!r}; open it as "
                f"http://localhost:<port>/ or list the name in DEVHOST_ALLOWED_HOSTS")
    path = request.rel_url.raw_path
    own = any(path == p or path.startswith(p + "/") for p in OWN_PREFIXES)
    if not own or request.method.upper() in SAFE_METHODS:
        return None
    site = request.headers.get("Sec-Fetch-Site", "").lower()
    if site in ("cross-site", "same-site"):
        return f"a {site} request from a browser may not change devhost's state"
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    own_origin = f"{request.scheme}://{host}".lower()
    if origin.strip().lower() != own_origin:
        return (f"requests from origin {origin!r} may not change devhost's state; only pages "
                f"served by devhost itself ({own_origin}) may")
    return None


def middleware(policy: HostPolicy) -> Middleware:
    """An aiohttp middleware applying :func:`refusal` to every request."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        problem = refusal(request, policy)
        if problem is not None:
            return web.json_response({"error": problem}, status=403)
        return await handler(request)

    return guard
