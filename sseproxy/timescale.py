"""Time scale: a scenario with every duration multiplied by one factor.

On stage, a preset's 60 s idle timeout takes 60 real seconds; `run --time-scale 0.1`
makes it 6 s, and every other time in the scenario shrinks with it, so the story stays
the same, only faster. Which values are times is read from the declarations, never
listed per fault, so a new fault is covered without a line here:

- every parameter of kind `duration` (and the common `after` and `window`) is
  multiplied by the factor;
- a parameter that declares `extra={"time": "per-second"}` is a rate per second
  (bandwidth's `rate`) and is divided by it: 0.1 sends the same bytes in a tenth of
  the time;
- a parameter that declares `extra={"time": "ms"}` is a whole number of milliseconds
  (retry's `set`) and is multiplied, rounded.

A scaled value stays within its declared bounds (a 1 ms minimum stays 1 ms). `scaled` is
pure: the proxy keeps the scenario as written and scales it again whenever the factor
or the scenario changes, so a factor never compounds.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Literal

from sseproxy.errors import ConfigError
from sseproxy.params import Param
from sseproxy.scenario import COMMON_FIELDS, FaultSpec, Scenario, Window
from sseproxy.units import format_duration

__all__ = [
    "TimeRole",
    "check_factor",
    "scaled",
    "scaled_spec",
    "scaled_value",
    "summary",
    "time_role",
]

TimeRole = Literal["duration", "per-second", "ms"]


def time_role(param: Param) -> TimeRole | None:
    """How a parameter depends on time, from its declaration (None: it does not)."""
    if param.kind == "duration":
        return "duration"
    role = param.extra.get("time")
    if role in ("per-second", "ms"):
        return role  # type: ignore[no-any-return]
    return None


def check_factor(value: object) -> float:
    """`value` as a factor (a number above 0, finite), or a one-line ConfigError."""
    try:
        factor = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        factor = math.nan
    if isinstance(value, bool) or not (0 < factor < math.inf):
        raise ConfigError(
            f"time scale {value!r} is not a number above 0; e.g. 0.1 runs every duration "
            "ten times faster (a 60s timeout fires after 6s), 1 is real time"
        )
    return factor


def summary(factor: float) -> str:
    """The console's line for a time scale other than 1 (`run`, `demo`)."""
    return (
        f"time scale {factor:g}: every duration in the scenario is multiplied by {factor:g} "
        f"(a 60s timeout fires after {format_duration(60 * factor)})"
    )


def scaled_value(param: Param, value: Any, factor: float) -> Any:
    """`value` of `param` at time scale `factor` (unchanged when it is no time)."""
    role = time_role(param)
    if role is None or value is None or factor == 1:
        return value
    if role == "duration":
        result: float = value * factor
    elif role == "ms":
        result = round(value * factor)
    else:
        result = value / factor
        result = round(result) if isinstance(value, int) else result
    if param.minimum is not None:
        result = max(result, param.minimum)
    if param.maximum is not None:
        result = min(result, param.maximum)
    return type(value)(result) if isinstance(value, int) else result


def scaled_spec(spec: FaultSpec, factor: float) -> FaultSpec:
    """One fault at time scale `factor`: its settings, `after` and `window`."""
    if factor == 1:
        return spec
    params = {param.name: param for param in spec.fault_class.params}
    settings = {
        name: scaled_value(params[name], value, factor) if name in params else value
        for name, value in spec.settings.items()
    }
    common = {
        param.name: scaled_value(param, getattr(spec, param.name), factor)
        for param in COMMON_FIELDS
        if time_role(param) is not None  # `after`
    }
    window = Window(spec.window.start * factor, spec.window.end * factor)
    return replace(spec, settings=settings, window=window, **common)


def scaled(scenario: Scenario, factor: float) -> Scenario:
    """`scenario` with every time in it multiplied by `factor` (the same one when 1)."""
    if factor == 1:
        return scenario
    return replace(scenario, faults=tuple(scaled_spec(spec, factor) for spec in scenario.faults))
