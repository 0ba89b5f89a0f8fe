"""Hypothesis strategies for fault scenarios and SSE byte streams.

Faults are drawn from their own parameter declarations (`Fault.params`), so every
registered fault is covered without a line here, only values its declaration accepts are
drawn, and combinations a fault refuses in `check` are filtered out. Every value shrinks
towards its default, so a failing scenario shrinks to the few fields that matter; the
TOML of each drawn scenario is noted (printed with a failing example) for `sseproxy run`.

    from sseproxy.strategies import faults, scenarios

    @given(scenarios(faults=faults(types=["reset", "cut"]), max_faults=2))
    def test_client(scenario): ...
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import hypothesis.strategies as st
from hypothesis import note
from hypothesis.errors import InvalidArgument

from sseproxy.faults import all_faults
from sseproxy.faults.base import Fault
from sseproxy.params import Param, ParamError
from sseproxy.scenario import COMMON_FIELDS, FaultSpec, Scenario, Window
from sseproxy.testing._sse import chunkings, sse_events, sse_streams
from sseproxy.units import format_duration, parse_duration, parse_size

__all__ = ["chunkings", "disconnects", "faults", "scenarios", "sse_events", "sse_streams"]

_COMMON = {param.name: param for param in COMMON_FIELDS}
_DIRECTIONS = ("down", "up", "both")
_TOKEN = string.ascii_letters + string.digits + "-_"
_TEXT = string.ascii_lowercase + string.digits + " -_.*"
_HEADER_VALUE = string.ascii_letters + string.digits + " -_.,;=/:"


def _positive(name: str, value: object, parse: Any) -> float:
    if isinstance(value, str):
        try:
            value = parse(value)
        except ValueError as error:
            raise InvalidArgument(f"{name}={value!r}: {error}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise InvalidArgument(
            f"{name}={value!r} must be a positive number (or a string with a unit)"
        )
    if not math.isfinite(value):
        raise InvalidArgument(f"{name}={value!r} must be finite")
    return float(value)


def _whole(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgument(f"{name}={value!r} must be a whole number >= {minimum}")
    return value


def _durations(low: float, high: float) -> st.SearchStrategy[float]:
    """Millisecond-exact durations that survive `format_duration` -> `parse_duration`."""
    return st.integers(math.ceil(low * 1000 - 1e-9), math.floor(high * 1000 + 1e-9)).map(
        lambda ms: parse_duration(format_duration(ms / 1000))
    )


_NUMERIC = ("duration", "size", "int", "float")


class _Bounds:
    def __init__(self, max_duration: float, max_size: int, max_count: int) -> None:
        self.max_duration, self.max_size, self.max_count = max_duration, max_size, max_count

    def range(self, param: Param) -> tuple[float, float]:
        """The span drawn for a numeric parameter: its declared bounds, capped by ours."""
        low = param.minimum if param.minimum is not None else 0
        cap = {"duration": self.max_duration, "size": self.max_size}.get(param.kind)
        cap = cap if cap is not None else low + self.max_count
        return low, min(param.maximum, cap) if param.maximum is not None else cap

    def values(self, param: Param, where: str) -> st.SearchStrategy[Any] | None:
        """Every valid value of `param` within the bounds (None: no value fits)."""
        kind = param.kind
        if kind in _NUMERIC:
            low, high = self.range(param)
            if high < low:
                return None
            if kind == "duration":
                return _durations(low, high)
            if kind == "float":
                return st.floats(low, high, allow_nan=False, allow_infinity=False)
            return st.integers(math.ceil(low), math.floor(high))
        if kind == "bool":
            return st.booleans()
        if kind == "choice":
            order = sorted(param.choices, key=lambda choice: choice != param.default)
            return st.sampled_from(order)
        if kind == "str":  # simple text first (globs, regexes), then any text
            anything = st.characters(exclude_categories=["Cs"])
            return st.text(_TEXT, min_size=1, max_size=8) | st.text(
                anything, min_size=1, max_size=8
            )
        names = st.text(_TOKEN, min_size=1, max_size=12)
        if kind == "headers":  # as HTTP allows: no outer spaces, each name once in any case
            value = st.text(_HEADER_VALUE, max_size=12).map(lambda text: text.strip(" "))
            tables = st.dictionaries(names, value, max_size=2)
            return tables.filter(lambda table: len({n.lower() for n in table}) == len(table))
        if kind == "names":
            return st.lists(names, max_size=2)
        raise InvalidArgument(f"{where}: cannot draw parameters of kind {kind!r}")

    def param(self, param: Param, where: str) -> st.SearchStrategy[Any]:
        """Values of `param`, shrinking towards its default (or absence). A default
        beyond the bounds is not drawn (absence, None, is: it means "no limit")."""
        values = self.values(param, where)
        absent = None if param.optional or param.required else param.default
        fits = param.kind not in _NUMERIC or absent is None or absent <= self.range(param)[1]
        if param.required or not fits:
            if values is None:
                raise InvalidArgument(f"{where}: no value of {param.name!r} fits the bounds")
            return values
        return st.just(absent) if values is None else st.one_of(st.just(absent), values)


def _valid(cls: type[Fault], settings: dict[str, Any]) -> bool:
    try:
        cls.check(settings)
    except ParamError:
        return False
    return True


def _fault(
    cls: type[Fault], bounds: _Bounds, common: bool, directions: tuple[str, ...]
) -> st.SearchStrategy[FaultSpec]:
    """The fault's own parameters (filtered by its `check`), then the common fields."""
    where = f"fault {cls.name!r}"
    settings = st.fixed_dictionaries(
        {param.name: bounds.param(param, where) for param in cls.params}
    ).filter(lambda drawn: _valid(cls, drawn))
    fields: dict[str, st.SearchStrategy[Any]] = {}
    if common:
        window = st.tuples(
            _durations(0, bounds.max_duration), st.none() | _durations(0.001, bounds.max_duration)
        )
        fields = {
            "direction": st.sampled_from(sorted(directions, key=_DIRECTIONS.index)),
            "probability": bounds.param(_COMMON["probability"], where),
            "after": bounds.param(_COMMON["after"], where),
            "every": bounds.param(_COMMON["every"], where),
            "first": bounds.param(_COMMON["first"], where),
            "window": st.just(Window())
            | window.filter(lambda w: w[1] is None or w[1] > w[0]).map(
                lambda w: Window(w[0], math.inf if w[1] is None else w[1])
            ),
        }
    name = st.just(cls.name)
    return st.builds(FaultSpec, type=name, name=name, settings=settings, **fields)


def faults(
    *,
    types: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    max_duration: float | str = 60.0,
    max_size: int | str = 64 * 1024,
    max_count: int = 100,
    common: bool = True,
    directions: Sequence[str] = _DIRECTIONS,
) -> st.SearchStrategy[FaultSpec]:
    """One `FaultSpec`: a registered fault type with valid parameters.

    `types` limits the fault types (default: every registered fault), `exclude` removes
    some. Drawn durations stay within `max_duration` (seconds, or '10m'), sizes within
    `max_size` (bytes, or '4KiB'), and whole numbers without a declared maximum (event
    counts, `every`, `first`) within `max_count` above their minimum. With `common`, the
    fields every fault takes are drawn too (`direction` among `directions`, `probability`,
    `after`, `every`, `first`, `window`; never `match`), each shrinking to its default.
    """
    known = all_faults()
    for option, value in (("types", types), ("exclude", exclude)):
        if isinstance(value, str):
            raise InvalidArgument(f"{option}={value!r}: give a list of fault names: [{value!r}]")
    chosen = list(known) if types is None else list(types)
    for name in [*chosen, *exclude]:
        if name not in known:
            raise InvalidArgument(f"unknown fault type {name!r}; known: {', '.join(known)}")
    chosen = [name for name in chosen if name not in set(exclude)]
    if not chosen:
        raise InvalidArgument("no fault type left to draw: `types` minus `exclude` is empty")
    if not directions or not set(directions) <= set(_DIRECTIONS):
        raise InvalidArgument(f"directions={directions!r}: give some of {', '.join(_DIRECTIONS)}")
    duration = _positive("max_duration", max_duration, parse_duration)
    size = int(_positive("max_size", max_size, parse_size))
    bounds = _Bounds(duration, size, _whole("max_count", max_count, 1))
    dirs = tuple(dict.fromkeys(directions))
    return st.one_of([_fault(known[name], bounds, common, dirs) for name in chosen])


def scenarios(
    *,
    faults: st.SearchStrategy[FaultSpec] | None = None,
    min_faults: int = 0,
    max_faults: int = 3,
    seed: int | None = None,
    name: str = "hypothesis",
) -> st.SearchStrategy[Scenario]:
    """A `Scenario` of `min_faults` to `max_faults` faults drawn from `faults`.

    `faults` defaults to `faults()`; a type drawn twice gets a distinct name ('reset-2').
    `seed` fixes the scenario's seed (default: drawn, so faults' random choices vary too).
    The scenario's TOML (`Scenario.to_toml()`) is noted: a failing example prints it, ready
    for `scenarios/` and `sseproxy run --scenario`.
    """
    specs = _faults() if faults is None else faults
    if not isinstance(specs, st.SearchStrategy):
        raise InvalidArgument(f"faults={specs!r} must be a strategy, e.g. faults(types=['reset'])")
    low = _whole("min_faults", min_faults, 0)
    if _whole("max_faults", max_faults, 0) < low:
        raise InvalidArgument(f"max_faults={max_faults} is below min_faults={min_faults}")
    if seed is not None and not 0 <= _whole("seed", seed, 0) < 2**63:
        raise InvalidArgument(f"seed={seed!r} must be below 2**63 (a TOML integer)")
    if not isinstance(name, str) or not name:
        raise InvalidArgument(f"name={name!r} must be a non-empty string")
    seeds = st.just(seed) if seed is not None else st.integers(0, 2**32 - 1)
    specs_lists = st.lists(specs, min_size=low, max_size=max_faults)
    return st.builds(scenario, name=st.just(name), seed=seeds, faults=specs_lists)


_faults = faults
_HOWS = ("close", "end", "reset")
_WHERES = ("boundary", "mid-event")


def disconnects(
    *,
    max_events: int = 19,
    hows: Sequence[str] = _HOWS,
    wheres: Sequence[str] = _WHERES,
) -> st.SearchStrategy[FaultSpec]:
    """A fault that breaks every stream mid-stream: after 1 to `max_events` events.

    A `reset` (when 'reset' is among `hows`) or a `cut` (at an event boundary or, with
    'mid-event' among `wheres`, inside the next event; ended as one of `hows`: 'close',
    'end', 'reset'). Every connection gets at least one event before the break, so a
    client that resumes with Last-Event-ID always makes progress, and one that does not is
    caught repeating events. The counts apply per connection, from its start. The simplest
    draw, which hypothesis tries first and shrinks to, is a reset after 1 event.
    """
    high = _whole("max_events", max_events, 1)
    for option, value, allowed in (("hows", hows, _HOWS), ("wheres", wheres, _WHERES)):
        if isinstance(value, str) or not value or not set(value) <= set(allowed):
            raise InvalidArgument(f"{option}={value!r}: give some of {', '.join(allowed)}")
    counts = st.integers(1, high)
    how = st.sampled_from(sorted(set(hows), key=_HOWS.index))
    where = st.sampled_from(sorted(set(wheres), key=_WHERES.index))
    cut = st.builds(lambda n, w, h: _spec("cut", events=n, where=w, how=h), counts, where, how)
    if "reset" not in hows:
        return cut
    return counts.map(lambda n: _spec("reset", events=n)) | cut


def _spec(kind: str, **settings: Any) -> FaultSpec:
    """A `FaultSpec` of `kind` with every declared parameter (defaults, then `settings`)."""
    declared = {
        param.name: None if param.optional or param.required else param.default
        for param in all_faults()[kind].params
    }
    return FaultSpec(type=kind, name=kind, settings={**declared, **settings})


def scenario(name: str, seed: int, faults: list[FaultSpec]) -> Scenario:
    """A `Scenario` of `faults`, each with a distinct name; notes its TOML."""
    taken: set[str] = set()
    named = []
    for spec in faults:
        label, n = spec.name, 1
        while label in taken:
            n += 1
            label = f"{spec.name}-{n}"
        taken.add(label)
        named.append(spec if label == spec.name else replace(spec, name=label))
    result = Scenario(name=name, seed=seed, faults=tuple(named))
    note(f"scenario TOML (save it; replay: sseproxy run --scenario FILE):\n{result.to_toml()}")
    return result
