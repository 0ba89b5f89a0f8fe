"""Parameter declarations: parsing per kind, bounds, the `allowed()` wording, render/parse."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sseproxy.params import REQUIRED, Param, ParamError, render_value


def param(kind: Any, **options: Any) -> Param:
    return Param("knob", kind, "A knob.", **options)


# -- parse, per kind ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "given_value", "parsed"),
    [
        ("duration", "250ms", 0.25),
        ("duration", "2m", 120.0),
        ("size", "4KiB", 4096),
        ("size", "10KB", 10_000),
        ("int", 3, 3),
        ("int", 0, 0),
        ("float", 0.5, 0.5),
        ("float", 1, 1.0),
        ("bool", True, True),
        ("bool", False, False),
        ("str", "hello", "hello"),
        ("str", "", ""),
        (
            "headers",
            {"Retry-After": "5", "X-Odd_Name.v2": ""},
            {"Retry-After": "5", "X-Odd_Name.v2": ""},
        ),
        ("headers", {}, {}),
        ("names", ["Last-Event-ID", "x-b3"], ["Last-Event-ID", "x-b3"]),
        ("names", [], []),
    ],
)
def test_parse_accepts(kind: Any, given_value: Any, parsed: Any) -> None:
    got = param(kind).parse(given_value)
    assert got == parsed
    assert type(got) is type(parsed)


def test_parse_choice() -> None:
    p = param("choice", choices=("close", "reset"), default="close")
    assert p.parse("reset") == "reset"
    with pytest.raises(
        ParamError, match=r"^'end' is not allowed; allowed: one of 'close', 'reset'$"
    ):
        p.parse("end")
    with pytest.raises(ParamError):
        p.parse(["close"])


@pytest.mark.parametrize(
    ("kind", "wrong"),
    [
        ("duration", 60),
        ("duration", 1.5),
        ("duration", True),
        ("size", 4096),
        ("int", 1.5),
        ("int", "3"),
        ("int", True),
        ("float", "0.5"),
        ("float", False),
        ("float", math.inf),
        ("float", math.nan),
        ("bool", 1),
        ("bool", "true"),
        ("str", 3),
        ("str", ["a"]),
        ("headers", "Retry-After: 5"),
        ("headers", [["Retry-After", "5"]]),
        ("names", "Last-Event-ID"),
        ("names", {"Last-Event-ID": "1"}),
    ],
)
def test_parse_refuses_wrong_types(kind: Any, wrong: Any) -> None:
    p = param(kind)
    with pytest.raises(ParamError) as caught:
        p.parse(wrong)
    message = str(caught.value)
    assert message == f"{wrong!r} is not allowed; allowed: {p.allowed()}"
    assert caught.value.field is None  # the caller names the field


@pytest.mark.parametrize(
    ("kind", "text", "why"),
    [
        ("duration", "60", "has no unit"),
        ("duration", "60 parsecs", "unknown unit"),
        ("size", "4096", "has no unit"),
        ("size", "0.5B", "not a whole number of bytes"),
    ],
)
def test_unit_errors_become_param_errors(kind: Any, text: str, why: str) -> None:
    with pytest.raises(ParamError, match=why) as caught:
        param(kind).parse(text)
    assert repr(text) in str(caught.value)


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("headers", {"Bad Name": "x"}, "'Bad Name' is not a header name"),
        ("headers", {"": "x"}, "'' is not a header name"),
        ("headers", {"X-A": 3}, "header X-A: 3 is not a string"),
        ("headers", {"X-A": "a\r\nX-B: b"}, "header X-A: 'a\\r\\nX-B: b' contains CR, LF or NUL"),
        ("headers", {"X-A": "nul\x00"}, "contains CR, LF or NUL"),
        ("names", ["Last Event ID"], "'Last Event ID' is not a header name"),
        ("names", ["ok", 3], "3 is not a header name"),
    ],
)
def test_header_kinds_name_the_bad_entry(kind: Any, value: Any, message: str) -> None:
    with pytest.raises(ParamError) as caught:
        param(kind).parse(value)
    assert message in str(caught.value)


def test_table_kind_accepts_a_table() -> None:
    assert param("table").parse({"from": "30s"}) == {"from": "30s"}


# -- bounds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "value", "message"),
    [
        (
            param("float", minimum=0, maximum=1),
            1.5,
            "1.5 is above the maximum; allowed: a number (>= 0 and <= 1)",
        ),
        (
            param("float", minimum=0, maximum=1),
            -0.25,
            "-0.25 is below the minimum; allowed: a number (>= 0 and <= 1)",
        ),
        (param("int", minimum=1), 0, "0 is below the minimum; allowed: a whole number (>= 1)"),
        (param("int", maximum=10), 11, "11 is above the maximum; allowed: a whole number (<= 10)"),
        (
            param("duration", minimum=0.001),
            "0.5ms",
            "'0.5ms' is below the minimum; allowed: "
            "a duration with a unit such as '250ms' or '15s' (>= 1ms)",
        ),
        (
            param("duration", maximum=3600),
            "2h",
            "'2h' is above the maximum; allowed: "
            "a duration with a unit such as '250ms' or '15s' (<= 60m)",
        ),
        (
            param("size", maximum=16 * 1024**2),
            "17MiB",
            "'17MiB' is above the maximum; allowed: "
            "a size with a unit such as '100B' or '4KiB' (<= 16MiB)",
        ),
    ],
)
def test_bounds_messages(p: Param, value: Any, message: str) -> None:
    with pytest.raises(ParamError) as caught:
        p.parse(value)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("p", "value"),
    [
        (param("float", minimum=0, maximum=1), 0),
        (param("float", minimum=0, maximum=1), 1),
        (param("int", minimum=1), 1),
        (param("duration", minimum=0.001), "1ms"),
        (param("size", maximum=1024), "1KiB"),
    ],
)
def test_bounds_are_inclusive(p: Param, value: Any) -> None:
    p.parse(value)


# -- allowed() and required -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("p", "text"),
    [
        (param("duration"), "a duration with a unit such as '250ms' or '15s'"),
        (param("size"), "a size with a unit such as '100B' or '4KiB'"),
        (param("int"), "a whole number"),
        (param("float"), "a number"),
        (param("bool"), "true or false"),
        (param("str"), "a string"),
        (param("table"), "a table"),
        (param("headers"), 'a table of header names to values, e.g. { "Retry-After" = "5" }'),
        (param("names"), 'a list of header names, e.g. ["Last-Event-ID"]'),
        (param("choice", choices=("a", "b", "c")), "one of 'a', 'b', 'c'"),
        (param("int", minimum=0), "a whole number (>= 0)"),
        (param("float", minimum=0.5, maximum=2.5), "a number (>= 0.5 and <= 2.5)"),
        (param("duration", minimum=0), "a duration with a unit such as '250ms' or '15s' (>= 0s)"),
        (
            param("duration", minimum=1.5),
            "a duration with a unit such as '250ms' or '15s' (>= 1500ms)",
        ),
        (param("size", minimum=4096), "a size with a unit such as '100B' or '4KiB' (>= 4KiB)"),
    ],
)
def test_allowed_text(p: Param, text: str) -> None:
    assert p.allowed() == text


def test_required_and_optional() -> None:
    assert param("int").required
    assert param("int").default is REQUIRED
    assert repr(REQUIRED) == "REQUIRED"
    assert not param("int", default=3).required
    assert not param("int", optional=True).required


def test_param_error_carries_a_field() -> None:
    error = ParamError("give one", field="events")
    assert error.field == "events"
    assert isinstance(error, ValueError)


# -- render_value is the inverse of parse ---------------------------------------------------


def test_render_value_spellings() -> None:
    assert render_value(param("duration"), 0.25) == "250ms"
    assert render_value(param("duration"), 600.0) == "10m"
    assert render_value(param("size"), 4096) == "4KiB"
    assert render_value(param("size"), 1000) == "1000B"
    assert render_value(param("int"), 3) == 3
    assert render_value(param("float"), 0.5) == 0.5
    assert render_value(param("bool"), False) is False
    assert render_value(param("choice", choices=("x",)), "x") == "x"
    assert render_value(param("str"), "s") == "s"
    assert render_value(param("duration"), None) is None


@given(st.integers(min_value=0, max_value=10**7))
def test_render_round_trip_duration(milliseconds: int) -> None:
    p = param("duration")
    value = p.parse(f"{milliseconds}ms")
    assert p.parse(render_value(p, value)) == value


@given(st.integers(min_value=0, max_value=2**50))
def test_render_round_trip_size(size: int) -> None:
    p = param("size")
    assert p.parse(render_value(p, size)) == size


TOKENS = st.text(st.sampled_from("!#$%&'*+-.^_`|~09AZaz"), min_size=1, max_size=6)
HEADER_VALUES = st.text(st.characters(exclude_categories=("Cc",)), max_size=6).map(
    lambda value: value.strip(" \t")
)


@given(
    st.one_of(
        st.tuples(st.just("int"), st.integers()),
        st.tuples(st.just("float"), st.floats(allow_nan=False, allow_infinity=False)),
        st.tuples(st.just("bool"), st.booleans()),
        st.tuples(st.just("str"), st.text()),
        st.tuples(st.just("choice"), st.sampled_from(["close", "reset", "end"])),
        st.tuples(st.just("headers"), st.dictionaries(TOKENS, HEADER_VALUES, max_size=3)),
        st.tuples(st.just("names"), st.lists(TOKENS, max_size=3)),
    )
)
def test_render_round_trip_other_kinds(case: tuple[Any, Any]) -> None:
    kind, value = case
    p = param(kind, choices=("close", "reset", "end"))
    back = p.parse(render_value(p, value))
    assert back == value
    assert type(back) is type(value)


# -- header values HTTP can carry (issue 9 item 6) --------------------------------------------


@pytest.mark.parametrize("bad", ["a\x01b", "\x7f", "a\x1fb", "a\x0bb", "\x1b[31m"])
def test_header_values_with_control_characters_are_refused(bad: str) -> None:
    with pytest.raises(ParamError, match="contains the control character") as caught:
        param("headers").parse({"X-A": bad})
    assert str(caught.value).startswith("header X-A: ")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("bad", [" lead", "trail ", "\tx", "x\t", " "])
def test_header_values_with_outer_whitespace_are_refused(bad: str) -> None:
    with pytest.raises(ParamError, match="starts or ends with a space or tab"):
        param("headers").parse({"X-A": bad})


@pytest.mark.parametrize("good", ["", "a b", "a\tb", "é ü", "text/event-stream; charset=utf-8"])
def test_header_values_http_allows_are_kept(good: str) -> None:
    assert param("headers").parse({"X-A": good}) == {"X-A": good}


@pytest.mark.parametrize("name", ["Content-Length", "transfer-encoding", "TRANSFER-ENCODING"])
def test_framing_headers_are_refused_in_both_kinds(name: str) -> None:
    for kind, value in (("headers", {name: "5"}), ("names", [name])):
        with pytest.raises(ParamError, match=f"^{name} frames the message: the proxy writes it"):
            param(kind).parse(value)


def test_messages_cut_long_and_deep_values_short() -> None:
    long = "x" * 1_000_000
    with pytest.raises(ParamError) as caught:
        param("int").parse(long)
    assert len(str(caught.value)) < 200
    deep: Any = 1
    for _ in range(100_000):
        deep = {"a": deep}
    for kind in ("duration", "str", "int"):
        with pytest.raises(ParamError) as caught:  # no RecursionError from repr()
            param(kind).parse(deep)
        assert str(caught.value).startswith("{'a': {'a': {...}}} is not allowed")


def test_a_header_given_twice_in_other_cases_is_refused() -> None:
    with pytest.raises(ParamError, match=r"^Host and host are the same header"):
        param("headers").parse({"Host": "a", "host": "b"})
