"""Example 3 of docs/testing.md: a client that parses each read as whole events.

Python SSE clients often do `for chunk in response.iter_content(chunk_size=1024)` and
parse every chunk on its own. That works while the server writes one event per chunk
and nothing between re-chunks the stream; a `slicer` scenario (a proxy or network that
splits writes) catches it, and hypothesis finds such a scenario by itself.
"""

from __future__ import annotations

import requests
import trio
import trio.testing
from hypothesis import HealthCheck, Phase, find, given, settings

from sseproxy.origin import encode_event
from sseproxy.scenario import Scenario
from sseproxy.strategies import faults, scenarios
from sseproxy.testing import OriginSettings, memory_proxy, parse_sse, run_proxy
from tests.testing.clients import get_events, parse_whole_chunk

ORIGIN = OriginSettings(interval=0.1, heartbeat=0, count=10, size=300)
EXPECTED = [event.data for event in parse_sse(b"".join(encode_event(n, 300) for n in range(1, 11)))]
SLICER = "[[faults]]\ntype = 'slicer'\nsize = '100B'\nvariation = '50B'\n"
# Slices up to 10s apart: the client gives up after 30s of silence.
SLICER_SCENARIOS = scenarios(
    faults=faults(types=["slicer"], max_duration="10s"), min_faults=1, max_faults=1
)


def run(scenario: Scenario | str | None, *, whole_chunks: bool) -> list[str]:
    """The data of the events a client got, parsing each read alone or as a stream."""

    async def main() -> list[str]:
        async with memory_proxy(ORIGIN, scenario) as proxy:
            found: list[str] = []
            got = await get_events(
                await proxy.connect(),
                read_size=1024,
                on_chunk=lambda chunk: found.extend(parse_whole_chunk(chunk)),
            )
            return found if whole_chunks else [event.data for event in got.events]

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def test_the_chunk_parser_works_when_nothing_rechunks_the_stream() -> None:
    assert run(None, whole_chunks=True) == EXPECTED


def test_a_slicer_scenario_catches_the_chunk_parser() -> None:
    assert run(SLICER, whole_chunks=True) != EXPECTED
    caught = find(
        SLICER_SCENARIOS,
        lambda scenario: run(scenario, whole_chunks=True) != EXPECTED,
        settings=settings(database=None, phases=[Phase.generate, Phase.shrink]),
    )
    print(caught.to_toml())
    assert [spec.type for spec in caught.faults] == ["slicer"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SLICER_SCENARIOS)
def test_a_streaming_parser_survives_every_slicer_scenario(scenario: Scenario) -> None:
    assert run(scenario, whole_chunks=False) == EXPECTED


def test_the_same_bug_with_requests_iter_content_over_real_sockets() -> None:
    def read(url: str) -> list[str]:
        with requests.get(f"{url}/events?interval=0&count=10&size=300", stream=True) as r:
            found: list[str] = []
            for chunk in r.iter_content(chunk_size=1024):
                found += parse_whole_chunk(chunk)
            return found

    with run_proxy() as plain, run_proxy(scenario=SLICER) as sliced:
        assert read(plain.url) == EXPECTED
        assert read(sliced.url) != EXPECTED
