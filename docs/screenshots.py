"""Regenerate the screenshots docs/dashboard-and-cli.md shows (docs/dashboard.png,
docs/dashboard-instance.png).

Usage: ``.venv/bin/python docs/screenshots.py`` (needs Chromium; see tests/devhost/browser.py).
Starts its own devhost on a temporary database with the test app of tests/devhost/apps, runs a
few orchestrations of each kind, and captures the list and one instance at 1280x800.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from devhost.host.process import DevhostProcess  # noqa: E402
from tests.devhost.browser import chromium_path  # noqa: E402
from tests.devhost.support import CAPABILITIES, WEBHOOK  # noqa: E402


def post(url: str, body: object = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else {}


def main() -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        host = DevhostProcess(CAPABILITIES, Path(tmp) / "shots.sqlite3").start()
        try:
            runs = [("chain", "ann", "order-1001"), ("fan_out", 5, "batch-7"),
                    ("waiter", "approval", "approval-42"), ("fails", "bad input", "import-3"),
                    ("parent", 21, "order-1002"), ("short_timer", 0.2, "reminder-9"),
                    ("waiter", "approval", "approval-43"), ("catches", "disk full", "sync-5"),
                    ("chain", "bob", "order-1003"), ("waiter", "approval", "approval-44")]
            for name, value, iid in runs:
                post(f"{host.url}/api/orchestrators/{name}/{iid}", value)
                time.sleep(0.05)
            post(f"{host.url}{WEBHOOK}/instances/approval-43/suspend?reason=review")
            post(f"{host.url}{WEBHOOK}/instances/approval-44/terminate?reason=cancelled")
            time.sleep(1.5)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium_path(), headless=True)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(f"{host.url}/_devhost/")
                page.wait_for_selector("#rows tr")
                page.screenshot(path=str(REPO / "docs" / "dashboard.png"))
                page.goto(f"{host.url}/_devhost/#/instance/order-1002")
                page.wait_for_selector("#timeline tr.kind-subOrchestration")
                page.screenshot(path=str(REPO / "docs" / "dashboard-instance.png"))
                browser.close()
        finally:
            host.stop()


if __name__ == "__main__":
    main()
