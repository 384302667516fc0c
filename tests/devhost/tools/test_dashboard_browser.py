"""The dashboard in a real headless Chromium (Playwright): list, filters, paging, timeline, every
action, inline errors, live updates, keyboard use, hostile strings rendered as text, and a page
on another origin that cannot drive devhost.

Waits are Playwright's ``expect`` (polling until a deadline), never fixed sleeps; the page polls
devhost every 250 ms here (``?poll=250``) instead of its default 2 s.
"""
from __future__ import annotations

import http.server
import json
import re
import threading
from typing import Any, Callable, Iterator
from urllib.parse import quote

import pytest

from devhost.host.process import REPO, DevhostProcess, free_port
from tests.devhost.browser import require_browser
from tests.devhost.support import CAPABILITIES, WEBHOOK, fresh_id, send

pytestmark = pytest.mark.e2e
CHROMIUM = require_browser()

from playwright.sync_api import Browser, Page, expect, sync_playwright  # noqa: E402

expect.set_options(timeout=15_000)


# ---- devhost side ---------------------------------------------------------------------------------


def start(host: DevhostProcess, name: str, value: Any, iid: str | None = None) -> str:
    """Start through the app's own starter (the SDK's ``start_new``)."""
    path = f"/api/orchestrators/{name}" + (f"/{quote(iid, safe='')}" if iid else "")
    status, body = send(host.url + path, "POST", body=json.dumps(value).encode())
    assert status == 202, body
    return body["id"]


def status_of(host: DevhostProcess, iid: str) -> dict:
    return send(f"{host.url}{WEBHOOK}/instances/{quote(iid, safe='')}")[1]


@pytest.fixture(scope="module")
def host(module_devhost_factory: Callable[..., DevhostProcess]) -> DevhostProcess:
    return module_devhost_factory(CAPABILITIES)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser: Browser, host: DevhostProcess) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("dialog", lambda dialog: dialog.accept())
    pg.goto(f"{host.url}/_devhost/?poll=250")
    expect(pg.locator("#hub")).to_have_text("task hub TestHub")
    yield pg
    context.close()
    assert errors == [], errors  # no script error on any page


def search_prefix(page: Page, prefix: str) -> None:
    page.fill("#q-prefix", prefix)
    page.press("#q-prefix", "Enter")


def row_ids(page: Page) -> list[str]:
    return page.locator("#rows tr").evaluate_all("rows => rows.map(r => r.dataset.id)")


# ---- the list -------------------------------------------------------------------------------------

def test_list_is_newest_first_with_counts_per_status_and_every_filter(
        page: Page, host: DevhostProcess) -> None:
    prefix = fresh_id("list") + "-"
    waiting = [start(host, "waiter", "w", f"{prefix}w{i}") for i in range(3)]
    chains = [start(host, "chain", "c", f"{prefix}c{i}") for i in range(2)]
    search_prefix(page, prefix)
    expect(page.locator("#rows tr")).to_have_count(5)
    expect(page.locator('.chip[data-status="Completed"] .count')).to_have_text("2")
    expect(page.locator('.chip[data-status="Running"] .count')).to_have_text("3")
    assert row_ids(page) == (waiting + chains)[::-1]

    page.click('.chip[data-status="Completed"]')
    expect(page.locator('.chip[data-status="Completed"]')).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#rows tr")).to_have_count(2)
    assert sorted(row_ids(page)) == sorted(chains)
    expect(page.locator("#total")).to_have_text("2 instances")
    page.click('.chip[data-status="Completed"]')

    page.fill("#q-name", "WAIT")
    page.press("#q-name", "Enter")
    expect(page.locator("#rows tr")).to_have_count(3)
    assert sorted(row_ids(page)) == sorted(waiting)

    page.fill("#q-from", "2100-01-01T00:00")
    page.click("#search button[type=submit]")
    expect(page.locator("#rows tr")).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()
    page.fill("#q-from", "2000-01-01T00:00")
    page.fill("#q-to", "2100-01-01T00:00")
    page.click("#search button[type=submit]")
    expect(page.locator("#rows tr")).to_have_count(3)


def test_paging_walks_every_instance_once(page: Page, host: DevhostProcess) -> None:
    prefix = fresh_id("pages") + "-"
    ids = [start(host, "waiter", "p", f"{prefix}{i:02d}") for i in range(23)]
    page.select_option("#q-top", "10")
    search_prefix(page, prefix)
    expect(page.locator("#total")).to_have_text("23 instances")
    seen: list[str] = []
    for number, size in ((1, 10), (2, 10), (3, 3)):
        expect(page.locator("#page-no")).to_have_text(f"page {number}")
        expect(page.locator("#rows tr")).to_have_count(size)
        seen += row_ids(page)
        if number < 3:
            page.click("#page-older")
    expect(page.locator("#page-older")).to_be_disabled()
    assert seen == ids[::-1]
    page.click("#page-newer")
    expect(page.locator("#page-no")).to_have_text("page 2")
    assert row_ids(page) == ids[::-1][10:20]


def test_list_updates_live_without_reload(page: Page, host: DevhostProcess) -> None:
    prefix = fresh_id("live") + "-"
    search_prefix(page, prefix)
    expect(page.locator("#empty")).to_be_visible()
    iid = start(host, "waiter", "l", f"{prefix}a")
    expect(page.locator(f'#rows tr[data-id="{iid}"] .badge')).to_have_text("Running")
    send(f"{host.url}{WEBHOOK}/instances/{iid}/raiseEvent/Go", "POST", body=b"1",
         headers={"Content-Type": "application/json"})
    expect(page.locator(f'#rows tr[data-id="{iid}"] .badge')).to_have_text("Completed")


# ---- one instance -----------------------------------------------------------------------------------

def test_timeline_shows_activities_timers_sub_orchestrations_and_highlights_failures(
        page: Page, host: DevhostProcess) -> None:
    parent = start(host, "parent", 4, fresh_id("parent"))
    page.goto(f"{host.url}/_devhost/?poll=250#/instance/{parent}")
    expect(page.locator("#i-status")).to_have_text("Completed")
    subs = page.locator("#timeline tr.kind-subOrchestration")
    expect(subs).to_have_count(2)
    expect(subs.nth(0)).to_contain_text("child")
    expect(subs.nth(0)).to_contain_text('"doubled":8')
    expect(subs.nth(0)).not_to_have_class(re.compile(r"\bfailed\b"))
    expect(subs.nth(1)).to_have_class(re.compile(r"\bfailed\b"))
    expect(subs.nth(1)).to_contain_text("child went wrong")
    assert re.search(r"\d+(\.\d+)? (ms|s)", subs.nth(1).locator("td").nth(3).inner_text())
    expect(page.locator("#i-output")).to_contain_text('"doubled": 8')
    expect(page.locator("#i-input")).to_have_text("4")
    expect(page.locator("#raw")).to_contain_text('"EventType": 7', use_inner_text=False)
    # A child instance is one click away, and its own timeline has its activity.
    subs.nth(0).locator("a").click()
    expect(page.locator("#i-name")).to_have_text("child")
    expect(page.locator("#timeline tr.kind-activity")).to_contain_text("double")

    timed = start(host, "short_timer", 0.3, fresh_id("timer"))
    page.goto(f"{host.url}/_devhost/?poll=250#/instance/{timed}")
    expect(page.locator("#i-status")).to_have_text("Completed")
    timer = page.locator("#timeline tr.kind-timer")
    expect(timer).to_contain_text("fired")
    assert re.search(r"\d", timer.locator("td").nth(3).inner_text())

    failing = start(host, "catches", "broken on purpose", fresh_id("catch"))
    page.goto(f"{host.url}/_devhost/?poll=250#/instance/{failing}")
    expect(page.locator("#i-status")).to_have_text("Completed")
    activity = page.locator("#timeline tr.kind-activity")
    expect(activity).to_have_class(re.compile(r"\bfailed\b"))
    expect(activity).to_contain_text("RuntimeError: broken on purpose")


def test_instance_page_updates_live(page: Page, host: DevhostProcess) -> None:
    iid = start(host, "waiter", "live", fresh_id("wlive"))
    page.goto(f"{host.url}/_devhost/?poll=250#/instance/{iid}")
    expect(page.locator("#i-status")).to_have_text("Running")
    expect(page.locator("#i-custom")).to_contain_text('"stage": "waiting"')
    send(f"{host.url}{WEBHOOK}/instances/{iid}/raiseEvent/Go", "POST", body=b'{"v": 1}',
         headers={"Content-Type": "application/json"})
    expect(page.locator("#i-status")).to_have_text("Completed")
    expect(page.locator("#timeline tr.kind-eventRaised")).to_contain_text('{"v":1}')


# ---- actions --------------------------------------------------------------------------------------

def test_start_and_raise_event_from_the_page(page: Page, host: DevhostProcess) -> None:
    iid = fresh_id("ui")
    page.click("#start-panel summary")
    page.select_option("#start-name", "waiter")
    page.fill("#start-id", iid)
    page.fill("#start-input", '{"order": 7}')
    page.click("#start button[type=submit]")
    expect(page.locator("#start-result a")).to_have_text(iid)
    page.click("#start-result a")
    expect(page.locator("#i-status")).to_have_text("Running")
    expect(page.locator("#i-custom")).to_contain_text('"order": 7')  # get_input() decoded it
    page.fill("#raise-name", "Go")
    page.fill("#raise-data", '{"approved": true}')
    page.click("#raise button[type=submit]")
    expect(page.locator("#action-result")).to_have_text("event Go: accepted")
    expect(page.locator("#i-status")).to_have_text("Completed")
    expect(page.locator("#i-output")).to_contain_text('"approved": true')


def test_invalid_json_is_an_inline_error_and_sends_nothing(page: Page, host: DevhostProcess
                                                           ) -> None:
    iid = start(host, "waiter", "j", fresh_id("json"))
    sent: list[str] = []
    page.on("request", lambda r: sent.append(f"{r.method} {r.url}") if r.method != "GET" else None)
    page.click("#start-panel summary")
    page.fill("#start-input", "{order: 7")
    page.click("#start button[type=submit]")
    expect(page.locator("#start-error")).to_contain_text("Input is not valid JSON")
    expect(page.locator("#start-error")).to_contain_text("Nothing was sent")
    page.goto(f"{host.url}/_devhost/?poll=250#/instance/{iid}")
    expect(page.locator("#i-status")).to_have_text("Running")
    page.fill("#raise-name", "Go")
    page.fill("#raise-data", "[1, 2")
    page.click("#raise button[type=submit]")
    expect(page.locator("#action-error")).to_contain_text("Event data is not valid JSON")
    assert sent == []
    assert status_of(host, iid)["runtimeStatus"] == "Running"


def test_suspend_resume_terminate_and_a_refused_action_shows_its_error(
        page: Page, host: DevhostProcess) -> None:
    iid = start(host, "waiter", "ctl", fresh_id("ctl"))
    page.goto(f"{host.url}/_devhost/?poll=250#/instance/{iid}")
    expect(page.locator("#i-status")).to_have_text("Running")
    page.click("#act-suspend")
    expect(page.locator("#i-status")).to_have_text("Suspended")
    page.click("#act-resume")
    expect(page.locator("#i-status")).to_have_text("Running")
    page.fill("#reason", "done by hand")
    page.click("#act-terminate")
    expect(page.locator("#i-status")).to_have_text("Terminated")
    expect(page.locator("#i-output")).to_have_text('"done by hand"')
    expect(page.locator("#timeline tr.kind-terminated")).to_be_visible()
    page.click("#act-terminate")
    expect(page.locator("#action-error")).to_contain_text("410")
    expect(page.locator("#action-error")).to_contain_text("has already finished")


def test_restart_purge_one_and_purge_by_filter(page: Page, host: DevhostProcess) -> None:
    prefix = fresh_id("purge") + "-"
    first = start(host, "chain", "again", f"{prefix}a")
    page.goto(f"{host.url}/_devhost/?poll=250#/instance/{first}")
    expect(page.locator("#i-status")).to_have_text("Completed")
    page.click("#act-restart")  # same id
    expect(page.locator("#action-result")).to_have_text(f"restarted as {first}")
    page.check("#restart-new")
    page.click("#act-restart")
    expect(page).not_to_have_url(re.compile(re.escape(first) + "$"))
    restarted = page.url.rsplit("/", 1)[-1]
    expect(page.locator("#i-id")).to_have_text(restarted)
    expect(page.locator("#i-status")).to_have_text("Completed")
    expect(page.locator("#i-output")).to_contain_text("Hello again")
    page.click("#act-purge")
    expect(page.locator("#view-list")).to_be_visible()
    assert send(f"{host.url}{WEBHOOK}/instances/{restarted}")[0] == 404

    for i in range(3):
        start(host, "waiter", "x", f"{prefix}w{i}")
    search_prefix(page, prefix)
    expect(page.locator("#rows tr")).to_have_count(4)
    page.click("#purge-filter")
    expect(page.locator("#rows tr")).to_have_count(0)
    for iid in [first] + [f"{prefix}w{i}" for i in range(3)]:
        assert send(f"{host.url}{WEBHOOK}/instances/{iid}")[0] == 404


def test_two_workers_serve_one_dashboard(browser: Browser,
                                        devhost_factory: Callable[..., DevhostProcess]) -> None:
    host = devhost_factory(CAPABILITIES, workers=2)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        pg = context.new_page()
        pg.goto(f"{host.url}/_devhost/?poll=250")
        prefix = fresh_id("two") + "-"
        ids = [start(host, "waiter", "t", f"{prefix}{i}") for i in range(4)]
        search_prefix(pg, prefix)
        expect(pg.locator("#rows tr")).to_have_count(4)
        assert row_ids(pg) == ids[::-1]
        pg.locator("#rows a").first.click()
        expect(pg.locator("#i-status")).to_have_text("Running")
        pg.fill("#raise-name", "Go")
        pg.fill("#raise-data", "2")
        pg.click("#raise button[type=submit]")
        expect(pg.locator("#i-status")).to_have_text("Completed")
    finally:
        context.close()


def test_unknown_instance_shows_the_error(page: Page, host: DevhostProcess) -> None:
    page.goto(f"{host.url}/_devhost/?poll=250#/instance/no-such-instance")
    expect(page.locator("#banner")).to_contain_text("404")
    expect(page.locator("#banner")).to_contain_text("no-such-instance")


def test_http_functions_page_calls_the_apps_routes(page: Page, host: DevhostProcess) -> None:
    page.click("#nav-functions")
    form = page.locator('form[data-fn="item"]')
    form.locator('input[data-param="id"]').fill("41")
    form.locator("button").click()
    expect(form.locator(".result")).to_contain_text("200")
    expect(form.locator(".result")).to_contain_text('"id": "41"')


def test_this_apps_workflows_start_check_and_stop_by_business_key(
        browser: Browser, devhost_factory: Callable[..., DevhostProcess]) -> None:
    host = devhost_factory(REPO, env={"WORKFLOW_TIMEOUT_SECONDS": "0"})
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        pg = context.new_page()
        pg.goto(f"{host.url}/_devhost/#/functions")
        key = fresh_id("key")

        def call(function: str, method: str, body: str = "") -> None:
            form = pg.locator(f'form[data-fn="{function}"]')
            form.locator('select[aria-label="method"]').select_option(method)
            form.locator('input[data-param="input"]').fill(key)
            form.locator('input[aria-label="body"]').fill(body)
            form.locator("button").click()

        call("start", "POST")
        result = pg.locator('form[data-fn="start"] .result')
        expect(result).to_contain_text("202")
        expect(result).to_contain_text(f"workflow-{key}")
        call("check", "GET")
        expect(pg.locator('form[data-fn="check"] .result')).to_contain_text('"runtimeStatus": "Running"')
        call("stop", "POST", '{"approved": true}')
        stopped = pg.locator('form[data-fn="stop"] .result')
        expect(stopped).to_contain_text("202")
        expect(stopped).to_contain_text('"outcome": "stopped"')
        call("stop", "POST")
        expect(stopped).to_contain_text("410")
        pg.click("#nav-instances")
        search_prefix(pg, f"workflow-{key}")
        expect(pg.locator("#rows tr .badge")).to_have_text("Completed")
    finally:
        context.close()


# ---- keyboard, hostile strings, other origins -----------------------------------------------------

def test_keyboard_alone_finds_opens_and_leaves_an_instance(page: Page, host: DevhostProcess) -> None:
    prefix = fresh_id("keys") + "-"
    iid = start(host, "waiter", "k", f"{prefix}only")
    page.locator("body").press("/")
    expect(page.locator("#q-prefix")).to_be_focused()
    page.keyboard.type(prefix)
    page.keyboard.press("Enter")
    expect(page.locator("#rows tr")).to_have_count(1)
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.closest('#rows') !== null"):
            break
    expect(page.locator("#rows a")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#i-id")).to_have_text(iid)
    page.keyboard.press("Escape")
    expect(page.locator("#view-list")).to_be_visible()
    chip = page.locator('.chip[data-status="Failed"]')
    chip.focus()
    page.keyboard.press("Enter")
    expect(chip).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#rows tr")).to_have_count(0)


HOSTILE = '<img src=x onerror="window.__pwned=1">'
HOSTILE_SCRIPT = "</pre><script>window.__pwned=2</script><b>bold</b>"


def test_hostile_ids_inputs_events_outputs_and_failures_are_shown_as_text(
        page: Page, host: DevhostProcess) -> None:
    prefix = fresh_id("xss")
    waiting = start(host, "waiter", HOSTILE_SCRIPT, f"{prefix}{HOSTILE}")
    failing = start(host, "fails", HOSTILE_SCRIPT, f"{prefix}-fails")
    send(f"{host.url}{WEBHOOK}/instances/{quote(waiting, safe='')}/raiseEvent/Go", "POST",
         body=json.dumps(HOSTILE).encode(),
         headers={"Content-Type": "application/json"})
    search_prefix(page, prefix)
    expect(page.locator("#rows tr")).to_have_count(2)
    expect(page.locator("#rows a", has_text=HOSTILE)).to_have_count(1)
    page.locator("#rows a").filter(has_text="onerror").click()
    expect(page.locator("#i-id")).to_have_text(waiting)
    expect(page.locator("#i-status")).to_have_text("Completed")
    expect(page.locator("#i-input")).to_have_text(json.dumps(HOSTILE_SCRIPT))
    expect(page.locator("#i-output")).to_contain_text("onerror")
    expect(page.locator("#timeline tr.kind-eventRaised")).to_contain_text(json.dumps(HOSTILE))
    page.goto(f"{host.url}/_devhost/?poll=250#/instance/{failing}")
    expect(page.locator("#i-status")).to_have_text("Failed")
    expect(page.locator("#timeline tr.kind-failed")).to_contain_text("<script>")
    # Nothing was interpreted as markup: no injected element, no script ran.
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main img, main b, main script").count() == 0
    assert page.locator("script").count() == 1


class _EvilPage(http.server.BaseHTTPRequestHandler):
    """Serves one page that tries to drive devhost from another origin."""

    target = ""

    def do_GET(self) -> None:
        html = f"""<!doctype html><body><form id=f method=POST target=sink
          action="{self.target}/raiseEvent/Go"><input name=x value=1></form>
          <iframe name=sink></iframe><script>
          const results = [];
          const tries = [
            fetch("{self.target}/terminate", {{method: "POST", mode: "no-cors"}}),
            fetch("{self.target}/suspend", {{method: "POST"}}),
            fetch("{self.target.split('/runtime')[0]}/_devhost/api/instances", {{method: "DELETE", mode: "no-cors"}}),
          ].map(p => p.then(r => results.push(r.type), e => results.push("blocked")));
          document.getElementById("f").submit();
          Promise.all(tries).then(() => {{ document.title = "done " + results.join(","); }});
          </script></body>"""
        body = html.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_page_from_another_origin_cannot_drive_devhost(browser: Browser,
                                                         host: DevhostProcess) -> None:
    iid = start(host, "waiter", "safe", fresh_id("csrf"))
    _EvilPage.target = f"{host.url}{WEBHOOK}/instances/{iid}"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _EvilPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    context = browser.new_context()
    try:
        refused: list[int] = []
        pg = context.new_page()
        pg.on("response", lambda r: refused.append(r.status) if "/instances" in r.url else None)
        with pg.expect_response(lambda r: "/raiseEvent/" in r.url) as form_post:
            pg.goto(f"http://localhost:{server.server_address[1]}/")
        expect(pg).to_have_title(re.compile("^done "))
        assert form_post.value.status == 403
    finally:
        context.close()
        server.shutdown()
        thread.join(10)
    status = status_of(host, iid)
    assert status["runtimeStatus"] == "Running", status
    assert send(f"{host.url}/_devhost/api/instances?instanceIdPrefix={iid}")[1]["total"] == 1
    assert refused and set(refused) <= {403}, refused
