"""devhost answers only requests meant for it (devhost.guard): an unexpected Host header is
refused everywhere (DNS rebinding), a foreign origin cannot change devhost's state from a
browser, and server-to-server callers (the Durable SDK client, curl, scripts following
check-status URLs) keep working."""
from __future__ import annotations

import json
from typing import Callable

import pytest
from aiohttp.test_utils import make_mocked_request

from devhost.guard import HostPolicy, refusal
from devhost.process import DevhostProcess
from tests.devhost.support import CAPABILITIES, WEBHOOK, fresh_id, send

LOCAL = HostPolicy.for_bind("127.0.0.1", "")


def refused(method: str, path: str, policy: HostPolicy = LOCAL, **headers: str) -> str | None:
    return refusal(make_mocked_request(method, path, headers=headers), policy)


@pytest.mark.parametrize("host", ["localhost:7071", "127.0.0.1:7071", "[::1]:7071",
                                  "app.localhost:7071", "LOCALHOST", "127.0.0.1"])
def test_loopback_host_names_are_answered(host: str) -> None:
    assert refused("GET", "/_devhost/", Host=host) is None
    assert refused("POST", "/api/start/x", Host=host) is None


@pytest.mark.parametrize("host", ["evil.example:7071", "127.0.0.1.evil.example", "192.168.1.5:7071",
                                  "", "localhost@evil.example", "[::1"])
def test_any_other_host_is_refused_on_every_path(host: str) -> None:
    for method, path in [("GET", "/_devhost/"), ("GET", "/_devhost/api/instances"),
                         ("POST", "/api/start/x"), ("GET", WEBHOOK + "/instances/x"),
                         ("POST", "/durabletask/instances/x/terminate")]:
        assert refused(method, path, Host=host) is not None, (host, path)


def test_bound_address_and_listed_names_are_answered_and_star_turns_the_rule_off() -> None:
    lan = HostPolicy.for_bind("10.0.0.7", "devbox, Example.Test")
    assert refused("GET", "/_devhost/", lan, Host="10.0.0.7:7071") is None
    assert refused("GET", "/_devhost/", lan, Host="devbox:7071") is None
    assert refused("GET", "/_devhost/", lan, Host="example.test") is None
    assert refused("GET", "/_devhost/", lan, Host="other:7071") is not None
    wildcard = HostPolicy.for_bind("0.0.0.0", "")
    assert refused("GET", "/_devhost/", wildcard, Host="0.0.0.0:7071") is not None
    anything = HostPolicy.for_bind("0.0.0.0", "*")
    assert refused("GET", "/_devhost/", anything, Host="whatever:1") is None


@pytest.mark.parametrize("path", [WEBHOOK + "/instances/x/terminate",
                                  "/durabletask/instances/x/raiseEvent/Go",
                                  "/_devhost/api/instances"])
@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT"])
def test_foreign_origins_cannot_change_devhosts_state(path: str, method: str) -> None:
    host = "127.0.0.1:7071"
    assert refused(method, path, Host=host, Origin="http://evil.example") is not None
    assert refused(method, path, Host=host, Origin="null") is not None
    assert refused(method, path, Host=host, Origin="http://localhost:7071") is not None
    assert refused(method, path, Host=host, **{"Sec-Fetch-Site": "cross-site"}) is not None
    assert refused(method, path, Host=host, **{"Sec-Fetch-Site": "same-site"}) is not None
    # The dashboard itself (same origin) and server-to-server calls (no Origin) pass.
    assert refused(method, path, Host=host, Origin="http://127.0.0.1:7071",
                   **{"Sec-Fetch-Site": "same-origin"}) is None
    assert refused(method, path, Host=host) is None


def test_reads_and_the_apps_own_routes_are_left_to_the_same_origin_policy_and_the_app() -> None:
    host = "127.0.0.1:7071"
    assert refused("GET", WEBHOOK + "/instances/x", Host=host, Origin="http://evil.example") is None
    assert refused("POST", "/api/stop/x", Host=host, Origin="http://evil.example") is None


# ---- on a real devhost ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["fastpath", "loopback-http"])
def host(request: pytest.FixtureRequest,
         module_devhost_factory: Callable[..., DevhostProcess]) -> DevhostProcess:
    env = {"DEVHOST_FASTPATH": "0"} if request.param == "loopback-http" else None
    return module_devhost_factory(CAPABILITIES, env=env)


def start_waiter(host: DevhostProcess) -> tuple[str, dict]:
    iid = fresh_id("guard")
    status, urls = send(f"{host.url}/api/orchestrators/waiter/{iid}", "POST", body=b'"g"')
    assert status == 202, urls
    return iid, urls  # type: ignore[return-value]


@pytest.mark.e2e
def test_rebound_host_name_gets_403_json_and_changes_nothing(host: DevhostProcess) -> None:
    iid, _ = start_waiter(host)
    evil = {"Host": f"evil.example:{host.port}"}
    for method, path in [("GET", "/_devhost/"), ("GET", f"/_devhost/api/instances/{iid}"),
                         ("POST", f"{WEBHOOK}/instances/{iid}/terminate"),
                         ("POST", "/api/client/terminate")]:
        status, body = send(host.url + path, method, headers=evil,
                            body=b"{}" if method == "POST" else None)
        assert status == 403 and "evil.example" in body["error"], (path, status, body)
    status, body = send(f"{host.url}{WEBHOOK}/instances/{iid}")
    assert body["runtimeStatus"] in ("Pending", "Running")


@pytest.mark.e2e
def test_foreign_origin_is_refused_while_sdk_client_and_check_status_urls_keep_working(
        host: DevhostProcess) -> None:
    iid, urls = start_waiter(host)
    status, body = send(urls["sendEventPostUri"].replace("{eventName}", "Go"), "POST",
                        headers={"Origin": "http://evil.example",
                                 "Content-Type": "application/json"},
                        body=b'"x"')
    assert status == 403 and "evil.example" in body["error"]
    # The URL create_check_status_response handed out, called by a script (no Origin).
    status, _ = send(urls["suspendPostUri"].replace("{text}", "pause"), "POST")
    assert status == 202
    # The app's own route calling the SDK client (over HTTP to /durabletask/ without the
    # fast path), from a browser page on another origin: the app's business, so served.
    status, body = send(f"{host.url}/api/client/raise_event", "POST",
                        headers={"Origin": "http://evil.example",
                                 "Content-Type": "application/json"},
                        body=json.dumps({"instance_id": iid, "event_name": "Go",
                                    "event_data": "ok"}).encode())
    assert status == 200 and "error" not in body, body
    # Same-origin (the dashboard) is served.
    status, _ = send(urls["resumePostUri"].replace("{text}", "go"), "POST",
                     headers={"Origin": host.url, "Sec-Fetch-Site": "same-origin"})
    assert status == 202
