"""Hostile keys and bodies against a real devhost: the HTTP edge holds for any input.

Hypothesis sends arbitrary text as the ``{input}`` route segment (percent-encoded, so ``/ \\ ? #``,
spaces, control characters, non-ASCII and over-long values all arrive in the route value) and
arbitrary bytes, broken JSON and valid JSON as the stop body. The allow-list is restated here
from the contract (``ALLOWED``) rather than imported, so the proofs do not share the app's
mistakes.
"""

from __future__ import annotations

import http.client
import json
import re
import string
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devhost.host.process import DevhostProcess
from workflow import openapi

pytestmark = pytest.mark.e2e

ALLOWED = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
"""The contract's allow-list, matched with ``fullmatch``."""
ALLOWED_CHARACTERS = frozenset(string.ascii_letters + string.digits + "_.-")
INSTANCES = "/runtime/webhooks/durabletask/instances?top=1000"
CONTINUATION = "x-ms-continuation-token"
# aiohttp (devhost) refuses request lines over 8190 bytes before any app code runs, as Kestrel
# does on the real host; inputs are shortened to stay clear of that transport limit.
MAX_ENCODED_INPUT = 7000
ROUTES = {"start": ("POST", "GET"), "check": ("GET",), "stop": ("POST", "GET")}
ROUTE_METHODS = [(route, method) for route, methods in ROUTES.items() for method in methods]

PROOF = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body as strict JSON (RFC 8259: no ``NaN``/``Infinity``, which Python would accept)."""
        # A run's output echoes the stop payload, which may nest nearly as deep as the app's own
        # recursion limit; this test's stack is deeper than the app's, so allow some headroom.
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(max(limit, 10_000))
        try:
            return json.loads(self.body, parse_constant=_not_json)
        finally:
            sys.setrecursionlimit(limit)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


@pytest.fixture(scope="module")
def populated(host: DevhostProcess) -> None:
    """Instances in each state, so "unchanged" is checked against a non-empty store."""
    finished, running = fresh_key(), fresh_key()
    for key in (finished, running):
        assert call(host, "start", "POST", key).status == 202
    assert call(host, "stop", "POST", finished, b'{"why": "seed"}').status == 202
    for _ in range(3000):  # steps after the event may still run: until the run has finished
        if call(host, "check", "GET", finished).json()["runtimeStatus"] == "Completed":
            break
        time.sleep(0.01)
    settled(host)


def send(host: DevhostProcess, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> Answer:
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=60)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Answer(
            status=response.status,
            content_type=response.getheader("Content-Type", ""),
            headers={k.lower(): v for k, v in response.getheaders()},
            body=response.read(),
        )
    finally:
        connection.close()


def call(host: DevhostProcess, route: str, method: str, raw: str, body: bytes | None = None,
         content_type: str | None = None) -> Answer:
    headers = {"Content-Type": content_type} if content_type else {}
    return send(host, method, f"/api/{route}/{quote(raw, safe='')}", body, headers)


def store(host: DevhostProcess) -> bytes:
    """Every instance in the store as the management API lists it, all pages concatenated.

    Compared as bytes: a run's output may nest deeper than ``json.loads`` can parse in this
    (already deep) test stack, and bytes equality is the stricter comparison anyway.
    """
    pages: list[bytes] = []
    token: str | None = None
    while True:
        answer = send(host, "GET", INSTANCES, headers={CONTINUATION: token} if token else {})
        assert answer.status == 200, answer
        pages.append(answer.body)
        token = answer.headers.get(CONTINUATION)
        if not token or token == "null":
            return b"\n".join(pages)


def settled(host: DevhostProcess) -> bytes:
    """A snapshot once no run is Pending (a new run's first episode follows within moments)."""
    for _ in range(200):
        snapshot = store(host)
        if b'"runtimeStatus": "Pending"' not in snapshot and snapshot == store(host):
            return snapshot
    raise AssertionError("the store did not settle")


def is_json_answer(answer: Answer) -> bool:
    return answer.content_type.split(";")[0].strip() == "application/json"


def fit_in_url(raw: str) -> str:
    while len(quote(raw, safe="")) > MAX_ENCODED_INPUT:
        raw = raw[: len(raw) // 2]
    return raw


def fresh_key() -> str:
    return "k" + uuid.uuid4().hex


# -- strategies ------------------------------------------------------------------------------

HOSTILE = (
    "/\\?#% \t\r\n\x00\x7f\x1b~:@!$&'()*+,;=<>\"{}|^`[]"
    "\u0430\u0410\uff21\uff10\u2024\u200b\u202e\ufeff\u0130\u00df\u0661\u00e9\U0001f600"
)
valid_keys = st.from_regex(ALLOWED, fullmatch=True)
keys_with_one_hostile_character = st.builds(
    lambda key, at, bad: key[:at] + bad + key[at:],
    valid_keys, st.integers(0, 64), st.sampled_from(HOSTILE),
)
arbitrary_inputs = st.one_of(
    st.text(max_size=80),
    st.text(alphabet=st.sampled_from(sorted(ALLOWED_CHARACTERS) + list(HOSTILE)), max_size=80),
    keys_with_one_hostile_character,
    valid_keys.map(lambda key: key + "\r"),
    st.sampled_from(["", ".", "..", "...", "a" * 65, "_a", "-a", ".a", "a/..", "%2F", "%", "~"]),
    st.text(alphabet=st.sampled_from(sorted(ALLOWED_CHARACTERS) + list(HOSTILE)),
            min_size=65, max_size=3000),
    st.text(min_size=65, max_size=3000),
).map(fit_in_url)
rejected_inputs = arbitrary_inputs.filter(lambda raw: not ALLOWED.fullmatch(raw))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    st.text(max_size=200).map(lambda text: text.encode("utf-8")),
    json_values.map(lambda value: json.dumps(value).encode()),
    json_values.map(lambda value: json.dumps(value, ensure_ascii=False).encode("utf-8")),
    st.sampled_from([b"NaN", b"[Infinity]", b"-Infinity", b"1e999", b"[-1e400]", b"1" * 5000,
                     b'"\\ud800"', b'{"a": "\\udfff"}', b"\xef\xbb\xbf{}", b" \n ", b"{", b"nul"]),
    st.integers(2, 100_000).map(lambda depth: b"[" * depth + b"]" * depth),
    st.integers(2, 100_000).map(lambda depth: b'{"a":' * depth + b"1" + b"}" * depth),
)
content_types = st.sampled_from([None, "application/json", "text/plain", "application/octet-stream"])


# -- proofs ----------------------------------------------------------------------------------


# First in the module, while the store holds little more than ``populated``: each example lists
# it at least three times.
@PROOF
@given(raw=rejected_inputs, route_method=st.sampled_from(ROUTE_METHODS), body=bodies)
def test_rejected_input_never_changes_the_store(
    host: DevhostProcess, populated: None, raw: str, route_method: tuple[str, str], body: bytes
) -> None:
    route, method = route_method
    before = settled(host)
    assert b'"runtimeStatus": "Running"' in before and b'"runtimeStatus": "Completed"' in before
    answer = call(host, route, method, raw, body if route == "stop" else None)
    assert answer.status in (400, 404), (raw, answer)
    assert store(host) == before, raw


@PROOF
@given(raw=arbitrary_inputs, route_method=st.sampled_from(ROUTE_METHODS))
def test_any_input_is_answered_with_json_and_never_a_server_error(
    host: DevhostProcess, raw: str, route_method: tuple[str, str]
) -> None:
    route, method = route_method
    answer = call(host, route, method, raw)
    assert answer.status < 500, (raw, answer)
    assert is_json_answer(answer), (raw, answer)
    body = answer.json()
    if answer.status >= 400:
        assert isinstance(body["error"], str), (raw, answer)


@PROOF
@given(body=bodies, content_type=content_types, target=st.sampled_from(["running", "unknown", "bad"]),
       method=st.sampled_from(ROUTES["stop"]))
def test_any_stop_body_is_answered_with_json_and_never_a_server_error(
    host: DevhostProcess, body: bytes, content_type: str | None, target: str, method: str
) -> None:
    key = fresh_key() if target != "bad" else "bad key"
    if target == "running":
        assert call(host, "start", "POST", key).status == 202
    answer = call(host, "stop", method, key, body, content_type)
    assert answer.status < 500, (key, body[:200], answer)
    assert is_json_answer(answer), (key, body[:200], answer)
    reply = answer.json()
    assert answer.status in documented_statuses("stop", method), (body[:200], answer)
    if answer.status >= 400:
        assert isinstance(reply["error"], str)


def twin(raw: str) -> str:
    """``raw`` with every ASCII letter and digit replaced by another one of the same class.

    The replacement keeps every rule decision (length, first-character class, position and
    identity of the first disallowed character), so a rejection message that does not echo the
    input is byte-identical for ``raw`` and its twin.
    """
    rotate = str.maketrans(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
        "bcdefghijklmnopqrstuvwxyzaBCDEFGHIJKLMNOPQRSTUVWXYZA1234567890",
    )
    return raw.translate(rotate)


def is_ascii_safe(body: bytes) -> bool:
    return all(0x20 <= byte < 0x7F for byte in body)


# Every character a rejection message may contain: its fixed wording, the rule, and character
# names such as ``U+002F SOLIDUS``. Checked on the *decoded* message, where json.dumps's escapes
# are undone, so an echoed raw character (non-ASCII, control, ``/ \ ? #``...) shows up.
MESSAGE_ALPHABET = frozenset(string.ascii_letters + string.digits + " '.,;:()_-+")


def has_disallowed_character(raw: str) -> bool:
    return any(character not in ALLOWED_CHARACTERS for character in raw)


distinctive_rejected_inputs = st.builds(
    lambda left, bad, right: left + bad + right,
    st.from_regex(r"[A-Za-z0-9]{8,20}", fullmatch=True),
    st.text(alphabet=st.sampled_from(HOSTILE), min_size=1, max_size=5) | st.text(min_size=1, max_size=5),
    st.from_regex(r"[A-Za-z0-9_.-]{8,20}", fullmatch=True),
).filter(has_disallowed_character)


@PROOF
@given(raw=distinctive_rejected_inputs, route_method=st.sampled_from(ROUTE_METHODS))
def test_rejected_input_is_never_echoed_verbatim(
    host: DevhostProcess, raw: str, route_method: tuple[str, str]
) -> None:
    route, method = route_method
    answer = call(host, route, method, raw)
    assert answer.status == 400, (raw, answer)
    message = answer.json()["error"]
    assert set(message) <= MESSAGE_ALPHABET, (raw, message)
    assert raw not in message, (raw, answer)


@PROOF
@given(raw=rejected_inputs.filter(has_disallowed_character), route_method=st.sampled_from(ROUTE_METHODS))
def test_rejection_answer_does_not_depend_on_the_inputs_letters_and_digits(
    host: DevhostProcess, raw: str, route_method: tuple[str, str]
) -> None:
    route, method = route_method
    answer = call(host, route, method, raw)
    assert is_json_answer(answer) and is_ascii_safe(answer.body), (raw, answer)
    answer.json()
    assert call(host, route, method, twin(raw)).body == answer.body, raw


def documented_statuses(route: str, method: str) -> set[int]:
    operation = openapi.document()["paths"][f"/{route}/{{input}}"][method.lower()]
    return {int(status) for status in operation["responses"]}


@PROOF
@given(raw=valid_keys, steps=st.lists(st.sampled_from(ROUTE_METHODS), min_size=1, max_size=4),
       body=bodies)
def test_accepted_input_gets_only_documented_statuses(
    host: DevhostProcess, raw: str, steps: list[tuple[str, str]], body: bytes
) -> None:
    # A fresh suffix keeps the key in the allow-list and each example independent of earlier
    # ones (the store outlives examples), so a failure replays the same way.
    raw = f"{raw[:51]}.{uuid.uuid4().hex[:12]}"
    for route, method in steps:
        answer = call(host, route, method, raw, body if route == "stop" else None)
        assert answer.status < 500, (raw, route, method, answer)
        assert answer.status in documented_statuses(route, method), (raw, route, method, answer)
        assert is_json_answer(answer), (raw, answer)
        reply = answer.json()
        if "input" in reply:
            assert reply["input"] == raw, (raw, answer)
        if answer.status == 202:
            assert answer.headers["location"] == f"/api/check/{raw}", (raw, answer)


@pytest.mark.parametrize("raw", ["\n", "key\n", "a\nb"])
def test_newline_in_input_reaches_the_app(host: DevhostProcess, raw: str) -> None:
    answer = call(host, "check", "GET", raw)
    assert (answer.status, is_json_answer(answer)) == (400, True), answer


NESTING_DEPTHS = [*range(2, 40, 7), *range(900, 1001), 1500, 100_000]


@pytest.mark.parametrize("shape", ["array", "object"])
def test_stop_payload_nesting_never_breaks_the_key(host: DevhostProcess, shape: str) -> None:
    """However deep the stop body nests, the answer is documented and the key stays usable.

    The sweep around 1000 covers Python's default recursion limit, where the app's own parse,
    the SDK's re-encoding, the orchestrator's replay and the status read each give out in turn.
    """
    broken = []
    for depth in NESTING_DEPTHS:
        key = fresh_key()
        assert call(host, "start", "POST", key).status == 202
        body = b"[" * depth + b"]" * depth if shape == "array" else b'{"a":' * depth + b"1" + b"}" * depth
        stopped = call(host, "stop", "POST", key, body)
        checked = call(host, "check", "GET", key)
        status = checked.json()["runtimeStatus"] if checked.status == 200 else None
        # A rejected stop (400, or 413 past the payload size limit) leaves the run live (Pending
        # until its first episode has run); an accepted one ended the wait (Running while steps
        # after the event go on).
        live = {"Pending", "Running"}
        expected = {202: {"Running", "Completed"}, 400: live, 413: live}.get(stopped.status, set())
        if stopped.status not in (202, 400, 413) or not is_json_answer(stopped) or status not in expected:
            broken.append((depth, stopped.status, stopped.body[:90], checked.status, status))
    assert broken == [], "\n".join(map(repr, broken))


@pytest.mark.parametrize("body", [b"1e999", b"-1e400", b"[1E309]", b'{"a": 2e308}'])
def test_stop_payload_that_overflows_a_float_never_makes_an_answer_invalid_json(
    host: DevhostProcess, body: bytes
) -> None:
    """Python parses these to infinity and writes them back as ``Infinity``, which is not JSON."""
    key = fresh_key()
    assert call(host, "start", "POST", key).status == 202
    for answer in (call(host, "stop", "POST", key, body), call(host, "check", "GET", key)):
        assert answer.status < 500 and is_json_answer(answer), answer
        try:
            answer.json()
        except ValueError as exc:
            pytest.fail(f"{body!r}: {exc}: {answer.body[-120:]!r}")
