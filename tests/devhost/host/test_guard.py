"""devhost answers only requests meant for it (devhost.host.guard): an unexpected Host header is
refused everywhere (DNS rebinding), a foreign origin cannot change devhost's state from a
browser, and server-to-server callers (the Durable SDK client, curl, scripts following
check-status URLs) keep working."""
from __future__ import annotations

import json
from typing import Callable

import pytest
from aiohttp.test_utils import make_mocked_request

from devhost.host.guard import NO_CORS, CorsPolicy, HostPolicy, refusal
from devhost.host.process import DevhostProcess
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


def test_reads_of_devhosts_own_routes_are_left_to_the_same_origin_policy() -> None:
    host = "127.0.0.1:7071"
    assert refused("GET", WEBHOOK + "/instances/x", Host=host, Origin="http://evil.example") is None


def app_refused(method: str, path: str, cors: CorsPolicy = NO_CORS, **headers: str) -> str | None:
    request = make_mocked_request(method, path, headers={"Host": "127.0.0.1:7071", **headers})
    return refusal(request, LOCAL, app_route=True, cors=cors)


FRONT_END = CorsPolicy.from_host_settings({"CORS": "http://localhost:3000, https://Front.Example",
                                           "CORSCredentials": True})


@pytest.mark.parametrize("method", ["GET", "POST", "HEAD", "PUT", "DELETE"])
def test_the_apps_routes_refuse_cross_site_calls_of_every_method_unless_host_cors_allows_them(
        method: str) -> None:
    # A foreign page: an <img>/link (no Origin, Sec-Fetch-Site), a form post or fetch (Origin).
    assert app_refused(method, "/api/start/x", **{"Sec-Fetch-Site": "cross-site"}) is not None
    assert app_refused(method, "/api/start/x", **{"Sec-Fetch-Site": "same-site"}) is not None
    assert app_refused(method, "/api/stop/x", Origin="http://evil.example") is not None
    assert app_refused(method, "/api/stop/x", Origin="null") is not None
    assert app_refused(method, "/api/stop/x", FRONT_END, Origin="http://localhost:3001") is not None
    # Host.CORS origins (case-insensitively), devhost's own pages and non-browser callers pass.
    assert app_refused(method, "/api/stop/x", FRONT_END, Origin="http://localhost:3000",
                       **{"Sec-Fetch-Site": "same-site"}) is None
    assert app_refused(method, "/api/stop/x", FRONT_END, Origin="https://front.example") is None
    assert app_refused(method, "/api/stop/x", Origin="http://127.0.0.1:7071",
                       **{"Sec-Fetch-Site": "same-origin"}) is None
    assert app_refused(method, "/api/stop/x") is None
    assert app_refused(method, "/api/stop/x", **{"Sec-Fetch-Site": "none"}) is None  # address bar


def test_host_cors_is_read_as_core_tools_reads_it() -> None:
    assert FRONT_END.origins == {"http://localhost:3000", "https://front.example"}
    assert FRONT_END.credentials
    anyone = CorsPolicy.from_host_settings({"CORS": "*"})
    assert anyone.allows("http://whatever:1") and not anyone.credentials
    assert not CorsPolicy.from_host_settings({"CORSCredentials": True}).allows("http://x")
    assert not CorsPolicy.from_host_settings(None).allows("http://localhost:3000")


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
    # fast path): a server-to-server call, served.
    status, body = send(f"{host.url}/api/client/raise_event", "POST",
                        headers={"Content-Type": "application/json"},
                        body=json.dumps({"instance_id": iid, "event_name": "Go",
                                    "event_data": "ok"}).encode())
    assert status == 200 and "error" not in body, body
    # Same-origin (the dashboard) is served.
    status, _ = send(urls["resumePostUri"].replace("{text}", "go"), "POST",
                     headers={"Origin": host.url, "Sec-Fetch-Site": "same-origin"})
    assert status == 202


def _spellings(path: str) -> list[str]:
    """``path`` with devhost's own prefix spelled the ways a browser sends unchanged."""
    assert path.startswith(("/runtime/webhooks/durabletask/", "/durabletask/", "/_devhost/"))
    # "/%64urabletask/" plus 14 characters is as long as "/runtime/webhooks/durabletask".
    filler = "/%64urabletask/" + "f" * 14
    return [
        path.replace("/runtime/webhooks/durabletask", filler).replace("/durabletask", filler, 1),
        path.replace("durabletask/", "%64urabletask/", 1),                 # one letter
        path.replace("durabletask/", "%64%75rabletask/", 1),
        path.replace("durabletask/", "%64URABLETASK/", 1),                 # mixed case
        path.replace("durabletask/", "%2564urabletask/", 1),               # double encoding
        path.replace("/", "%2F").replace("%2F", "/", 1),                   # every separator
        path.replace("/", "%2f", 2).replace("%2f", "/", 1),
        "/api/%2e%2e" + path, "/api/..%2F" + path[1:], "/api/%2E%2E%2F" + path[1:],
        path.replace("_devhost", "%5Fdevhost").replace("/instances", "/%69nstances"),
    ]


@pytest.mark.e2e
def test_devhosts_own_routes_refuse_foreign_origins_however_the_path_is_encoded(
        host: DevhostProcess) -> None:
    iid, _ = start_waiter(host)
    created = fresh_id("guard-created")
    attempts = [("POST", f"{WEBHOOK}/instances/{iid}/terminate?reason=evil"),
                ("POST", f"{WEBHOOK}/instances/{iid}/suspend"),
                ("POST", f"/durabletask/instances/{iid}/raiseEvent/Go"),
                ("POST", f"{WEBHOOK}/orchestrators/waiter/{created}"),
                ("POST", f"/durabletask/orchestrators/waiter/{created}"),
                ("DELETE", f"{WEBHOOK}/instances/{iid}"),
                ("DELETE", "/_devhost/api/instances?createdTimeFrom=2000-01-01T00:00:00Z")]
    for method, path in attempts:
        for spelled in _spellings(path):
            for headers in ({"Origin": "http://evil.example"},
                            {"Sec-Fetch-Site": "cross-site"}):
                status, body = send(host.url + spelled, method, body=b'"evil"',
                                    headers={"Content-Type": "application/json", **headers})
                assert status in (403, 404, 405), (spelled, headers, status, body)
    status, body = send(f"{host.url}{WEBHOOK}/instances/{iid}")
    assert body["runtimeStatus"] in ("Pending", "Running"), body
    assert send(f"{host.url}{WEBHOOK}/instances/{created}")[0] == 404


@pytest.mark.e2e
def test_an_encoded_management_path_reaches_the_operation_it_spells(host: DevhostProcess) -> None:
    # The management tail comes from the route, not from slicing the raw path by the length of
    # the unencoded prefix: "/%64urabletask/..." is the RPC path with "/instances/..." after it.
    iid, _ = start_waiter(host)
    status, body = send(f"{host.url}/%64urabletask/instances/{iid}/suspend", "POST")
    assert status == 202, body
    status, body = send(f"{host.url}/runtime/webhooks/%64urabletask/instances/{iid}")
    assert status == 202 and body["runtimeStatus"] in ("Suspended", "Running"), body


@pytest.mark.e2e
@pytest.mark.parametrize("port", ["99999", "abc", "-1", "7071x"])
def test_a_host_header_with_a_bad_port_is_a_json_400_on_every_path(
        host: DevhostProcess, port: str) -> None:
    iid, _ = start_waiter(host)
    for method, path in [("GET", "/api/env/PATH"), ("POST", "/api/client/raise_event"),
                         ("GET", f"{WEBHOOK}/instances/{iid}"),
                         ("POST", f"{WEBHOOK}/instances/{iid}/terminate"),
                         ("GET", f"/durabletask/instances/{iid}"), ("GET", "/_devhost/api/info")]:
        status, body = send(host.url + path, method, headers={"Host": f"localhost:{port}"},
                            body=b"{}" if method == "POST" else None)
        assert status == 400 and "Host header" in body["error"], (path, status, body)
    assert send(f"{host.url}{WEBHOOK}/instances/{iid}")[1]["runtimeStatus"] == "Running"
