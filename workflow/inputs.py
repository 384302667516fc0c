"""Input rules for business keys, and the key -> instance id derivation.

The key arrives as the ``{input}`` route segment. It becomes part of a Durable instance id, and
the Python client pastes instance ids into host URLs *unquoted*, so the allow-list below is
deliberately narrower than what the host itself accepts (no ``/ \\ ? #``, no control characters,
at most 256 characters, not starting with ``@``): every accepted key is URL-safe as is.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from workflow.rejections import InvalidKey, InvalidPayload, PayloadTooLarge

MAX_KEY_LENGTH = 64
"""Longest accepted key, in characters (all accepted characters are ASCII, so also in bytes)."""

INSTANCE_ID_PREFIX = "workflow-"
"""Instance ids are ``INSTANCE_ID_PREFIX + key``: stable, so every lookup is a point read."""

ALLOWED_DESCRIPTION = (
    f"1 to {MAX_KEY_LENGTH} characters from A-Z a-z 0-9 '_' '.' '-', "
    "starting with a letter or digit"
)

# The key rule, written once. The character classes and the whole expression use only syntax
# that means the same in Python and in ECMA-262 (OpenAPI's dialect), so ``openapi`` anchors
# KEY_EXPRESSION as it is instead of translating a Python pattern.
FIRST_CHARACTERS = "A-Za-z0-9"
LATER_CHARACTERS = FIRST_CHARACTERS + "_.-"
KEY_EXPRESSION = f"[{FIRST_CHARACTERS}][{LATER_CHARACTERS}]{{0,{MAX_KEY_LENGTH - 1}}}"
"""Unanchored regular expression of an accepted key, valid in Python and ECMA-262 alike."""

# \Z rather than $: "$" would also accept a key followed by one trailing newline.
KEY_PATTERN = re.compile(KEY_EXPRESSION + r"\Z")
_FIRST_CHARACTER = re.compile(f"[{FIRST_CHARACTERS}]")
_LATER_CHARACTER = re.compile(f"[{LATER_CHARACTERS}]")


@dataclass(frozen=True)
class WorkflowKey:
    """A validated business key. Keys are case-sensitive: ``Aaron`` and ``aaron`` differ.

    Guarantees: ``value`` matches the allow-list, so ``instance_id`` is a valid, URL-safe
    Durable instance id. Build one with ``parse_key``; the constructor re-checks the rule.
    """

    value: str

    def __post_init__(self) -> None:
        if not isinstance(self.value, str) or not KEY_PATTERN.match(self.value):
            raise InvalidKey(explain_rejection(self.value))

    @property
    def instance_id(self) -> str:
        """The one Durable instance id that belongs to this key."""
        return INSTANCE_ID_PREFIX + self.value


def parse_key(raw: str | None) -> WorkflowKey:
    """Validate a raw route value as a business key.

    Raises:
        InvalidKey: the value is missing, empty, too long, or has a character outside the
            allow-list; the message names the rule (and the character, as ``U+XXXX``).
    """
    if raw is None:
        raise InvalidKey(f"key is missing; a key is {ALLOWED_DESCRIPTION}")
    return WorkflowKey(raw)


def explain_rejection(raw: object) -> str:
    """Say which rule ``raw`` breaks, without echoing any of its characters unescaped."""
    if not isinstance(raw, str):
        return f"key must be text; a key is {ALLOWED_DESCRIPTION}"
    if raw == "":
        return f"key is empty; a key is {ALLOWED_DESCRIPTION}"
    if len(raw) > MAX_KEY_LENGTH:
        return (
            f"key is {len(raw)} characters long; the maximum is {MAX_KEY_LENGTH} "
            f"(a key is {ALLOWED_DESCRIPTION})"
        )
    if not _FIRST_CHARACTER.fullmatch(raw[0]):
        return (
            f"key must start with a letter or digit, not {describe_character(raw[0])}; "
            f"a key is {ALLOWED_DESCRIPTION}"
        )
    for position, character in enumerate(raw):
        if not _LATER_CHARACTER.fullmatch(character):
            return (
                f"key contains disallowed character {describe_character(character)} "
                f"at position {position}; a key is {ALLOWED_DESCRIPTION}"
            )
    return f"key is not allowed; a key is {ALLOWED_DESCRIPTION}"  # pragma: no cover


def describe_character(character: str) -> str:
    """Name one character in plain ASCII, e.g. ``U+002F SOLIDUS``; never the raw character.

    Control characters, lone surrogates and unnamed code points get only their ``U+XXXX``.
    """
    code = f"U+{ord(character):04X}"
    try:
        return f"{code} {unicodedata.name(character)}"
    except ValueError:
        return code


MAX_PAYLOAD_DEPTH = 64
"""Deepest nesting of arrays/objects a stop payload may have. Python's JSON codecs (here, in the
SDK and in the host's replay) recurse per level and fail near 1,000; a generous fixed cap keeps
every payload that is accepted deliverable and readable back (Newtonsoft.Json, the host's JSON
reader, stops at 64 levels by default too)."""

MAX_PAYLOAD_BYTES = 64 * 1024
"""Longest stop payload, in bytes of JSON text (65,536). An Azure Storage queue message cannot be
longer, so the queue stop could never carry more; and the work a body costs stays bounded
(parsing 64 KiB of the worst JSON takes milliseconds), where a 20 MB body of ``[[],[],...]``
held the event loop for seconds and cost hundreds of MB to build. A longer body is refused
before any parsing."""


def parse_payload(body: bytes | None) -> Any:
    """The stop event's payload: ``None`` for an empty body, else the body's JSON value.

    The size and depth are checked on the bytes before any value is built.

    Raises:
        PayloadTooLarge: the body is longer than ``MAX_PAYLOAD_BYTES``.
        InvalidPayload: the body is not UTF-8 JSON, uses NaN/Infinity or a number too large for
            a float (not portable JSON), or nests deeper than ``MAX_PAYLOAD_DEPTH``.
    """
    if not body:
        return None
    if len(body) > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(
            f"request body is {len(body):,} bytes; a stop payload is at most "
            f"{MAX_PAYLOAD_BYTES:,} bytes of JSON"
        )
    if not body.strip():
        return None
    if nests_deeper_than(body, MAX_PAYLOAD_DEPTH):
        raise InvalidPayload(
            f"request body must nest arrays and objects at most {MAX_PAYLOAD_DEPTH} levels deep")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant,
                          parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        reason = "it nests too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidPayload(f"request body must be empty or valid JSON: {reason}") from exc


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


# A JSON string literal (the unrolled form of "(?:[^"\\]|\\.)*": linear on any input).
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SQUARE = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def nests_deeper_than(text: bytes, limit: int) -> bool:
    """Whether JSON ``text`` nests arrays/objects more than ``limit`` levels deep, decided on
    the text without building a value: strings removed, only brackets kept, each
    ``bytes.replace`` pass removes every innermost ``[]`` pair (one level) at C speed. Text
    whose brackets do not balance is not "deeper": the parser then says what is wrong."""
    brackets = _STRING.sub(b"", text).translate(_SQUARE, _NOT_BRACKET)
    for _ in range(limit):
        shorter = brackets.replace(b"[]", b"")
        if len(shorter) == len(brackets):
            return False
        brackets = shorter
    return b"[]" in brackets
