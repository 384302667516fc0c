"""Pages on another origin, in a real headless Chromium (Playwright), cannot drive devhost: not
through a percent-encoded spelling of devhost's own paths, and not through the app's routes
(``<img>`` GET, ``text/plain`` form post, no-cors fetch), while an origin listed in ``Host.CORS``
of ``local.settings.json`` calls the app and reads its answers, as under Core Tools.

Each attack page reports what it tried by its title; the test then checks devhost's state
through a server-to-server call.
"""
from __future__ import annotations

import http.server
import json
import re
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from devhost.host.process import REPO, DevhostProcess, free_port
from tests.devhost.browser import require_browser
from tests.devhost.support import CAPABILITIES, WEBHOOK, fresh_id, send

pytestmark = pytest.mark.e2e
CHROMIUM = require_browser()

from playwright.sync_api import Browser, expect, sync_playwright  # noqa: E402

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


class _Page(http.server.BaseHTTPRequestHandler):
    """Serves ``html`` (set per server) at every path."""

    html = ""

    def do_GET(self) -> None:
        body = self.html.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Site:
    """A page served from its own origin, ``http://localhost:<port>`` (devhost is on
    ``http://127.0.0.1:<other port>``: another site for the browser)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.handler = type("Handler", (_Page,), {})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def origin(self) -> str:
        return f"http://localhost:{self.port}"

    def visit(self, browser: Browser, html: str) -> str:
        """Load ``html`` from this origin and return the title it ends with (``done ...``)."""
        self.handler.html = html
        context = browser.new_context()
        try:
            page = context.new_page()
            page.goto(self.origin + "/")
            expect(page).to_have_title(re.compile("^done"))
            return page.title()
        finally:
            context.close()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(10)
        self.server.server_close()


@pytest.fixture
def site() -> Iterator[Site]:
    s = Site()
    yield s
    s.close()


def attack_page(posts: list[str], no_cors: list[str], images: list[str]) -> str:
    """A page that form-posts (text/plain) to each of ``posts``, fetches each of ``no_cors``
    with ``mode: "no-cors"`` (POST), and loads each of ``images`` as an ``<img>``."""
    forms = "".join(
        f'<form method=POST enctype="text/plain" target=sink{i} action="{url}">'
        f'<input name=\'{{"reason":"evil","x\' value=\'"}}\'></form><iframe name=sink{i}></iframe>'
        for i, url in enumerate(posts))
    return f"""<!doctype html><body>{forms}<script>
      const loads = [];
      for (const url of {json.dumps(images)}) {{
        const img = new Image();
        loads.push(new Promise(done => {{ img.onload = img.onerror = done; }}));
        img.src = url;
      }}
      for (const url of {json.dumps(no_cors)})
        loads.push(fetch(url, {{method: "POST", mode: "no-cors", body: '"evil"'}}).catch(() => 0));
      const frames = [...document.querySelectorAll("iframe")].map(f =>
        new Promise(done => f.addEventListener("load", done, {{once: true}})));
      document.querySelectorAll("form").forEach(f => f.submit());
      Promise.all(loads.concat(frames)).then(() => {{ document.title = "done"; }});
    </script></body>"""


# ---- devhost's own routes, percent-encoded (issue 19 item 1) -------------------------------------

@pytest.fixture(scope="module")
def capabilities(module_devhost_factory: Callable[..., DevhostProcess]) -> DevhostProcess:
    return module_devhost_factory(CAPABILITIES)


def test_a_page_on_another_origin_cannot_drive_devhost_through_encoded_paths(
        browser: Browser, capabilities: DevhostProcess, site: Site) -> None:
    host = capabilities
    iid = fresh_id("enc")
    assert send(f"{host.url}/api/orchestrators/waiter/{iid}", "POST", body=b'"safe"')[0] == 202
    created = fresh_id("enc-created")
    # "/%64urabletask/" plus 14 characters is as long as "/runtime/webhooks/durabletask": a
    # handler slicing the raw path by that length would find "/instances/..." after it.
    filler = "/%64urabletask/" + "f" * 14
    own = [f"{filler}/instances/{iid}/terminate?reason=evil",
           f"{filler}/instances/{iid}/suspend",
           f"/%64urabletask/instances/{iid}/terminate?reason=evil",
           f"/runtime/webhooks/%64urabletask/instances/{iid}/suspend",
           f"/runtime/webhooks/durabletask/%69nstances/{iid}/terminate",
           f"/%64URABLETASK/instances/{iid}/terminate",
           f"/%2564urabletask/instances/{iid}/terminate",
           f"/runtime%2Fwebhooks%2Fdurabletask/instances/{iid}/terminate",
           f"/api/%2e%2e/durabletask/instances/{iid}/terminate",
           f"/%64urabletask/orchestrators/waiter/{created}",
           f"{filler}/orchestrators/waiter/{created}",
           "/%5Fdevhost/api/instances?createdTimeFrom=2000-01-01T00:00:00Z"]
    urls = [host.url + path for path in own]
    seen: list[tuple[str, int]] = []
    site.handler.html = attack_page(urls, urls, [])
    context = browser.new_context()
    try:
        page = context.new_page()
        page.on("response", lambda r: seen.append((r.url, r.status))
                if r.url.startswith(host.url) else None)
        page.goto(site.origin + "/")
        expect(page).to_have_title(re.compile("^done"))
    finally:
        context.close()
    # Chromium sent the encoded spellings as written, and devhost refused every one.
    assert any("%64urabletask" in url for url, _ in seen), seen
    assert seen and all(status in (403, 404, 405) for _, status in seen), seen
    # What aiohttp routes to devhost's own handlers (however spelled) is refused by the guard.
    assert all(status == 403 for url, status in seen if "%64urabletask/" in url), seen
    _, body = send(f"{host.url}{WEBHOOK}/instances/{iid}")
    assert body["runtimeStatus"] == "Running", body
    assert send(f"{host.url}{WEBHOOK}/instances/{created}")[0] == 404


# ---- the app's routes (issue 19 item 2) ---------------------------------------------------------

FRONT_END_PORT = free_port()


@pytest.fixture(scope="module")
def product(module_devhost_factory: Callable[..., DevhostProcess],
            tmp_path_factory: pytest.TempPathFactory) -> DevhostProcess:
    """The product app, with ``Host.CORS`` allowing one local front end."""
    app = tmp_path_factory.mktemp("app")
    for name in ("function_app.py", "workflow", "host.json"):
        (app / name).symlink_to(REPO / name)
    (app / "local.settings.json").write_text(json.dumps({
        "IsEncrypted": False,
        "Values": {"FUNCTIONS_WORKER_RUNTIME": "python", "WORKFLOW_TIMEOUT_SECONDS": "0"},
        "Host": {"CORS": f"http://localhost:{FRONT_END_PORT}", "CORSCredentials": False}}))
    return module_devhost_factory(Path(app))


def check(host: DevhostProcess, key: str) -> tuple[int, Any]:
    return send(f"{host.url}/api/check/{key}")


def test_a_page_on_another_origin_can_neither_start_nor_stop_runs(
        browser: Browser, product: DevhostProcess, site: Site) -> None:
    never, running = fresh_id("img"), fresh_id("run")
    assert send(f"{product.url}/api/start/{running}", "POST")[0] == 202
    site.visit(browser, attack_page(
        posts=[f"{product.url}/api/stop/{running}"],
        no_cors=[f"{product.url}/api/stop/{running}", f"{product.url}/api/start/{never}-f"],
        images=[f"{product.url}/api/start/{never}", f"{product.url}/api/stop/{running}"]))
    assert check(product, never)[0] == 404
    assert check(product, f"{never}-f")[0] == 404
    status, body = check(product, running)
    assert status == 200 and body["runtimeStatus"] == "Running", body


def test_an_origin_listed_in_host_cors_calls_the_app_and_reads_its_answers(
        browser: Browser, product: DevhostProcess) -> None:
    front_end = Site(FRONT_END_PORT)
    key = fresh_id("cors")
    try:
        title = front_end.visit(browser, f"""<!doctype html><script>
          (async () => {{
            const started = await fetch("{product.url}/api/start/{key}", {{method: "POST"}});
            const stopped = await fetch("{product.url}/api/stop/{key}", {{method: "POST",
              headers: {{"Content-Type": "application/json"}}, body: '{{"why": "done"}}'}});
            const body = await stopped.json();
            document.title = `done ${{started.status}} ${{stopped.status}} ${{body.input}}`;
          }})().catch(e => {{ document.title = "done failed " + e; }});
        </script>""")
    finally:
        front_end.close()
    assert title == f"done 202 202 {key}"
    status, body = check(product, key)
    assert status == 200 and body["runtimeStatus"] in ("Running", "Completed"), body
