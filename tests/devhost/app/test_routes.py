"""Route templates match like the Functions host's ASP.NET routing (devhost/app/routes.py)."""
from __future__ import annotations

from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devhost.app.routes import RouteTemplate


def _route(templates: list[str], path: str) -> tuple[str, dict[str, str]] | None:
    """The template the host would pick for ``path``: best precedence first, as the loader
    sorts HTTP functions."""
    for template in sorted((RouteTemplate(t) for t in templates), key=lambda r: r.precedence):
        values = template.match(path)
        if values is not None:
            return template.template, values
    return None


def test_literal_segments_match_case_insensitively_and_only_whole_paths() -> None:
    route = RouteTemplate("Items/List")
    assert route.match("/items/list") == {}
    assert route.match("ITEMS/LIST/") == {}
    assert route.match("items/lists") is None
    assert route.match("items/list/more") is None
    assert route.match("items") is None


def test_parameter_takes_exactly_one_segment() -> None:
    route = RouteTemplate("orders/{id}")
    assert route.match("orders/7") == {"id": "7"}
    assert route.match("orders") is None
    assert route.match("orders/7/lines") is None


def test_optional_parameter_may_be_absent() -> None:
    route = RouteTemplate("opt/{x?}")
    assert route.match("opt") == {}
    assert route.match("opt/") == {}
    assert route.match("opt/a") == {"x": "a"}
    assert route.match("opt/a/b") is None


def test_default_value_fills_an_absent_parameter() -> None:
    assert RouteTemplate("page/{n=1}").match("page") == {"n": "1"}
    assert RouteTemplate("page/{n=1}").match("page/4") == {"n": "4"}


@pytest.mark.parametrize("value, ok", [("42", True), ("-3", True), ("2147483647", True),
                                       ("2147483648", False), ("abc", False), ("1.5", False),
                                       ("", False)])
def test_int_constraint_accepts_only_32_bit_integers(value: str, ok: bool) -> None:
    expected = {"id": value} if ok else None
    assert RouteTemplate("items/{id:int}").match(f"items/{value}") == expected


@pytest.mark.parametrize("template, good, bad", [
    ("{v:alpha}", "abc", "ab1"),
    ("{v:bool}", "True", "yes"),
    ("{v:guid}", "0f8fad5b-d9cb-469f-a165-70867728950e", "not-a-guid"),
    ("{v:length(2,3)}", "abc", "abcd"),
    ("{v:range(1,5)}", "5", "6"),
    ("{v:minlength(2)}", "ab", "a"),
    ("{v:regex(^x\\d+$)}", "x12", "y12"),
    ("{v:int:min(10)}", "10", "9"),
])
def test_inline_constraints_filter_values(template: str, good: str, bad: str) -> None:
    route = RouteTemplate(template)
    assert route.match(good) == {"v": good}
    assert route.match(bad) is None


def test_unknown_constraint_is_rejected_when_the_app_is_indexed() -> None:
    with pytest.raises(ValueError, match="unsupported route constraint"):
        RouteTemplate("x/{v:sparkly}")


def test_catch_all_takes_the_rest_of_the_path_including_slashes() -> None:
    route = RouteTemplate("files/{*path}")
    assert route.match("files/a/b/c.txt") == {"path": "a/b/c.txt"}
    assert route.match("files") == {}


def test_several_parameters_in_one_segment() -> None:
    assert RouteTemplate("dl/{file}.{ext}").match("dl/report.pdf") == \
        {"file": "report", "ext": "pdf"}


def test_percent_decoding_keeps_an_encoded_slash_inside_one_value() -> None:
    route = RouteTemplate("orders/{id}")
    assert route.match("orders/a%2Fb") == {"id": "a/b"}
    assert route.match("orders/caf%C3%A9%20au%20lait") == {"id": "café au lait"}
    assert route.match("orders/a/b") is None


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=20))
def test_any_percent_encoded_value_round_trips(value: str) -> None:
    assert RouteTemplate("v/{value}").match("v/" + quote(value, safe="")) == {"value": value}


def test_precedence_literal_then_constrained_then_plain_then_optional_then_catch_all() -> None:
    templates = ["orders/{*rest}", "orders/{id}", "orders/{id:int}", "orders/new",
                 "orders/{id}/{part?}"]
    assert _route(templates, "orders/new") == ("orders/new", {})
    assert _route(templates, "orders/5") == ("orders/{id:int}", {"id": "5"})
    assert _route(templates, "orders/x") == ("orders/{id}", {"id": "x"})
    assert _route(templates, "orders/x/lines") == ("orders/{id}/{part?}",
                                                   {"id": "x", "part": "lines"})
    assert _route(templates, "orders/x/y/z") == ("orders/{*rest}", {"rest": "x/y/z"})


def test_a_shorter_template_beats_a_longer_one_that_only_adds_optional_segments() -> None:
    assert _route(["orders/{*rest}", "orders"], "orders") == ("orders", {})
    assert _route(["orders/{*rest}", "orders"], "orders/1") == ("orders/{*rest}", {"rest": "1"})
