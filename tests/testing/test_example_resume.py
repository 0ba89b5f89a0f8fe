"""Examples 1, 2 and 4 of docs/testing.md: resuming with Last-Event-ID, in virtual time.

Every run is a proxy in memory in front of the built-in server, under an autojump
`MockClock`: 20 events half a second apart and any reconnect delays take no wall time.
"""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import HealthCheck, Phase, find, given, settings

from sseproxy.scenario import Scenario
from sseproxy.strategies import disconnects, faults, scenarios
from sseproxy.testing import OriginSettings, Record, memory_proxy
from tests.testing.clients import reconnecting_client

EVENTS = 20
ORIGIN = OriginSettings(interval=0.5, heartbeat=0, count=EVENTS)
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_client(
    scenario: Scenario, *, resume: bool, events: int = EVENTS, attempts: int = 20
) -> tuple[list[int], list[Record]]:
    """The ids a client received through `scenario`, and the proxy's journal."""

    async def main() -> tuple[list[int], list[Record]]:
        async with memory_proxy(ORIGIN, scenario, count=events) as proxy:
            ids = await reconnecting_client(
                proxy.connect, want=events, resume=resume, attempts=attempts
            )
            return ids, proxy.records

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def in_order(ids: list[int]) -> bool:
    """Nothing lost, nothing repeated: 1, 2, ..., n."""
    return ids == list(range(1, len(ids) + 1))


# 1. A correct client (it resumes with Last-Event-ID) loses and repeats nothing.
@FAST
@given(scenarios(faults=faults(types=["reset"]), max_faults=3))
def test_a_resuming_client_loses_no_event(scenario: Scenario) -> None:
    ids, _ = run_client(scenario, resume=True)
    assert in_order(ids)


# 2. A naive client (it reconnects, but forgets Last-Event-ID) fails, and hypothesis
#    shrinks the failure to a single reset.
def test_a_client_forgetting_last_event_id_shrinks_to_one_reset() -> None:
    minimal = find(
        scenarios(faults=disconnects(), min_faults=1, max_faults=3),
        lambda scenario: not in_order(run_client(scenario, resume=False, events=5, attempts=5)[0]),
        settings=settings(max_examples=200, database=None, phases=[Phase.generate, Phase.shrink]),
    )
    print(minimal.to_toml())  # ready for scenarios/ and `sseproxy run --scenario`
    assert [spec.type for spec in minimal.faults] == ["reset"]
    assert len(minimal.to_toml().splitlines()) <= 8


# 4. The server side: the built-in server resumes exactly after the Last-Event-ID it is
#    sent, whatever cuts the streams (mid-event cuts too) and however often.
@FAST
@given(scenarios(faults=faults(types=["cut", "reset", "client-abort"]), max_faults=3))
def test_the_builtin_server_resumes_after_last_event_id(scenario: Scenario) -> None:
    ids, records = run_client(scenario, resume=True)
    assert in_order(ids)
    requests = {r["conn"]: r.get("last_event_id") or "0" for r in records if r["kind"] == "request"}
    for closed in (r for r in records if r["kind"] == "closed" and r.get("first_id")):
        assert int(closed["first_id"]) == int(requests[closed["conn"]]) + 1, closed
