"""Helpers for the devhost end-to-end tests: a small HTTP client and deadline-bounded polling.

Nothing here sleeps a fixed time to "let things happen": :meth:`Api.wait_for` polls the status
API until the wanted status or a deadline, and fails with the last status seen.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Iterable

import aiohttp

APPS = Path(__file__).resolve().parent / "apps"
CAPABILITIES = APPS / "capabilities"
WEBHOOK = "/runtime/webhooks/durabletask"
RPC = "/durabletask"
FINISHED = frozenset({"Completed", "Failed", "Terminated", "Canceled"})


async def wait_for_line(path: Path, timeout: float = 15.0) -> None:
    """Until ``path`` holds a whole line (a witness an activity appends its pid to). The file
    exists from the activity's ``open``, before its line is written: a kill in between would
    erase the first run's trace, so existence alone is not enough."""
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text().endswith("\n")):
        assert time.monotonic() < deadline, f"{path} never got a line"
        await asyncio.sleep(0.02)


def send(url: str, method: str = "GET", *, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """One blocking HTTP request: (status, parsed JSON body, or its text when not JSON)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw, status = resp.read(), resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def fresh_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def stored_history(db: Path, instance_id: str) -> list[dict[str, Any]]:
    """The DTFx history devhost replays, read straight from its SQLite file (read-only, WAL
    allows it while devhost runs). Used to check task ids without relying on the status API's
    ``historyEvents`` shape, which the real host abridges."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT event FROM history WHERE instance_id=? ORDER BY seq",
                            (instance_id,)).fetchall()
    return [json.loads(r[0]) for r in rows]


class Api:
    """Talks to one devhost: the app's own HTTP triggers and the management API."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str) -> None:
        self.session, self.base = session, base_url

    async def request(self, method: str, path: str, *, body: Any = None, data: bytes | None = None,
                      headers: dict[str, str] | None = None
                      ) -> tuple[int, dict[str, str], Any]:
        """One request; ``body`` is sent as JSON, ``data`` raw. The answer body is parsed as
        JSON when it is JSON, else returned as text ("" when empty)."""
        if body is not None:
            data = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        url = path if path.startswith("http") else self.base + path
        async with self.session.request(method, url, data=data, headers=headers) as resp:
            text = await resp.text()
            try:
                parsed: Any = json.loads(text) if text else ""
            except ValueError:
                parsed = text
            return resp.status, dict(resp.headers), parsed

    async def start(self, name: str, value: Any = None, instance_id: str | None = None
                    ) -> dict[str, Any]:
        """Start through the app's starter (SDK ``start_new``); returns the check-status body."""
        path = f"/api/orchestrators/{name}" + (f"/{instance_id}" if instance_id else "")
        status, _, payload = await self.request(
            "POST", path, data=None if value is None else json.dumps(value).encode())
        assert status == 202, (status, payload)
        return payload

    async def client(self, op: str, **kwargs: Any) -> dict[str, Any]:
        """Call ``DurableOrchestrationClient.<op>(**kwargs)`` inside the app (the rpcBaseUrl
        path); returns ``{"result": ...}`` or ``{"error": ..., "errorType": ...}``."""
        status, _, payload = await self.request("POST", f"/api/client/{op}", body=kwargs)
        assert status == 200, (status, payload)
        return payload

    async def status(self, instance_id: str, base: str = WEBHOOK, query: str = ""
                     ) -> tuple[int, dict[str, str], Any]:
        return await self.request("GET", f"{base}/instances/{instance_id}{query}")

    async def wait_for(self, instance_id: str, statuses: Iterable[str] = FINISHED,
                       timeout: float = 10.0, custom_status: Any = None) -> dict[str, Any]:
        """Poll until the instance reaches one of ``statuses`` (and, if given, this custom
        status); fail after ``timeout`` seconds."""
        wanted = frozenset(statuses)
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            code, _, last = await self.status(instance_id)
            if code in (200, 202) and last["runtimeStatus"] in wanted and (
                    custom_status is None or last["customStatus"] == custom_status):
                return last
            await asyncio.sleep(0.02)
        raise AssertionError(f"{instance_id} not in {sorted(wanted)} after {timeout}s: {last}")

    async def raise_raw(self, instance_id: str, event: str, value: Any, base: str = WEBHOOK
                        ) -> tuple[int, Any]:
        code, _, body = await self.request(
            "POST", f"{base}/instances/{instance_id}/raiseEvent/{event}", body=value)
        return code, body
