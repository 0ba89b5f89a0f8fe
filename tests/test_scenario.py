"""Scenario files: every refusal names file, line, fault, field, given and allowed; the rest."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sseproxy import scenario as scenario_module
from sseproxy.errors import ScenarioError
from sseproxy.faults import all_faults
from sseproxy.params import Param, ParamError
from sseproxy.scenario import (
    FaultSpec,
    Match,
    RequestInfo,
    Scenario,
    Window,
    load_scenario,
    parse_scenario,
    preset_names,
    preset_path,
)
from sseproxy.units import parse_duration

SCENARIOS_DIR = Path(__file__).resolve().parent.parent / "scenarios"
KNOWN = ", ".join(all_faults())


def refusal(text: str, file: str = "s.toml") -> ScenarioError:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, file=file)
    return caught.value


def assert_names(error: ScenarioError, *parts: str) -> None:
    message = str(error)
    for part in parts:
        assert part in message, f"{part!r} missing from {message!r}"


# -- the document as a whole ----------------------------------------------------------------


def test_toml_syntax_error_names_file_and_line() -> None:
    error = refusal('[scenario]\nname = "x"\n\n[[faults]]\ntype = "latency\n')
    assert error.file == "s.toml"
    assert_names(error, "s.toml: not valid TOML", "line 5")


def test_unknown_top_level_key() -> None:
    error = refusal('extra = 1\n[scenario]\nname = "x"\n')
    assert_names(error, "s.toml:1:", "field 'extra'", "unknown top-level key 'extra'")
    assert_names(error, "allowed: [scenario], [[faults]]")


def test_unknown_top_level_table_names_its_line() -> None:
    error = refusal('[scenario]\nname = "x"\n\n[extra]\na = 1\n')
    assert_names(error, "field 'extra'", "unknown top-level key 'extra'")
    assert_names(error, "s.toml:4:")


def test_scenario_must_be_a_table() -> None:
    error = refusal("scenario = 3\n")
    assert_names(error, "s.toml:1:", "field 'scenario'", "[scenario] must be a table")


def test_unknown_scenario_field() -> None:
    error = refusal('[scenario]\nname = "x"\nnmae = "y"\n')
    assert_names(error, "s.toml:3:", "field 'nmae'", "unknown field in [scenario]")
    assert_names(error, "allowed: name, description, source, seed")


@pytest.mark.parametrize(
    ("line", "given_value", "allowed"),
    [
        ("name = 3", "3", "is not a string"),
        ('description = ["a"]', "['a']", "is not a string"),
        ("source = true", "True", "is not a string"),
        ('seed = "abc"', "'abc'", "is not a whole number"),
        ("seed = 1.5", "1.5", "is not a whole number"),
        ("seed = true", "True", "is not a whole number"),
    ],
)
def test_wrong_types_in_scenario(line: str, given_value: str, allowed: str) -> None:
    key = line.split()[0]
    error = refusal(f"[scenario]\n# the head of a scenario\n{line}\n")
    assert_names(error, "s.toml:3:", f"field {key!r}", f"{given_value} {allowed}")


def test_scenario_field_line_when_faults_come_first() -> None:
    error = refusal('[[faults]]\ntype = "latency"\nname = "slow"\n\n[scenario]\nname = 3\n')
    assert_names(error, "field 'name'", "3 is not a string", "s.toml:6:")


def test_faults_not_an_array() -> None:
    error = refusal('faults = "latency"\n')
    assert_names(error, "s.toml:1:", "field 'faults'", "must be an array of tables")
    assert_names(error, "write [[faults]]")


def test_faults_written_as_a_single_table_names_its_line() -> None:
    error = refusal('[scenario]\nname = "x"\n\n[faults]\ntype = "latency"\n')
    assert_names(error, "field 'faults'", "write [[faults]]", "s.toml:4:")


def test_fault_not_a_table() -> None:
    error = refusal('faults = [1, "x"]\n')
    assert_names(error, "s.toml", "fault #1", "each fault must be a table")


# -- one fault ------------------------------------------------------------------------------


def test_missing_type() -> None:
    error = refusal('[[faults]]\ntype = "latency"\n\n[[faults]]\ndelay = "1s"\n')
    assert_names(error, "s.toml:4:", "fault #2", "missing field 'type'", f"allowed: {KNOWN}")


def test_unknown_type_lists_known_ones() -> None:
    error = refusal('[[faults]]\nname = "x"\ntype = "nope"\n')
    assert_names(error, "s.toml:3:", "fault #1", "field 'type'", "'nope'", f"allowed: {KNOWN}")
    for name in ("idle-timeout", "latency", "reset"):
        assert name in str(error)


def test_type_must_be_a_string() -> None:
    error = refusal("[[faults]]\ntype = 3\n")
    assert_names(error, "s.toml:2:", "fault #1", "field 'type'", "unknown fault type 3")


def test_unknown_field_lists_allowed() -> None:
    error = refusal('[[faults]]\ntype = "latency"\nname = "slow"\ndelya = "1s"\n')
    assert_names(error, "s.toml:4:", "fault #1 (slow)", "field 'delya'", "unknown field")
    allowed = str(error).split("latency takes: ")[1].split(", ")
    assert {"delay", "jitter", "after", "window", "match", "probability"} <= set(allowed)
    assert allowed == sorted(allowed)


def test_missing_required_param() -> None:
    error = refusal('[[faults]]\ntype = "idle-timeout"\nname = "idle"\n')
    assert_names(
        error,
        "s.toml:1:",
        "fault #1 (idle)",
        "field 'timeout'",
        "missing; expected a duration with a unit",
        "(>= 1ms)",
    )


def test_bare_number_for_a_duration() -> None:
    error = refusal('[[faults]]\ntype = "idle-timeout"\ntimeout = 60\n')
    assert_names(
        error,
        "s.toml:3:",
        "fault #1 (idle-timeout)",
        "field 'timeout'",
        "60 is not allowed",
        "allowed: a duration with a unit such as '250ms'",
    )


def test_unitless_string_for_a_duration() -> None:
    error = refusal('[[faults]]\ntype = "idle-timeout"\ntimeout = "60"\n')
    assert_names(error, "s.toml:3:", "field 'timeout'", "'60' has no unit", "'15s'")


def test_bad_choice() -> None:
    error = refusal('[[faults]]\ntype = "idle-timeout"\ntimeout = "60s"\ncounts = "lines"\n')
    assert_names(
        error,
        "s.toml:4:",
        "fault #1 (idle-timeout)",
        "field 'counts'",
        "'lines' is not allowed",
        "allowed: one of 'bytes', 'events'",
    )


@pytest.mark.parametrize(
    ("line", "key", "message"),
    [
        ("probability = 1.5", "probability", "1.5 is above the maximum; allowed: a number"),
        ("probability = -0.5", "probability", "-0.5 is below the minimum; allowed: a number"),
        ("every = 0", "every", "0 is below the minimum; allowed: a whole number (>= 1)"),
        ("first = -1", "first", "-1 is below the minimum; allowed: a whole number (>= 1)"),
        ('direction = "sideways"', "direction", "allowed: one of 'down', 'up', 'both'"),
    ],
)
def test_out_of_bounds_common_fields(line: str, key: str, message: str) -> None:
    error = refusal(f'[[faults]]\ntype = "latency"\nname = "lag"\n{line}\n')
    assert_names(error, "s.toml:4:", "fault #1 (lag)", f"field {key!r}", message)


def test_out_of_bounds_in_a_later_fault() -> None:
    text = (
        '[[faults]]\ntype = "latency"\n\n[[faults]]\ntype = "reset"\nname = "boom"\nevents = -1\n'
    )
    error = refusal(text)
    assert_names(
        error,
        "s.toml:7:",
        "fault #2 (boom)",
        "field 'events'",
        "-1 is below the minimum; allowed: a whole number (>= 0)",
    )


def test_line_with_a_commented_faults_header() -> None:
    text = (
        '[[faults]]  # the slow one\ntype = "latency"\ndelay = "x"\n\n[[faults]]\ntype = "reset"\n'
    )
    error = refusal(text)
    assert_names(error, "fault #1 (latency)", "field 'delay'", "s.toml:3:")


def test_huge_size_is_a_scenario_error() -> None:
    error = refusal('[[faults]]\ntype = "reset"\nbytes = "1e400B"\n')
    assert_names(error, "s.toml:3:", "fault #1 (reset)", "field 'bytes'", "'1e400B'")


# -- window ---------------------------------------------------------------------------------


def test_window_not_a_table() -> None:
    error = refusal('[[faults]]\ntype = "latency"\nwindow = "30s"\n')
    assert_names(
        error, "s.toml:3:", "fault #1 (latency)", "field 'window'", "expected a table like { from"
    )


def test_unknown_window_key() -> None:
    error = refusal('[[faults]]\ntype = "latency"\nwindow = { start = "30s" }\n')
    assert_names(
        error, "s.toml:3:", "fault #1", "field 'window.start'", "unknown key; allowed: from, until"
    )


@pytest.mark.parametrize(
    "window", ['{ from = "30s", until = "30s" }', '{ from = "1m", until = "30s" }']
)
def test_window_until_must_be_after_from(window: str) -> None:
    error = refusal(f'[[faults]]\ntype = "latency"\nwindow = {window}\n')
    assert_names(
        error, "s.toml:3:", "fault #1", "field 'window.until'", "`until` must be later than `from`"
    )


def test_window_bound_needs_a_unit() -> None:
    error = refusal('[[faults]]\ntype = "latency"\nwindow = { from = 30 }\n')
    assert_names(error, "s.toml:3:", "field 'window.from'", "30 is not allowed", "(>= 0s)")


# -- match ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("match", "key", "message"),
    [
        ('"/x"', "match", 'expected a table like { path = "/events*"'),
        ('{ url = "/x" }', "match.url", "unknown key; allowed: path, method, headers"),
        ("{ path = 3 }", "match.path", "3 is not a string (a glob such as '/events*')"),
        ("{ method = 3 }", "match.method", "3 is not a method or a list of methods"),
        ('{ method = ["GET", 3] }', "match.method", "['GET', 3] is not a method or a list"),
        ('{ headers = "x" }', "match.headers", "expected a table of header name = glob strings"),
        ("{ headers = { Accept = 3 } }", "match.headers", "expected a table of header name"),
    ],
)
def test_match_errors(match: str, key: str, message: str) -> None:
    error = refusal(f'[[faults]]\ntype = "latency"\nname = "m"\nmatch = {match}\n')
    assert_names(error, "s.toml:4:", "fault #1 (m)", f"field {key!r}", message)


# -- across faults --------------------------------------------------------------------------


def test_duplicate_names() -> None:
    text = (
        '[[faults]]\ntype = "latency"\nname = "a"\n\n'
        '[[faults]]\ntype = "latency"\n\n'
        '[[faults]]\ntype = "reset"\nname = "a"\n'
    )
    error = refusal(text)
    assert_names(
        error,
        "s.toml:10:",
        "fault #3 (a)",
        "field 'name'",
        "the name 'a' is taken by fault #1",
        "give each a distinct `name`",
    )


def test_duplicate_default_names() -> None:
    error = refusal('[[faults]]\ntype = "latency"\n\n[[faults]]\ntype = "latency"\n')
    assert_names(error, "s.toml:4:", "fault #2 (latency)", "taken by fault #1")


def test_reset_with_both_bytes_and_events() -> None:
    error = refusal('[[faults]]\ntype = "reset"\nbytes = "1KiB"\nevents = 3\n')
    assert_names(
        error, "s.toml:4:", "fault #1 (reset)", "field 'events'", "give `bytes` or `events`"
    )


def test_error_attributes() -> None:
    error = refusal('[[faults]]\ntype = "latency"\nname = "lag"\nevery = 0\n')
    assert error.file == "s.toml:4"
    assert error.where == "fault #1 (lag), field 'every'"
    assert error.message.startswith("0 is below the minimum")


# -- what a valid file gives ----------------------------------------------------------------


def defaults(kind: str, **given_settings: Any) -> dict[str, Any]:
    """The settings a fault gets when the file gives only `given_settings`."""
    table = {}
    for param in all_faults()[kind].params:
        if param.name in given_settings:
            table[param.name] = given_settings[param.name]
        else:
            assert not param.required, f"test gives no {param.name} for {kind}"
            table[param.name] = None if param.optional else param.default
    return table


def test_defaults_applied() -> None:
    parsed = parse_scenario('[[faults]]\ntype = "idle-timeout"\ntimeout = "60s"\n')
    assert parsed.name == "scenario"
    assert (parsed.description, parsed.source, parsed.seed, parsed.path) == ("", "", None, None)
    (spec,) = parsed.faults
    assert spec.type == "idle-timeout"
    assert spec.name == "idle-timeout"  # name defaults to the type
    assert dict(spec.settings) == defaults("idle-timeout", timeout=60.0)
    assert (spec.settings["counts"], spec.settings["action"]) == ("bytes", "close")
    assert (spec.direction, spec.probability, spec.after, spec.every, spec.first) == (
        "down",
        1.0,
        0.0,
        1,
        None,
    )
    assert spec.window == Window(0.0, math.inf)
    assert spec.match == Match()
    assert spec.fault_class is all_faults()["idle-timeout"]


def test_optional_fault_params_default_to_none() -> None:
    (spec,) = parse_scenario('[[faults]]\ntype = "reset"\n').faults
    assert dict(spec.settings) == defaults("reset")
    assert (spec.settings["bytes"], spec.settings["events"]) == (None, None)


def test_scenario_name_defaults_to_the_file_stem() -> None:
    assert parse_scenario("", file="dir/my-drops.toml").name == "my-drops"
    assert parse_scenario("", file="dir/my-drops.toml").path == "dir/my-drops.toml"
    assert parse_scenario('[scenario]\nname = "given"\n', file="x.toml").name == "given"


def test_empty_name_falls_back_to_the_type() -> None:
    (spec,) = parse_scenario('[[faults]]\ntype = "latency"\nname = ""\n').faults
    assert spec.name == "latency"


def test_everything_parsed() -> None:
    text = """
[scenario]
name = "demo"
description = "all the fields"
source = "https://example.com"
seed = 7

[[faults]]
type = "idle-timeout"
name = "idle"
timeout = "90s"
counts = "events"
action = "reset"
direction = "both"
probability = 0.25
after = "1500ms"
every = 3
first = 10
window = { from = "30s", until = "2m" }
match = { path = "/sse/*", method = ["get", "Post"], headers = { Accept = "text/*" } }
"""
    parsed = parse_scenario(text)
    assert (parsed.name, parsed.description, parsed.source, parsed.seed) == (
        "demo",
        "all the fields",
        "https://example.com",
        7,
    )
    (spec,) = parsed.faults
    assert spec == FaultSpec(
        type="idle-timeout",
        name="idle",
        settings=defaults("idle-timeout", timeout=90.0, counts="events", action="reset"),
        direction="both",
        probability=0.25,
        after=1.5,
        every=3,
        first=10,
        window=Window(30.0, 120.0),
        match=Match("/sse/*", ("GET", "POST"), (("accept", "text/*"),)),
    )


def test_single_method_string() -> None:
    (spec,) = parse_scenario('[[faults]]\ntype = "latency"\nmatch = { method = "get" }\n').faults
    assert spec.match.methods == ("GET",)


# -- to_toml round trip ---------------------------------------------------------------------

ROUND_TRIPS = [
    "",
    '[scenario]\nname = "only a name"\n',
    '[scenario]\nname = "q\\"uo\\\\te"\ndescription = "two\\nlines"\nseed = -3\n',
    '[[faults]]\ntype = "reset"\nbytes = "4KiB"\n',
    '[[faults]]\ntype = "reset"\nevents = 0\nafter = "2m"\n',
    '[[faults]]\ntype = "latency"\ndelay = "0s"\njitter = "250ms"\nprobability = 0.0\n',
    '[[faults]]\ntype = "latency"\nwindow = { until = "5m" }\n',
    '[[faults]]\ntype = "latency"\nwindow = { from = "1500ms" }\n',
    '[[faults]]\ntype = "latency"\nmatch = { headers = { "X Odd.Name" = "a*" } }\n',
    """[scenario]
name = "demo"
seed = 1
[[faults]]
type = "idle-timeout"
name = "idle"
timeout = "60s"
counts = "events"
direction = "both"
probability = 0.25
after = "1500ms"
every = 3
first = 10
window = { from = "30s", until = "90s" }
match = { path = "/sse/*", method = ["get", "POST"], headers = { Accept = "text/*" } }
[[faults]]
type = "reset"
direction = "up"
[[faults]]
type = "latency"
name = "type"
""",
]


@pytest.mark.parametrize("text", ROUND_TRIPS)
def test_to_toml_round_trips(text: str) -> None:
    parsed = parse_scenario(text)
    again = parse_scenario(parsed.to_toml())
    assert again == parsed
    assert again.to_toml() == parsed.to_toml()


def test_to_toml_leaves_defaults_out() -> None:
    parsed = parse_scenario('[[faults]]\ntype = "latency"\ndelay = "200ms"\nevery = 1\n')
    assert parsed.to_toml() == '[scenario]\nname = "scenario"\n\n[[faults]]\ntype = "latency"\n'


@pytest.mark.parametrize("text", ["carriage\rreturn", "nul\x00", "del\x7f"])
def test_to_toml_escapes_control_characters(text: str) -> None:
    scenario = Scenario(name="x", description=text, source=text)
    assert parse_scenario(scenario.to_toml()) == scenario


_TEXT = st.text(
    st.characters(exclude_categories=("Cc", "Cs"), include_characters="\n\t"), max_size=12
)
_NAME = st.text(st.characters(exclude_categories=("Cc", "Cs", "Zl", "Zp")), max_size=12)
"""Names carry no control characters (they reach the journal, /metrics and URLs)."""
_HEADER_VALUE = st.text(st.characters(exclude_categories=("Cc", "Cs")), max_size=12).map(
    lambda value: value.strip(" \t")
)
_TOKEN = st.text(st.sampled_from("!#$%&'*+-.^_`|~09AZaz"), min_size=1, max_size=6)
_ASCII = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-"), min_size=1, max_size=8)


def _milliseconds(
    minimum: float | None = None, maximum: float | None = None
) -> st.SearchStrategy[float]:
    low = math.ceil((minimum or 0.0) * 1000)
    high = 10**7 if maximum is None else math.floor(maximum * 1000)  # longer: see test_units
    return st.integers(low, high).map(lambda ms: parse_duration(f"{ms}ms"))


def _value(param: Param) -> st.SearchStrategy[Any]:
    low, high = param.minimum, param.maximum
    if param.kind == "duration":
        return _milliseconds(low, high)
    if param.kind == "size":
        return st.integers(math.ceil(low or 0), 2**40 if high is None else math.floor(high))
    if param.kind == "int":
        return st.integers(math.ceil(low or 0), 10**6 if high is None else math.floor(high))
    if param.kind == "float":
        return st.floats(low, high, allow_nan=False, allow_infinity=False)
    if param.kind == "bool":
        return st.booleans()
    if param.kind == "choice":
        return st.sampled_from(param.choices)
    if param.kind == "headers":
        return st.dictionaries(_TOKEN, _HEADER_VALUE, max_size=2)
    if param.kind == "names":
        return st.lists(_TOKEN, max_size=2)
    assert param.kind == "str", f"no strategy for {param.kind}"
    return _TEXT


@st.composite
def fault_specs(draw: st.DrawFn) -> FaultSpec:
    kind = draw(st.sampled_from(sorted(all_faults())))
    cls = all_faults()[kind]
    settings: dict[str, Any] = {}
    for param in cls.params:
        value = draw(_value(param))
        settings[param.name] = draw(st.none() | st.just(value)) if param.optional else value
    try:
        cls.check(settings)
    except ParamError:
        assume(False)
    start = draw(st.just(0.0) | _milliseconds())
    end = draw(st.just(math.inf) | _milliseconds())
    assume(end > start)
    headers = draw(st.dictionaries(_ASCII, _TEXT, max_size=2))
    return FaultSpec(
        type=kind,
        name=draw(st.just(kind) | _NAME.filter(bool)),
        settings=settings,
        direction=draw(st.sampled_from(["down", "up", "both"])),
        probability=draw(st.floats(0, 1)),
        after=draw(_milliseconds()),
        every=draw(st.integers(1, 100)),
        first=draw(st.none() | st.integers(1, 100)),
        window=Window(start, end),
        match=Match(
            path=draw(st.none() | _TEXT),
            methods=tuple(m.upper() for m in draw(st.lists(_ASCII, max_size=2))),
            headers=tuple(headers.items()),
        ),
    )


@settings(max_examples=30, deadline=None)
@given(
    name=_NAME,
    description=_TEXT,
    source=_TEXT,
    seed=st.none() | st.integers(-(2**63), 2**63 - 1),
    faults=st.lists(fault_specs(), max_size=3, unique_by=lambda spec: spec.name),
)
def test_to_toml_round_trips_generated_scenarios(
    name: str, description: str, source: str, seed: int | None, faults: list[FaultSpec]
) -> None:
    scenario = Scenario(name, description, source, seed, tuple(faults))
    assert parse_scenario(scenario.to_toml()) == scenario


# -- loading files and presets --------------------------------------------------------------


def test_load_scenario_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[[faults]]\ntype = "latency"\n', encoding="utf-8")
    loaded = load_scenario(str(path))
    assert (loaded.name, loaded.path, len(loaded.faults)) == ("mine", str(path), 1)


def test_load_scenario_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[[faults]]\ntype = "latency"\nevery = 0\n', encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"bad\.toml:3: fault #1"):
        load_scenario(str(path))


def test_load_scenario_refuses_undecodable_files(tmp_path: Path) -> None:
    path = tmp_path / "latin.toml"
    path.write_bytes(b'[scenario]\nname = "caf\xe9"\n')
    with pytest.raises(ScenarioError, match="cannot read") as caught:
        load_scenario(str(path))
    assert caught.value.file == str(path)


def test_load_scenario_finds_a_preset_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    preset = tmp_path / "house-preset.toml"
    preset.write_text('[scenario]\ndescription = "ours"\n', encoding="utf-8")
    monkeypatch.setattr(
        scenario_module,
        "preset_path",
        lambda name: preset if name == "house-preset" else None,
    )
    monkeypatch.chdir(tmp_path / "..")  # no file called `house-preset` here
    loaded = load_scenario("house-preset")
    assert (loaded.name, loaded.description, loaded.path) == ("house-preset", "ours", str(preset))


def test_load_scenario_missing_lists_the_presets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scenario_module, "preset_names", lambda: ["alpha", "beta"])
    with pytest.raises(ScenarioError) as caught:
        load_scenario("no/such/file.toml")
    assert caught.value.file == "no/such/file.toml"
    assert str(caught.value) == (
        "no/such/file.toml: no such file, and no preset of that name (presets: alpha, beta)"
    )


def test_load_scenario_missing_with_the_real_presets() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario("missing-preset-xyz")
    message = str(caught.value)
    assert message.startswith("missing-preset-xyz: no such file")
    assert f"(presets: {', '.join(preset_names())})" in message


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_by_name(name: str) -> None:
    path = preset_path(name)
    assert path is not None and path.name == f"{name}.toml"
    loaded = load_scenario(name)
    assert loaded.path == str(path)
    assert loaded.name == name, "a preset's [scenario] name should match its file name"


def test_every_file_in_scenarios_validates() -> None:
    assert SCENARIOS_DIR.is_dir()
    files = sorted(SCENARIOS_DIR.glob("*.toml"))
    problems = []
    for file in files:
        try:
            loaded = load_scenario(str(file))
        except ScenarioError as error:
            problems.append(str(error))
        else:
            assert loaded.faults, f"{file.name} injects nothing"
    assert not problems, "\n".join(problems)
    assert [f.stem for f in files] == preset_names()


def test_preset_path_of_an_unknown_name() -> None:
    assert preset_path("no-such-preset-xyz") is None


# -- Match ----------------------------------------------------------------------------------


def request(path: str = "/sse/feed", method: str = "GET", **headers: str) -> RequestInfo:
    return RequestInfo(method, path, {k.replace("_", "-"): v for k, v in headers.items()})


def test_empty_match_matches_everything() -> None:
    assert Match().matches(request())
    assert Match().matches(request("/", "POST"))
    assert Match().matches(None)


def test_path_glob_ignores_the_query() -> None:
    match = Match(path="/sse/*")
    assert match.matches(request("/sse/feed"))
    assert match.matches(request("/sse/feed?token=1&x=/other"))
    assert not match.matches(request("/api/sse/feed"))
    assert not match.matches(request("/sse"))
    assert not Match(path="/events").matches(request("/events/"))
    assert Match(path="/events").matches(request("/events?x=1"))
    assert not Match(path="*?x=1").matches(request("/events?x=1"))


def test_path_glob_is_case_sensitive() -> None:
    assert not Match(path="/SSE/*").matches(request("/sse/feed"))


def test_methods() -> None:
    match = Match(methods=("GET", "HEAD"))
    assert match.matches(request(method="GET"))
    assert match.matches(request(method="head"))
    assert not match.matches(request(method="POST"))


def test_header_globs() -> None:
    match = Match(headers=(("accept", "text/event-stream*"), ("x-tenant", "a?")))
    assert match.matches(request(accept="text/event-stream; q=1", x_tenant="ab"))
    assert not match.matches(request(accept="application/json", x_tenant="ab"))
    assert not match.matches(request(accept="text/event-stream", x_tenant="abc"))
    assert not match.matches(request(accept="text/event-stream"))  # header absent


def test_every_condition_must_hold() -> None:
    match = Match(path="/sse/*", methods=("GET",), headers=(("accept", "text/*"),))
    assert match.matches(request(accept="text/plain"))
    assert not match.matches(request("/other", accept="text/plain"))
    assert not match.matches(request(method="POST", accept="text/plain"))


@pytest.mark.parametrize(
    "match",
    [Match(path="*"), Match(methods=("GET",)), Match(headers=(("accept", "*"),))],
)
def test_tcp_mode_only_matches_an_empty_match(match: Match) -> None:
    assert not match.matches(None)


# -- settings that would fail every matching connection (issue 9 item 6) ---------------------


@pytest.mark.parametrize(
    ("lines", "field", "message"),
    [
        ('target = "request"\nremove = ["Host"]', "remove", "a request cannot go without Host"),
        ('target = "request"\nremove = ["host"]', "remove", "a request cannot go without Host"),
        ('target = "request"\nadd = { Host = "b" }', "add", "a request has exactly one Host"),
        ('set = { Transfer-Encoding = "gzip" }', "set", "Transfer-Encoding frames the message"),
        ('set = { Content-Length = "abc" }', "set", "Content-Length frames the message"),
        ('target = "request"\nremove = ["Content-Length"]', "remove", "frames the message"),
        ('set = { X-A = "a\\u0001" }', "set", "contains the control character '\\x01'"),
        ('add = { X-A = "\\u007f" }', "add", "contains the control character '\\x7f'"),
        ('set = { X-A = " padded" }', "set", "starts or ends with a space or tab"),
    ],
)
def test_headers_that_http_cannot_carry_are_refused(lines: str, field: str, message: str) -> None:
    error = refusal(f'[[faults]]\ntype = "headers"\n{lines}\n')
    line = 2 + next(n for n, text in enumerate(lines.split("\n"), 1) if text.startswith(field))
    assert_names(error, f"s.toml:{line}:", "fault #1 (headers)", f"field {field!r}", message)
    assert "\n" not in str(error)


def test_the_response_may_lose_or_gain_a_host_header() -> None:
    parse_scenario('[[faults]]\ntype = "headers"\nremove = ["Host"]\nadd = { Host = "x" }\n')


def test_status_headers_are_checked_like_every_header_param() -> None:
    error = refusal('[[faults]]\ntype = "status"\nheaders = { Content-Length = "3" }\n')
    assert_names(error, "s.toml:3:", "fault #1 (status)", "field 'headers'", "frames the message")
    error = refusal('[[faults]]\ntype = "status"\nheaders = { Retry-After = "5 " }\n')
    assert_names(error, "field 'headers'", "starts or ends with a space")


@pytest.mark.parametrize(
    "bad", ["\\r", "\\n", "\\u0000", "\\u001b", "\\u007f", "\\u2028", "\\u0085"]
)
def test_names_with_control_characters_are_refused(bad: str) -> None:
    error = refusal(f'[[faults]]\ntype = "latency"\nname = "slow{bad}x"\n')
    assert_names(error, "s.toml:3:", "fault #1 (latency)", "field 'name'", "control character")
    assert len(str(error).splitlines()) == 1
    error = refusal(f'[scenario]\nname = "demo{bad}"\n')
    assert_names(error, "s.toml:2:", "field 'name'", "control character")
    assert len(str(error).splitlines()) == 1


def test_names_may_be_any_visible_text() -> None:
    parsed = parse_scenario(
        '[scenario]\nname = "démo 1"\n[[faults]]\ntype = "stall"\nname = "ü ß"\n'
    )
    assert (parsed.name, parsed.faults[0].name) == ("démo 1", "ü ß")


# -- nesting (issue 9 item 7) ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "[" * 5000 + "]" * 5000,  # tomllib itself recurses on these
        "{a=" * 5000 + "1" + "}" * 5000,
    ],
)
def test_deep_nesting_is_a_one_line_error(value: str) -> None:
    error = refusal(f'[[faults]]\ntype = "latency"\nmatch = {value}\n')
    assert_names(error, "s.toml: cannot read: tables or arrays nested over 8 levels deep")
    assert len(str(error).splitlines()) == 1


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ('[[faults]]\ntype = "latency"\nmatch.', ("s.toml:3:", "fault #1 (latency)", "'match'")),
        ("[scenario]\nname.", ("s.toml:2:", "field 'name'")),
        ("", ("s.toml:1:", "field 'a'")),
    ],
)
def test_deep_dotted_keys_are_a_one_line_error(where: str, expected: tuple[str, ...]) -> None:
    error = refusal(where + ".".join(["a"] * 2000) + " = 1\n")
    assert_names(error, *expected, "nested over 8 levels deep; a scenario needs 5 at most")
    assert len(str(error).splitlines()) == 1


def test_the_deepest_valid_scenario_loads() -> None:
    parse_scenario('[[faults]]\ntype = "stall"\nmatch = { headers = { Accept = "*" } }\n')


# -- how many faults (issue 9 item 8) -------------------------------------------------------


def many(count: int) -> str:
    return "".join(f'[[faults]]\ntype = "stall"\nname = "s{n}"\n\n' for n in range(count))


def test_a_thousand_faults_load() -> None:
    assert len(parse_scenario(many(scenario_module.MAX_FAULTS)).faults) == 1000


def test_more_faults_than_the_limit_are_refused_before_parsing() -> None:
    error = refusal(many(13_000))
    assert_names(error, "s.toml:4001: fault #1001", "13000 faults, over the limit of 1000")
    assert len(error.errors) == 1


def test_the_limit_holds_for_inline_faults_too() -> None:
    error = refusal("faults = [" + ", ".join(['{type = "stall"}'] * 1001) + "]\n")
    assert_names(error, "fault #1001", "1001 faults, over the limit of 1000")


def test_a_refusal_lists_the_first_hundred_errors_and_says_there_are_more() -> None:
    text = "".join(f'[[faults]]\ntype = "stall"\nnmae = "{n}"\n\n' for n in range(1000))
    error = refusal(text)
    assert len(error.errors) == scenario_module.MAX_ERRORS + 1
    assert error.errors[99].file == "s.toml:399"  # the 100th fault's `nmae`
    assert error.lines[-1] == "s.toml: stopped after 100 errors; fix these and check again"


def test_twenty_thousand_unknown_keys_give_a_hundred_errors() -> None:
    text = "[scenario]\n" + "".join(f"k{n} = {n}\n" for n in range(20_000))
    error = refusal(text)  # listing them all took a second per 20,000
    assert len(error.errors) == 101
    assert error.errors[-2].file == "s.toml:101"


# -- every error in one pass (issue 15 item 4) ----------------------------------------------

TEN_MISTAKES = """\
[scenario]
nmae = "typo"
seed = "x"

[[faults]]
type = "latncy"
probability = 2

[[faults]]
type = "idle-timeout"
acton = "close"
timeout = "60"
window = { form = "1s", until = "x" }
match = { pth = "/x" }

[[faults]]
name = "bad\\u0007"
type = "stall"
"""


def test_every_error_in_one_pass_in_line_order() -> None:
    error = refusal(TEN_MISTAKES)
    lines = error.lines
    assert str(error) == "\n".join(lines)
    numbers = [int(line.split(":")[1]) for line in lines]
    assert numbers == sorted(numbers) == [2, 3, 6, 7, 11, 12, 13, 13, 14, 17]
    expected = [
        ("field 'nmae'", "unknown field in [scenario]; did you mean 'name'?"),
        ("field 'seed'", "'x' is not a whole number"),
        ("fault #1 (latncy), field 'type'", "unknown fault type 'latncy'; did you mean 'latency'?"),
        ("fault #1 (latncy), field 'probability'", "2 is above the maximum"),
        ("fault #2 (idle-timeout), field 'acton'", "unknown field; did you mean 'action'?"),
        ("fault #2 (idle-timeout), field 'timeout'", "'60' has no unit"),
        ("fault #2 (idle-timeout), field 'window.form'", "did you mean 'from'?"),
        ("fault #2 (idle-timeout), field 'window.until'", "'x' is not a duration"),
        ("fault #2 (idle-timeout), field 'match.pth'", "did you mean 'path'?"),
        ("fault #3 (stall), field 'name'", "contains the control character '\\x07'"),
    ]
    for line, (where, message) in zip(lines, expected, strict=True):
        assert f": {where}: " in line and message in line, line
    assert "allowed: " in lines[0] and "idle-timeout takes: " in lines[4]
    assert (error.file, error.where) == ("s.toml:2", "field 'nmae'")  # the first one's
    assert error.message.startswith("unknown field in [scenario]")


def test_one_error_is_the_error_itself() -> None:
    error = refusal('[[faults]]\ntype = "latency"\ndelay = "fast"\n')
    assert error.errors == (error,)
    assert error.lines == [str(error)]


def test_no_suggestion_for_a_word_far_from_any() -> None:
    error = refusal('[[faults]]\ntype = "zzzzzz"\n')
    assert "did you mean" not in str(error)
    error = refusal("[[faults]]\ntype = 3\n")
    assert "did you mean" not in str(error)


def test_common_fields_are_checked_even_when_the_type_is_unknown() -> None:
    error = refusal('[[faults]]\ntype = "stal"\nevery = 0\ncustom = 1\n')
    assert [e.where for e in error.errors] == [
        "fault #1 (stal), field 'type'",
        "fault #1 (stal), field 'every'",
    ]  # an unknown type's own fields cannot be judged


def test_errors_without_lines_keep_the_order_they_were_written() -> None:
    with pytest.raises(ScenarioError) as caught:
        scenario_module._Reader("", "<control>").scenario(
            {"faults": [{"type": "latency", "dealy": "1s", "every": 0}, {"type": "x"}]}
        )
    assert [e.where for e in caught.value.errors] == [
        "fault #1 (latency), field 'dealy'",
        "fault #1 (latency), field 'every'",
        "fault #2 (x), field 'type'",
    ]


def test_faults_past_the_hundredth_error_are_not_checked_at_all() -> None:
    text = "".join(f'[[faults]]\ntype = "stall"\nnmae = "{n}"\n\n' for n in range(100))
    text += '[[faults]]\ntype = "reset"\nbytes = "1KiB"\n'  # reset.check would need `events`
    error = refusal(text)
    assert error.lines[-1] == "s.toml: stopped after 100 errors; fix these and check again"
