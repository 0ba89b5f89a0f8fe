"""Time scale: every time in a scenario, found from the declarations, scales by one factor."""

from __future__ import annotations

import math

import pytest
import trio
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

from sseproxy import origin
from sseproxy.cli import main
from sseproxy.errors import ConfigError
from sseproxy.faults import all_faults
from sseproxy.params import Param
from sseproxy.scenario import COMMON_FIELDS, FaultSpec, Window, load_scenario, parse_scenario
from sseproxy.strategies import scenarios
from sseproxy.timescale import check_factor, scaled, scaled_spec, time_role
from tests.harness import memory_proxy

SAMPLE = {"duration": 20.0, "per-second": 20_000, "ms": 20_000}
"""A value for each kind of time: far from every declared bound, so nothing is clamped."""


def sample(param: Param) -> object:
    role = time_role(param)
    if role is not None:
        return SAMPLE[role]
    return None if param.required or param.optional else param.default


@pytest.mark.parametrize("fault", sorted(all_faults()))
@pytest.mark.parametrize("factor", [0.1, 3.0])
def test_every_time_parameter_of_every_registered_fault_is_scaled(
    fault: str, factor: float
) -> None:
    cls = all_faults()[fault]
    values = {param.name: sample(param) for param in cls.params}
    spec = FaultSpec(fault, fault, values, after=4.0, window=Window(10.0, 30.0))
    got = scaled_spec(spec, factor)
    for param in cls.params:
        role, value, new = time_role(param), values[param.name], got.settings[param.name]
        if role == "duration":
            assert new == pytest.approx(value * factor), param.name  # type: ignore[operator]
        elif role == "ms":
            assert new == round(value * factor), param.name  # type: ignore[operator]
        elif role == "per-second":
            assert new == round(value / factor), param.name  # type: ignore[operator]
        else:
            assert new == value, param.name
    assert got.after == pytest.approx(4.0 * factor)
    assert got.window == Window(pytest.approx(10.0 * factor), pytest.approx(30.0 * factor))


def test_the_time_parameters_found_are_the_ones_we_know_of() -> None:
    """A guard on the finder itself (new faults are covered by the test above)."""
    found = {
        (name, param.name, time_role(param))
        for name, cls in all_faults().items()
        for param in cls.params
        if time_role(param) is not None
    }
    assert ("idle-timeout", "timeout", "duration") in found
    assert ("idle-timeout", "lazy", "duration") in found
    assert ("lifetime", "limit", "duration") in found
    assert ("latency", "delay", "duration") in found
    assert ("bandwidth", "rate", "per-second") in found
    assert ("retry", "set", "ms") in found
    assert ("status", "code", "duration") not in found
    assert [p.name for p in COMMON_FIELDS if time_role(p)] == ["after"]


def test_a_preset_at_a_tenth() -> None:
    real = load_scenario("nginx-default")
    fast = scaled(real, 0.1)
    timeout = next(spec for spec in fast.faults if spec.type == "idle-timeout")
    assert timeout.settings["timeout"] == pytest.approx(6.0)
    assert timeout.settings["lazy"] == pytest.approx(0.03)
    assert scaled(real, 1) is real
    assert real.faults[0].settings != fast.faults[0].settings  # `scaled` made a copy


def test_bounds_hold_and_an_open_window_stays_open() -> None:
    scenario = parse_scenario(
        '[[faults]]\ntype = "idle-timeout"\ntimeout = "1ms"\n'
        '[[faults]]\ntype = "bandwidth"\nrate = "1B"\n'
        '[[faults]]\ntype = "latency"\nwindow = { from = "10s" }\n'
    )
    idle, pipe, latency = scaled(scenario, 0.01).faults
    assert idle.settings["timeout"] == 0.001  # the declared minimum
    assert scaled(scenario, 100).faults[1].settings["rate"] == 1
    assert pipe.settings["rate"] == 100
    assert latency.window == Window(0.1, math.inf)


@settings(max_examples=40, deadline=None)
@given(scenarios(max_faults=3), st.sampled_from([0.1, 0.5, 2.0]))
def test_scaled_scenarios_are_valid_scenarios(scenario, factor) -> None:  # type: ignore[no-untyped-def]
    fast = scaled(scenario, factor)
    for spec in fast.faults:
        spec.fault_class.check(spec.settings)
        for param in spec.fault_class.params:
            value = spec.settings.get(param.name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                assert param.minimum is None or value >= param.minimum
                assert param.maximum is None or value <= param.maximum


@pytest.mark.parametrize("bad", ["0", "-1", "nan", "inf", "fast", "", None, True])
def test_a_bad_factor_is_one_line(bad: object) -> None:
    with pytest.raises(ConfigError) as caught:
        check_factor(bad)
    assert "\n" not in str(caught.value) and "above 0" in str(caught.value)
    assert check_factor("0.1") == 0.1
    assert check_factor(2) == 2.0


# -- in the proxy, in virtual time ---------------------------------------------------------

QUIET = origin.OriginSettings(interval=100, heartbeat=0)


async def test_the_proxy_runs_the_scenario_scaled_and_keeps_it_as_written(
    autojump_clock: MockClock,
) -> None:
    async with memory_proxy(load_scenario("idle-3s"), QUIET) as mp:
        mp.proxy.set_time_scale(0.1)
        got = await mp.client().get("/events")
        assert (got.ending, got.ended_at) == ("closed", pytest.approx(0.3))
        assert mp.proxy.scenario.faults[0].settings["timeout"] == 3.0  # as written
        mp.proxy.set_scenario(parse_scenario('[[faults]]\ntype = "lifetime"\nlimit = "20s"\n'))
        start = trio.current_time()
        got = await mp.client().get("/events")  # a new scenario is scaled too
        assert got.ended_at == pytest.approx(start + 2.0)
        mp.proxy.set_time_scale(1)
        start = trio.current_time()
        got = await mp.client().get("/events")  # back to real time, from the unscaled one
        assert got.ended_at == pytest.approx(start + 20.0)


async def test_a_new_factor_leaves_open_connections_alone(autojump_clock: MockClock) -> None:
    async with memory_proxy(load_scenario("idle-3s"), QUIET) as mp:
        async with trio.open_nursery() as nursery:
            ends: list[float] = []

            async def watch() -> None:
                ends.append((await mp.client().get("/events")).ended_at or -1)

            nursery.start_soon(watch)
            await mp.journal.wait_for("response")
            mp.proxy.set_time_scale(0.1)
        assert ends == [pytest.approx(3.0)]


@pytest.mark.parametrize("bad", ["0", "-0.5", "nan", "fast"])
def test_run_refuses_a_bad_time_scale_in_one_line(bad: str) -> None:
    result = CliRunner().invoke(main, ["run", "--time-scale", bad])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: time scale ") and "above 0" in line
