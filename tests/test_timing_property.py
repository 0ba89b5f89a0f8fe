"""Timing-only faults change when bytes arrive, never which bytes arrive.

One or two of latency, bandwidth, slicer, delay-events and buffer, with small random
parameters, in front of an origin stream of `count` events: the client ends up with
exactly the origin's bytes, cleanly ended. Each example is one `trio.run` in virtual time.
"""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from sseproxy import origin
from tests.harness import memory_proxy


def ms(value: int) -> str:
    return f'"{value}ms"'


def size(value: int) -> str:
    return f'"{value}B"'


@st.composite
def latency(draw: st.DrawFn) -> list[str]:
    return [
        'type = "latency"',
        f"delay = {ms(draw(st.integers(0, 500)))}",
        f"jitter = {ms(draw(st.integers(0, 300)))}",
    ]


@st.composite
def bandwidth(draw: st.DrawFn) -> list[str]:
    return ['type = "bandwidth"', f"rate = {size(draw(st.integers(64, 4096)))}"]


@st.composite
def slicer(draw: st.DrawFn) -> list[str]:
    average = draw(st.integers(1, 32))
    return [
        'type = "slicer"',
        f"size = {size(average)}",
        f"variation = {size(draw(st.integers(0, average - 1)))}",
        f"delay = {ms(draw(st.integers(0, 200)))}",
    ]


@st.composite
def delay_events(draw: st.DrawFn) -> list[str]:
    return [
        'type = "delay-events"',
        f"delay = {ms(draw(st.integers(0, 2000)))}",
        f"jitter = {ms(draw(st.integers(0, 500)))}",
        draw(st.sampled_from(['event = "*"', 'id = "*[02468]"', 'data = "n"', "comments = true"])),
        f"rate = {draw(st.sampled_from([0.5, 1.0]))}",
    ]


@st.composite
def buffer(draw: st.DrawFn) -> list[str]:
    until = draw(st.sampled_from(["size", "close"]))
    lines = [
        'type = "buffer"',
        f"size = {size(draw(st.integers(1, 256)))}",
        f'until = "{until}"',
        f'mode = "{draw(st.sampled_from(["bytes", "one-behind"]))}"',
        f"respect_accel = {str(draw(st.booleans())).lower()}",
    ]
    if until == "size" and draw(st.booleans()):
        lines.append(f"flush = {ms(draw(st.integers(1, 3000)))}")
    return lines


TIMING_FAULTS = st.one_of(latency(), bandwidth(), slicer(), delay_events(), buffer())


@st.composite
def scenarios(draw: st.DrawFn) -> str:
    faults = draw(st.lists(TIMING_FAULTS, min_size=1, max_size=2))
    tables = []
    for index, lines in enumerate(faults):
        after = draw(st.sampled_from([0, 0, 0, 500, 2500]))
        extra = [f'name = "f{index}"'] + ([f"after = {ms(after)}"] if after else [])
        tables.append("[[faults]]\n" + "\n".join(lines + extra) + "\n")
    return "\n".join(tables)


ORIGINS = st.builds(
    origin.OriginSettings,
    interval=st.sampled_from([0.0, 0.25, 1.0, 3.0]),
    heartbeat=st.just(0.0),
    size=st.sampled_from([0, 40, 300]),
    count=st.integers(1, 8),
)


def received(scenario: str, settings: origin.OriginSettings) -> tuple[bytes, str]:
    """The body the client decoded and how it ended, in virtual time."""

    async def main() -> tuple[bytes, str]:
        with trio.fail_after(10_000):  # virtual: a stuck stream fails instead of hanging
            async with memory_proxy(scenario, settings) as mp:
                got = await mp.client().get("/events")
                assert got.status == 200
                return got.body, got.ending

    result: tuple[bytes, str] = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return result


@settings(max_examples=30, deadline=None)
@given(scenario=scenarios(), settings_=ORIGINS)
def test_timing_faults_never_change_the_bytes(
    scenario: str, settings_: origin.OriginSettings
) -> None:
    assert settings_.count is not None
    expected = b"".join(
        origin.encode_event(n, settings_.size) for n in range(1, settings_.count + 1)
    )
    body, ending = received(scenario, settings_)
    assert body == expected
    assert ending == "end"


def test_the_strategies_produce_loadable_scenarios() -> None:
    """Every drawn scenario is accepted by the loader (no silent skips in the property)."""
    from tests.harness import scenario_of

    seen: set[str] = set()

    @settings(max_examples=60, deadline=None)
    @given(scenarios())
    def loads(scenario: str) -> None:
        parsed = scenario_of(scenario)
        seen.update(spec.type for spec in parsed.faults)

    loads()
    assert seen <= {"latency", "bandwidth", "slicer", "delay-events", "buffer"}
    assert len(seen) >= 3
