"""`sseproxy.strategies`: built from the fault declarations, valid, documented."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis.errors import InvalidArgument

from sseproxy import strategies
from sseproxy.faults import all_faults
from sseproxy.params import render_value
from sseproxy.scenario import FaultSpec, Scenario, Window, parse_scenario
from sseproxy.sse import Event, Framer
from sseproxy.strategies import (
    chunkings,
    disconnects,
    faults,
    scenarios,
    sse_events,
    sse_streams,
)
from sseproxy.testing import parse_sse

DOCS = Path(__file__).parents[2] / "docs" / "testing.md"
FIND = settings(
    database=None,
    max_examples=2000,
    phases=[Phase.generate, Phase.shrink],
    suppress_health_check=list(HealthCheck),
)


def test_every_public_strategy_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    for name in strategies.__all__:
        function = getattr(strategies, name)
        assert function.__doc__ and len(function.__doc__) > 80, name
        assert f"`{name}(" in text, f"docs/testing.md does not describe {name}()"


FIRST = settings(database=None, max_examples=5000, phases=[Phase.generate], derandomize=True)


def seen(strategy: st.SearchStrategy[Any], examples: int) -> list[Any]:
    """What `strategy` draws in `examples` tries (derandomized: the same every run)."""
    found: list[Any] = []

    @settings(max_examples=examples, derandomize=True, database=None, phases=[Phase.generate])
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found


def test_every_registered_fault_is_reachable() -> None:
    types: set[str] = set()

    def all_seen(spec: FaultSpec) -> bool:
        types.add(spec.type)
        return types == set(all_faults())

    find(faults(), all_seen, settings=FIRST)
    for name in all_faults():
        assert find(faults(types=[name]), lambda spec: True, settings=FIRST).type == name


def test_every_parameter_takes_other_values_than_its_default() -> None:
    def varies(key: str, absent: Any) -> Callable[[FaultSpec], bool]:
        return lambda spec: bool(spec.settings[key] != absent)

    for name, cls in all_faults().items():
        for param in cls.params:
            absent = None if param.optional else param.default
            find(faults(types=[name], common=False), varies(param.name, absent), settings=FIRST)


def _check_spec(spec: FaultSpec, max_duration: float = 60.0) -> None:
    cls = spec.fault_class
    assert set(spec.settings) == {p.name for p in cls.params}
    for param in cls.params:
        value = spec.settings[param.name]
        if value is None:
            assert param.optional
            continue
        assert param.parse(render_value(param, value)) == value
        if param.kind == "duration":
            assert value <= max_duration
    cls.check(spec.settings)
    assert 0 <= spec.probability <= 1 and spec.every >= 1 and spec.after <= max_duration


@settings(max_examples=150)
@given(faults())
def test_only_valid_parameters_are_drawn(spec: FaultSpec) -> None:
    _check_spec(spec)


@settings(max_examples=60)
@given(faults(max_duration="2s", max_size="100B", max_count=3))
def test_bounds_are_respected(spec: FaultSpec) -> None:
    _check_spec(spec, max_duration=2.0)
    for param in spec.fault_class.params:
        value = spec.settings[param.name]
        if param.kind == "size" and value is not None:
            assert value <= 100
        if param.kind == "int" and param.maximum is None and value is not None:
            assert value <= (param.minimum or 0) + 3
    assert spec.window.end == math.inf or spec.window.end <= 2.0
    assert spec.every <= 4 and (spec.first or 0) <= 4


@settings(max_examples=150)
@given(scenarios(max_faults=4))
def test_a_drawn_scenario_loads_back_equal_from_its_toml(scenario: Scenario) -> None:
    assert parse_scenario(scenario.to_toml()) == scenario


@given(scenarios(faults=faults(types=["reset"], common=False), min_faults=2, max_faults=3, seed=7))
def test_scenarios_name_repeated_types_apart_and_keep_a_given_seed(scenario: Scenario) -> None:
    assert [spec.name for spec in scenario.faults][:2] == ["reset", "reset-2"]
    assert scenario.seed == 7 and scenario.name == "hypothesis"
    assert all(spec.window == Window() and spec.direction == "down" for spec in scenario.faults)


@settings(max_examples=30)
@given(faults(types=["cut", "reset"], exclude=["cut"], directions=["up"]))
def test_types_exclude_and_directions(spec: FaultSpec) -> None:
    assert spec.type == "reset" and spec.direction == "up"


@settings(max_examples=100)
@given(scenarios(faults=disconnects(max_events=5), min_faults=1))
def test_disconnects_break_every_stream_after_one_to_max_events(scenario: Scenario) -> None:
    assert parse_scenario(scenario.to_toml()) == scenario
    for spec in scenario.faults:
        assert spec.type in ("cut", "reset") and 1 <= spec.settings["events"] <= 5
        assert spec.probability == 1 and spec.after == 0 and spec.window == Window()
        assert spec.every == 1 and spec.first is None and spec.direction == "down"


def test_disconnects_options_and_first_example() -> None:
    only = seen(disconnects(hows=["end"], wheres=["mid-event"]), 30)
    assert {(s.type, s.settings["how"], s.settings["where"]) for s in only} == {
        ("cut", "end", "mid-event")
    }
    drawn = seen(disconnects(), 200)
    assert {s.type for s in drawn} == {"cut", "reset"}
    assert {s.settings.get("how") for s in drawn} >= {"close", "end", "reset"}
    simplest = find(disconnects(), lambda spec: True, settings=FIND)
    assert (simplest.type, simplest.settings["events"]) == ("reset", 1)
    cut = find(disconnects(hows=["close", "end"]), lambda spec: True, settings=FIND)
    assert (cut.type, cut.settings["events"], cut.settings["how"]) == ("cut", 1, "close")


def test_a_failing_example_prints_its_scenario_toml() -> None:
    @settings(database=None, phases=[Phase.generate, Phase.shrink])
    @given(scenarios(faults=faults(types=["latency"]), min_faults=1))
    def fails(scenario: Scenario) -> None:
        raise AssertionError("client lost events")

    with pytest.raises(AssertionError) as caught:
        fails()
    [note] = [note for note in caught.value.__notes__ if "scenario TOML" in note]
    assert parse_scenario(note.split("\n", 1)[1]).faults[0].type == "latency"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: faults(types=["nope"]), "unknown fault type 'nope'; known: bandwidth"),
        (lambda: faults(types="reset"), "give a list of fault names"),
        (lambda: faults(types=["reset"], exclude=["reset"]), "no fault type left"),
        (lambda: faults(max_duration=0), "max_duration=0 must be a positive number"),
        (lambda: faults(max_duration="soon"), "max_duration='soon'"),
        (lambda: faults(max_duration=math.inf), "must be finite"),
        (lambda: faults(max_size=-1), "max_size=-1 must be a positive"),
        (lambda: faults(max_count=0), "max_count=0 must be a whole number >= 1"),
        (lambda: faults(directions=["sideways"]), "directions=\\['sideways'\\]"),
        (lambda: faults(types=["idle-timeout"], max_duration="0.5ms"), "no value of 'timeout'"),
        (lambda: scenarios(faults=[1]), "must be a strategy"),  # type: ignore[arg-type]
        (lambda: scenarios(min_faults=3, max_faults=2), "max_faults=2 is below min_faults=3"),
        (lambda: scenarios(seed=-1), "seed=-1 must be a whole number >= 0"),
        (lambda: scenarios(seed=2**63), "below 2\\*\\*63"),
        (lambda: scenarios(name=""), "name='' must be a non-empty string"),
        (lambda: disconnects(max_events=0), "max_events=0 must be a whole number >= 1"),
        (lambda: disconnects(hows=["drop"]), "hows=\\['drop'\\]: give some of close, end"),
        (lambda: disconnects(wheres="boundary"), "wheres='boundary'"),
        (lambda: sse_events(max_lines=0), "max_lines=0"),
        (lambda: sse_events(ids="yes"), "ids='yes' must be True or False"),  # type: ignore[arg-type]
        (lambda: sse_streams(line_endings=["\n\n"]), "line_endings="),
        (lambda: sse_streams(line_endings="\n"), "line_endings="),
        (lambda: sse_streams(bom=1), "bom=1"),  # type: ignore[arg-type]
        (lambda: sse_streams(events=["data: x"]), "events must be a list of"),  # type: ignore[list-item]
        (lambda: chunkings("text"), "data must be bytes, not str"),  # type: ignore[arg-type]
        (lambda: chunkings(b"abc", max_chunks=0), "max_chunks=0"),
    ],
)
def test_arguments_are_checked_with_clear_errors(call: Any, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        call()


# -- SSE streams ------------------------------------------------------------------------


@settings(max_examples=100)
@given(st.data())
def test_a_stream_decodes_to_exactly_its_events(data: st.DataObject) -> None:
    events = data.draw(st.lists(sse_events(), max_size=6))
    body = data.draw(sse_streams(events=events))
    assert parse_sse(body) == events


@settings(max_examples=50)
@given(sse_streams(line_endings=["\r"], bom=True, comments=False, retry=False, unicode=False))
def test_stream_options(body: bytes) -> None:
    assert body.startswith(b"\xef\xbb\xbf") and b"\n" not in body
    fields = {re.split(rb"[: ]", line, maxsplit=1)[0] for line in body[3:].split(b"\r") if line}
    assert fields <= {b"data", b"event", b"id"}


@settings(max_examples=50)
@given(sse_events(ids=False, types=False, max_lines=1, unicode=False))
def test_event_options(event: Event) -> None:
    assert event.id == "" and event.type == "message" and "\n" not in event.data
    assert event.data.isascii()


def test_streams_mix_line_endings_comments_retry_and_bom() -> None:
    bodies = seen(sse_streams(), 80)
    for fragment in [b"\r\n", b"\r:", b"\nretry:", b"\xef\xbb\xbf", b"\nid:", b"\r\r"]:
        assert any(fragment in body for body in bodies), fragment


@settings(max_examples=60)
@given(sse_streams().flatmap(lambda body: st.tuples(st.just(body), chunkings(body))))
def test_any_chunking_frames_like_the_whole(drawn: tuple[bytes, list[bytes]]) -> None:
    body, chunks = drawn
    assert b"".join(chunks) == body and all(chunks)
    framer = Framer()
    events = [b.event for chunk in chunks for b in framer.feed(chunk) if b.event is not None]
    assert events == parse_sse(body)


@settings(max_examples=30)
@given(chunkings(b"0123456789", max_chunks=3))
def test_chunkings_respect_max_chunks(chunks: list[bytes]) -> None:
    assert 1 <= len(chunks) <= 3 and b"".join(chunks) == b"0123456789"


def test_chunkings_of_nothing_and_of_one_byte() -> None:
    assert find(chunkings(b""), lambda chunks: True) == []
    assert find(chunkings(b"x"), lambda chunks: True) == [b"x"]
