"""The dashboard: a page in the browser to see and drive every instance, served at ``/_devhost/``.

Files: ``devhost/tools/static/`` (plain HTML, CSS and JavaScript; no build step, nothing from a CDN).
The page reads through the small JSON API below and acts through the public management webhooks
(``/runtime/webhooks/durabletask/...``) exactly as any Durable client does, so what works in the
page works with curl.

- ``GET  /_devhost/``: the page; ``GET /_devhost/static/<file>``: its script and style sheet;
- ``GET  /_devhost/api/info``: task hub, orchestrator names, the app's HTTP functions;
- ``GET  /_devhost/api/instances``: a search (``runtimeStatus``, ``name``, ``instanceIdPrefix``,
  ``createdTimeFrom``, ``createdTimeTo``, ``top``, ``after``): a page newest first, the next
  page's token, counts per status and the total;
- ``DELETE /_devhost/api/instances``: purge exactly what the same search matches;
- ``GET  /_devhost/api/instances/{id}``: status (input, output, custom status, times), the
  timeline (:mod:`devhost.tools.timeline`) and the raw history.

Guarantees: bad parameters answer 400 with ``{"error": ...}``; every answer carries
``Cache-Control: no-store``; the page is served with a Content-Security-Policy that allows only
its own script and style (no inline script), on top of :mod:`devhost.host.guard`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from aiohttp import web

from devhost.app.loader import LoadedApp
from devhost.core.store import Store
from devhost.tools import catalog, timeline
from devhost.tools.management import WEBHOOK_PATH, ManagementApi

PATH = "/_devhost"
FILES = Path(__file__).resolve().parent / "static"
_STATIC = {"app.js": "text/javascript", "style.css": "text/css"}
# Every answer: never cached, never sniffed as another type, never readable as a resource
# embedded by a page on another origin.
_NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
             "Cross-Origin-Resource-Policy": "same-origin"}
PAGE_HEADERS = {
    **_NO_STORE,
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                               "base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=_NO_STORE)


def _ok(value: Any) -> web.Response:
    return web.json_response(value, headers=_NO_STORE)


class Dashboard:
    """The dashboard's routes over one store, app and management API."""

    def __init__(self, app: LoadedApp, store: Store, management: ManagementApi,
                 forget: Callable[[str], None]) -> None:
        self.app, self.store, self.management, self.forget = app, store, management, forget

    def register(self, web_app: web.Application) -> None:
        r = web_app.router
        r.add_get(PATH, self.redirect)
        r.add_get(PATH + "/", self.page)
        r.add_get(PATH + "/static/{file}", self.static)
        r.add_get(PATH + "/api/info", self.info)
        r.add_get(PATH + "/api/instances", self.instances)
        r.add_delete(PATH + "/api/instances", self.purge)
        r.add_get(PATH + "/api/instances/{instance_id:[\\s\\S]+}", self.instance)

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(PATH + "/")

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(body=(FILES / "index.html").read_bytes(),
                            content_type="text/html", charset="utf-8", headers=PAGE_HEADERS)

    async def static(self, request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name not in _STATIC:  # a fixed list: nothing else under devhost/ is reachable
            return _error(404, f"no dashboard file {name!r}")
        return web.Response(body=(FILES / name).read_bytes(), content_type=_STATIC[name],
                            charset="utf-8", headers=PAGE_HEADERS)

    async def info(self, request: web.Request) -> web.Response:
        prefix = f"/{self.app.route_prefix}" if self.app.route_prefix else ""
        return _ok({
            "taskHub": self.app.hub_name,
            "orchestrators": sorted(self.app.orchestrators),
            "activities": sorted(self.app.activities),
            "webhookPath": WEBHOOK_PATH,
            "httpFunctions": [{"name": fn.name,
                               "methods": sorted(fn.methods) if fn.methods else None,
                               "route": f"{prefix}/{fn.route.template}"}
                              for fn in self.app.http],
        })

    async def instances(self, request: web.Request) -> web.Response:
        try:
            search = catalog.Search.from_query(request.query)
            top = int(request.query.get("top") or 50)
            rows, token = catalog.page(self.store, search, top, request.query.get("after"))
        except ValueError as exc:
            return _error(400, str(exc))
        found = catalog.counts(self.store, search)
        return _ok({"instances": [r.as_json() for r in rows], "next": token, "counts": found,
                    "total": catalog.summary([s.value for s in search.statuses], found)})

    async def purge(self, request: web.Request) -> web.Response:
        try:
            search = catalog.Search.from_query(request.query)
        except ValueError as exc:
            return _error(400, str(exc))
        return _ok({"instancesDeleted": catalog.purge(self.store, search, self.forget)})

    async def instance(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance_id"]
        inst = self.store.get(instance_id)
        if inst is None:
            return _error(404, f"no instance with id {instance_id!r}")
        events = [json.loads(t) for t in self.store.history(instance_id)]
        status = self.management.status_payload(inst)
        status["parentInstanceId"] = inst.parent_instance_id
        return _ok({"status": status, "timeline": timeline.build(events), "history": events})
