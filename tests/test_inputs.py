"""Input rules: which keys are accepted, and what a rejection says."""

from __future__ import annotations

import json
import unicodedata
from urllib.parse import quote

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from workflow.errors import InvalidKey, InvalidPayload, PayloadTooLarge
from workflow.inputs import (
    INSTANCE_ID_PREFIX,
    MAX_KEY_LENGTH,
    MAX_PAYLOAD_BYTES,
    MAX_PAYLOAD_DEPTH,
    WorkflowKey,
    parse_key,
    parse_payload,
)

HOST_MAX_INSTANCE_ID = 256


def assert_host_accepts_instance_id(instance_id: str) -> None:
    """The host's own rules (DurableClient.cs), plus URL-safety: the Python client pastes
    instance ids into URLs unquoted."""
    assert 0 < len(instance_id) <= HOST_MAX_INSTANCE_ID
    assert not instance_id.startswith("@")
    assert not any(c in instance_id for c in "/\\?#")
    assert not any(unicodedata.category(c) == "Cc" for c in instance_id)
    assert quote(instance_id, safe="") == instance_id


def assert_safe_message(message: str) -> None:
    """Printable ASCII only: raw control or exotic characters are never echoed."""
    assert message.isascii() and message.isprintable(), message


@pytest.mark.parametrize("raw", ["aaron", "A", "0", "order-42", "a.b_c-d", "x" * MAX_KEY_LENGTH])
def test_allowed_keys_map_to_prefixed_instance_id(raw: str) -> None:
    key = parse_key(raw)
    assert key.value == raw
    assert key.instance_id == INSTANCE_ID_PREFIX + raw
    assert_host_accepts_instance_id(key.instance_id)


def test_keys_are_case_sensitive() -> None:
    assert parse_key("Aaron").instance_id != parse_key("aaron").instance_id


def test_key_is_frozen() -> None:
    key = parse_key("aaron")
    with pytest.raises(AttributeError):
        key.value = "other"  # type: ignore[misc]


def test_constructing_a_key_directly_enforces_the_rule() -> None:
    with pytest.raises(InvalidKey):
        WorkflowKey("a/b")


def test_missing_key_is_rejected() -> None:
    with pytest.raises(InvalidKey, match="missing"):
        parse_key(None)


def test_empty_key_is_rejected_as_empty() -> None:
    with pytest.raises(InvalidKey, match="key is empty"):
        parse_key("")


def test_overlong_key_is_rejected_with_the_limit() -> None:
    with pytest.raises(InvalidKey, match=f"65 characters long; the maximum is {MAX_KEY_LENGTH}"):
        parse_key("x" * (MAX_KEY_LENGTH + 1))


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ("a b", "U+0020 SPACE"),
        ("a/b", "U+002F SOLIDUS"),
        ("a\\b", "U+005C REVERSE SOLIDUS"),
        ("a?b", "U+003F QUESTION MARK"),
        ("a#b", "U+0023 NUMBER SIGN"),
        ("a\x00b", "U+0000"),
        ("a\nb", "U+000A"),
        ("a\x1bb", "U+001B"),
        ("aé", "U+00E9 LATIN SMALL LETTER E WITH ACUTE"),
        ("a\ud800", "U+D800"),
    ],
)
def test_disallowed_character_is_named_by_code_point(raw: str, named: str) -> None:
    with pytest.raises(InvalidKey) as caught:
        parse_key(raw)
    message = str(caught.value)
    assert f"disallowed character {named} at position 1" in message
    assert_safe_message(message)


def test_trailing_newline_is_rejected() -> None:
    # re's "$" matches before a final newline; the rule must not.
    with pytest.raises(InvalidKey, match="U\\+000A"):
        parse_key("aaron\n")


@pytest.mark.parametrize("raw", ["@entity", "-a", ".hidden", "_a"])
def test_key_must_start_with_letter_or_digit(raw: str) -> None:
    with pytest.raises(InvalidKey, match="must start with a letter or digit"):
        parse_key(raw)


@given(st.text(max_size=300))
@example("@x")
@example("a" * 257)
@example("a\x7f")
@example("a\u2028")
def test_any_string_is_accepted_safely_or_rejected_with_the_rule(raw: str) -> None:
    try:
        key = parse_key(raw)
    except InvalidKey as exc:
        message = str(exc)
        assert_safe_message(message)
        assert "a key is 1 to 64 characters" in message or "key is missing" in message
        assert any(
            rule in message
            for rule in ("key is empty", "characters long", "must start with", "disallowed character")
        )
    else:
        assert key.instance_id == INSTANCE_ID_PREFIX + raw
        assert_host_accepts_instance_id(key.instance_id)


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", fullmatch=True))
def test_every_key_matching_the_allow_list_is_accepted(raw: str) -> None:
    assert parse_key(raw).value == raw


# -- stop payloads ---------------------------------------------------------------------------


@pytest.mark.parametrize("body, value", [
    (b"", None), (b"  \n", None), (b"null", None), (b'{"a": [1, 2.5, "x"]}', {"a": [1, 2.5, "x"]}),
    (b'"text"', "text"), (b"1e308", 1e308),
])
def test_empty_or_json_body_is_the_payload(body: bytes, value: object) -> None:
    assert parse_payload(body) == value


@pytest.mark.parametrize("body", [
    b"{bad", b"\xff\xfe", b'{"a": NaN}', b"Infinity", b"1e999", b"[-1e400]", b'{"a": 2e308}',
])
def test_non_json_or_non_finite_body_is_invalid(body: bytes) -> None:
    with pytest.raises(InvalidPayload, match="valid JSON"):
        parse_payload(body)


def test_payload_nesting_is_capped_at_the_documented_depth() -> None:
    at_limit = b"[" * MAX_PAYLOAD_DEPTH + b"]" * MAX_PAYLOAD_DEPTH
    assert parse_payload(at_limit) is not None
    for depth in (MAX_PAYLOAD_DEPTH + 1, 980, 10_000):
        with pytest.raises(InvalidPayload, match="deep"):
            parse_payload(b'{"a":' * depth + b"1" + b"}" * depth)
    # Brackets inside strings are text, not nesting (escaped quotes included).
    text = json.dumps(["[" * 100, '\\"' + "{" * 100]).encode()
    assert parse_payload(text) == json.loads(text)


def test_a_payload_past_the_size_limit_is_refused_before_it_is_parsed() -> None:
    at_limit = json.dumps("x" * (MAX_PAYLOAD_BYTES - 2)).encode()
    assert len(at_limit) == MAX_PAYLOAD_BYTES
    assert parse_payload(at_limit) == "x" * (MAX_PAYLOAD_BYTES - 2)
    for body in (at_limit + b" ", b"[" + b"[]," * 7_000_000 + b"[]]", b" " * (MAX_PAYLOAD_BYTES + 1)):
        with pytest.raises(PayloadTooLarge, match="65,536 bytes"):
            parse_payload(body)


def test_integers_beyond_a_float_are_kept_exactly_up_to_pythons_digit_limit() -> None:
    huge = 10 ** 400
    assert parse_payload(str(huge).encode()) == huge
    with pytest.raises(InvalidPayload):
        parse_payload(b"1" * 5000)
    with pytest.raises(InvalidPayload):
        parse_payload(b"1e999")


def test_a_key_of_exactly_the_maximum_length_is_judged_by_its_characters() -> None:
    with pytest.raises(InvalidKey, match="disallowed character U\\+002F SOLIDUS at position 63"):
        parse_key("a" * 63 + "/")


def test_payload_errors_say_what_is_wrong() -> None:
    with pytest.raises(InvalidPayload, match="NaN is not valid JSON"):
        parse_payload(b"NaN")
    with pytest.raises(InvalidPayload, match="number 1e999 is out of range"):
        parse_payload(b"1e999")
    with pytest.raises(InvalidPayload, match="Expecting property name"):
        parse_payload(b"{bad")


def test_payload_nesting_beyond_the_parser_says_it_nests_too_deeply() -> None:
    # Unbalanced, so the depth check leaves it to the parser, which recurses until it gives up.
    with pytest.raises(InvalidPayload, match=r"it nests too deeply$"):
        parse_payload(b"[" * 30_000)
