"""Finding the browser the dashboard tests drive: Debian's ``chromium`` through Playwright.

``playwright install`` cannot download browsers here, so the tests launch the system Chromium
by path. Without it they are skipped with the command that installs it, never passed; with
``DEVHOST_REQUIRE_BROWSER=1`` (set by ``.ci/run``) a missing browser fails instead.
"""
from __future__ import annotations

import os
import shutil

import pytest

INSTALL = ("apt-get update && apt-get install -y chromium && "
           ".venv/bin/python -m pip install -r requirements-dev.txt")
# Debian's /usr/bin/chromium is a shell wrapper; the binary itself starts faster and quieter.
CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    """The Chromium executable to launch: ``DEVHOST_CHROMIUM``, else the first candidate found."""
    configured = os.environ.get("DEVHOST_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for candidate in CANDIDATES:
        found = candidate if os.path.isabs(candidate) and os.access(candidate, os.X_OK) \
            else shutil.which(candidate)
        if found:
            return found
    return None


def require_browser() -> str:
    """The Chromium path, after checking Playwright imports; skips (or fails when required)
    naming the install command otherwise."""
    problem = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problem = "the playwright package is not installed"
    path = chromium_path()
    if problem is None and path is None:
        problem = "no Chromium executable found"
    if problem is None:
        return path  # type: ignore[return-value]
    message = f"dashboard browser tests need Chromium and Playwright: {problem}; install: {INSTALL}"
    if os.environ.get("DEVHOST_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message, allow_module_level=True)
