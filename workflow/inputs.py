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

from workflow.rejections import InvalidKey, InvalidPayload

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
every payload that is accepted deliverable and readable back."""


def parse_payload(body: bytes | None) -> Any:
    """The stop event's payload: ``None`` for an empty body, else the body's JSON value.

    Raises:
        InvalidPayload: the body is not UTF-8 JSON, uses NaN/Infinity or a number too large for
            a float (not portable JSON), or nests deeper than ``MAX_PAYLOAD_DEPTH``.
    """
    if not body or not body.strip():
        return None
    try:
        value = json.loads(body.decode("utf-8"), parse_constant=_reject_constant,
                           parse_float=_finite_float)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        reason = "it nests too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise InvalidPayload(f"request body must be empty or valid JSON: {reason}") from exc
    if _depth(value) > MAX_PAYLOAD_DEPTH:
        raise InvalidPayload(
            f"request body must nest arrays and objects at most {MAX_PAYLOAD_DEPTH} levels deep")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            depth += 1
            deepest = max(deepest, depth)
            stack.extend((child, depth) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
