"""devhost.core.payloads: JSON in as strict as the host's reader, out always valid JSON."""
from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, strategies as st

from devhost.core.payloads import MAX_DEPTH, nests_deeper_than, parse_strict, read_stored


def test_values_user_code_stored_with_nan_or_infinity_read_back_as_valid_json() -> None:
    # A Python orchestrator's json.dumps writes these; Newtonsoft shows them as strings.
    stored = '{"x": NaN, "y": [Infinity, -Infinity, 1e999, -1e999, 1.5], "z": "NaN"}'
    value = read_stored(stored)
    assert value == {"x": "NaN", "y": ["Infinity", "-Infinity", "Infinity", "-Infinity", 1.5],
                     "z": "NaN"}
    json.dumps(value, allow_nan=False)  # what every status answer must be
    assert read_stored(None) is None
    assert read_stored('[1, 2.25, {"a": null}]') == [1, 2.25, {"a": None}]


@pytest.mark.parametrize("text", [b"NaN", b"[Infinity]", b'{"a": -Infinity}', b"1e999",
                                  b"[1, -2e400]", b"[" * 65 + b"]" * 65, b"{bad", b"\xff"])
def test_strict_parsing_refuses_what_the_host_reader_or_a_status_read_cannot_take(
        text: bytes) -> None:
    with pytest.raises(ValueError):
        parse_strict(text)


def test_depth_is_decided_on_the_text_with_strings_and_escapes_ignored() -> None:
    assert not nests_deeper_than(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, MAX_DEPTH)
    assert nests_deeper_than(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), MAX_DEPTH)
    assert nests_deeper_than(b'{"a":' * 65 + b"1" + b"}" * 65, 64)
    # Brackets inside strings, escaped quotes included, are text.
    text = json.dumps(["[" * 200, '\\"' + "{" * 200, '"]]]'], ensure_ascii=False).encode()
    assert not nests_deeper_than(text, 1)
    assert parse_strict(text) == json.loads(text)
    # Unbalanced text is left to the parser, which says what is wrong.
    assert not nests_deeper_than(b"[" * 100, 64)
    with pytest.raises(ValueError):
        parse_strict(b"[" * 100)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\a'),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                 max_size=3),
    max_leaves=40)


@given(JSON_VALUES, st.integers(0, 8))
def test_the_depth_decided_on_the_text_is_the_values_depth(value: Any, limit: int) -> None:
    assert nests_deeper_than(json.dumps(value).encode(), limit) == (_depth(value) > limit)
