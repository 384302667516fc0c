"""The app directory's two configuration files, read as the host reads them.

``local.settings.json`` ``Values`` reach ``os.environ`` without overriding variables that are
already set (as ``func start`` does); ``host.json`` is parsed strictly, since a broken one must
stop the app from loading rather than silently fall back to defaults. Both the app loader and
the queue tool (``python -m devhost.queues``) read them, so this module imports nothing of
devhost's.
"""
from __future__ import annotations

import json
import os
from typing import Any


class AppLoadError(RuntimeError):
    """The app directory has no loadable v2 function app."""


def load_settings(directory: str) -> dict[str, str]:
    """Apply ``local.settings.json`` ``Values`` to ``os.environ`` (existing variables win).

    Returns the values it read. Raises: AppLoadError for a malformed file.
    """
    path = os.path.join(directory, "local.settings.json")
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8-sig") as fh:
            values = json.load(fh).get("Values") or {}
    except (OSError, ValueError, AttributeError) as exc:
        raise AppLoadError(f"{path} is not valid JSON with a 'Values' object: {exc}") from exc
    for key, value in values.items():
        os.environ.setdefault(str(key), "" if value is None else str(value))
    return {str(k): str(v) for k, v in values.items()}


def read_host_json(directory: str) -> dict[str, Any]:
    """``<directory>/host.json`` parsed; ``{}`` when there is none.

    Raises: AppLoadError when the file is not valid JSON.
    """
    path = os.path.join(directory, "host.json")
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return json.load(fh)
    except ValueError as exc:
        raise AppLoadError(f"{path} is not valid JSON: {exc}") from exc
