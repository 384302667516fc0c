"""The dashboard's HTTP surface (devhost.tools.dashboard): the page with a strict CSP, a fixed set of
files, searches that answer bad parameters with a 400 JSON body, and the same view from every
worker of a two-worker devhost."""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, Callable

import pytest

from devhost.host.process import DevhostProcess
from tests.devhost.support import CAPABILITIES, WEBHOOK, fresh_id

pytestmark = pytest.mark.e2e


def get(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict, Any]:
    req = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw, status, headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, dict(exc.headers)
    try:
        return status, headers, json.loads(raw) if raw else None
    except ValueError:
        return status, headers, raw.decode()


@pytest.fixture(scope="module")
def host(module_devhost_factory: Callable[..., DevhostProcess]) -> DevhostProcess:
    return module_devhost_factory(CAPABILITIES)


def test_page_is_served_with_a_policy_that_allows_only_its_own_files(host: DevhostProcess) -> None:
    status, headers, page = get(f"{host.url}/_devhost/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["X-Content-Type-Options"] == "nosniff"
    csp = headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert '<script src="/_devhost/static/app.js"' in page and "http" not in page.split("<body>")[0]
    for name in ("app.js", "style.css"):
        assert get(f"{host.url}/_devhost/static/{name}")[0] == 200
    status, _, body = get(f"{host.url}/_devhost/static/..%2F__init__.py")
    assert status == 404 and "error" in body
    assert get(f"{host.url}/_devhost/static/index.htm")[0] == 404
    # No third-party code: the script fetches only devhost's own paths.
    script = get(f"{host.url}/_devhost/static/app.js")[2]
    assert "innerHTML" not in script and "http://" not in script and "https://" not in script


def test_info_names_the_hub_and_the_apps_functions(host: DevhostProcess) -> None:
    status, _, info = get(f"{host.url}/_devhost/api/info")
    assert status == 200 and info["taskHub"] == "TestHub"
    assert "waiter" in info["orchestrators"] and "hello" in info["activities"]
    assert {"name": "item", "methods": ["GET"], "route": "/api/items/{id:int}"} in \
        info["httpFunctions"]


@pytest.mark.parametrize("query, problem", [
    ("runtimeStatus=Sleeping", "runtimeStatus 'Sleeping'"),
    ("createdTimeTo=soon", "createdTimeTo 'soon'"),
    ("top=0", "top must be between"),
    ("top=many", "invalid literal"),
    ("after=garbage", "invalid page token"),
])
def test_bad_search_parameters_get_400_with_the_reason(host: DevhostProcess, query: str,
                                                       problem: str) -> None:
    status, _, body = get(f"{host.url}/_devhost/api/instances?{query}")
    assert status == 400 and problem in body["error"]
    if "top" not in query and "after" not in query:
        status, _, body = get(f"{host.url}/_devhost/api/instances?{query}", "DELETE")
        assert status == 400 and problem in body["error"]


def test_instance_detail_has_status_timeline_and_raw_history(host: DevhostProcess) -> None:
    iid = fresh_id("detail")
    assert get(f"{host.url}/api/orchestrators/chain/{iid}", "POST", b'"d"')[0] == 202
    for _ in range(400):
        status, _, detail = get(f"{host.url}/_devhost/api/instances/{iid}")
        if detail["status"]["runtimeStatus"] == "Completed":
            break
        time.sleep(0.02)
    assert detail["status"]["output"] == ["Hello d", "Hi Hello d"]
    assert [e["kind"] for e in detail["timeline"]] == \
        ["started", "activity", "activity", "completed"]
    assert detail["history"][0]["EventType"] == 12  # raw: as stored, OrchestratorStarted first
    status, headers, body = get(f"{host.url}/_devhost/api/instances/{fresh_id('none')}")
    assert status == 404 and "no instance" in body["error"]
    assert headers["Cross-Origin-Resource-Policy"] == "same-origin"


def test_two_workers_show_one_list(devhost_factory: Callable[..., DevhostProcess]) -> None:
    host = devhost_factory(CAPABILITIES, workers=2)
    prefix = fresh_id("workers") + "-"
    for i in range(6):  # new connections: the kernel spreads them over both workers
        assert get(f"{host.url}{WEBHOOK}/orchestrators/waiter/{prefix}{i}", "POST",
                   b'"\\"w\\""')[0] == 202
    for _ in range(4):
        status, _, page = get(f"{host.url}/_devhost/api/instances?instanceIdPrefix={prefix}")
        assert status == 200 and page["total"] == 6
        assert [i["instanceId"] for i in page["instances"]] == \
            [f"{prefix}{i}" for i in range(5, -1, -1)]
