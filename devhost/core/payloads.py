"""JSON payloads as the host reads them: strict on the way in, tolerant on the way out.

In: a start input or event payload the management API receives must be JSON the host's
Newtonsoft.Json readers would load and every reader can read back: at most
:data:`MAX_DEPTH` levels of arrays/objects (Newtonsoft.Json 13's ``JsonReader.MaxDepth``
default, which ``HttpApiHandler``'s ``JsonConvert.DeserializeObject`` and
``MessagePayloadDataConverter.ConvertToJToken`` in Azure/azure-functions-durable-extension
use), and no NaN/Infinity or number beyond a double's range (Python's ``json`` would store them
as bare ``NaN``/``Infinity``, which is not JSON: the status API, the app's ``check`` and the
dashboard could then no longer read the instance). The depth is checked on the text before any
value is built, so a hostile body costs a few passes over its bytes, not a tree of millions of
objects.

Out: a value user code produced (an orchestrator's output or custom status) may still contain
NaN or Infinity (the Python worker's ``json.dumps`` allows them); :func:`read_stored` shows them
as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, as Newtonsoft.Json writes them by
default (``FloatFormatHandling.String``), so every status answer stays valid JSON.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any

#: Deepest nesting of arrays/objects accepted (Newtonsoft.Json 13's ``MaxDepth`` default).
MAX_DEPTH = 64

# A JSON string literal (the unrolled form of "(?:[^"\\]|\\.)*", linear on any input).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# Keep only brackets, all spelled "[" and "]".
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def nests_deeper_than(text: bytes, limit: int) -> bool:
    """Whether JSON ``text`` nests arrays/objects more than ``limit`` levels deep, decided on
    the text without building any value: each pass of ``bytes.replace`` removes every innermost
    ``[]`` pair, i.e. one level, at C speed. Unbalanced text is not "deeper" (the parser then
    says what is wrong with it)."""
    if text.count(b"[") + text.count(b"{") <= limit:
        return False  # too few brackets to nest that deep (most bodies): no regex pass
    brackets = _STRING.sub(b"", text).translate(_SQUARE, _NOT_BRACKET)
    for _ in range(limit):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return False
        brackets = shorter
    return b"[]" in brackets


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is beyond a double's range")
    return value


def parse_strict(body: bytes) -> Any:
    """The JSON value of ``body`` under the module's input rules.

    Raises: ValueError naming the problem (not UTF-8 JSON, too deep, NaN/Infinity, a number
    beyond a double's range).
    """
    if nests_deeper_than(body, MAX_DEPTH):
        raise ValueError(f"it nests arrays and objects deeper than {MAX_DEPTH} levels "
                         f"(the host's JSON reader limit)")
    try:
        return _STRICT.decode(body.decode(json.detect_encoding(body), "surrogatepass"))
    except RecursionError as exc:  # pragma: no cover - the depth check runs first
        raise ValueError("it nests too deeply") from exc


def _as_text(name: str) -> str:
    return name


def _float_or_text(text: str) -> float | str:
    value = float(text)
    if math.isfinite(value):
        return value
    return "Infinity" if value > 0 else "-Infinity"


def read_stored(text: str | None) -> Any:
    """A stored JSON value for a status answer (None stays None); NaN and infinite numbers
    become the strings Newtonsoft.Json writes for them."""
    if text is None:
        return None
    # The hooks only run for NaN/Infinity and numbers with a fraction or exponent.
    return _STORED.decode(text)


# One decoder each, made once: json.loads with hooks builds a decoder and its scanner per
# call, which was two thirds of the cost of reading a status's three values.
_STRICT = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite)
_STORED = json.JSONDecoder(parse_constant=_as_text, parse_float=_float_or_text)
