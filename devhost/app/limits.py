"""The largest request devhost accepts, modelled on the Functions host's request body limit.

The host refuses a request body larger than the app setting ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT``
(bytes; default 100 MB) with 413. devhost applies the same limit to every body it is handed:
HTTP requests to the app's functions and the Durable APIs (:mod:`devhost.host.server`) and the
Durable client's in-process calls (:mod:`devhost.host.fastpath` via
:meth:`devhost.tools.management.ManagementApi.serve`), so a payload is refused the same way with the
fast path on or off.
"""
from __future__ import annotations

import os
from typing import Any, Mapping

#: The Functions host's default request body limit, in bytes (100 MB).
MAX_BODY = 100 * 1024 * 1024
#: The app setting that changes it, as on the host (``local.settings.json`` ``Values`` too).
BODY_LIMIT_SETTING = "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"


def body_limit(environ: Mapping[str, str] = os.environ) -> int:
    """The largest request body devhost accepts: ``FUNCTIONS_REQUEST_BODY_SIZE_LIMIT`` bytes
    when set to a positive integer, else :data:`MAX_BODY`.

    Raises: ValueError when the setting is present but not a positive integer (a typo must not
    silently lift or lower the limit).
    """
    text = (environ.get(BODY_LIMIT_SETTING) or "").strip()
    if not text:
        return MAX_BODY
    if not text.isdigit() or int(text) <= 0:
        raise ValueError(f"{BODY_LIMIT_SETTING} must be a positive number of bytes, "
                         f"not {text!r}")
    return int(text)


def too_large(limit: int, size: int | None) -> dict[str, Any]:
    """The JSON body of the 413 answer; ``size`` is the body's length when known."""
    told = f"of {size:,} bytes " if size is not None else ""
    return {"error": f"the request body {told}exceeds devhost's limit of {limit:,} bytes "
                     f"(the Functions host's {BODY_LIMIT_SETTING}, default {MAX_BODY:,})",
            "limit": limit}
