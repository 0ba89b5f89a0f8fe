"""Example 5 of docs/testing.md: an asyncio client (httpx-sse) through the threaded proxy.

The proxy runs trio in a background thread (`run_proxy`); the client is plain asyncio
code run with `asyncio.run`, in a sync test.
"""

from __future__ import annotations

import asyncio

import httpx
from httpx_sse import SSEError, aconnect_sse
from hypothesis import given, settings

from sseproxy.scenario import Scenario
from sseproxy.strategies import faults, scenarios
from sseproxy.testing import ThreadedProxy, run_proxy

EVENTS = 20
RESET_EVERY_3 = "[[faults]]\ntype = 'reset'\nevents = 3\n"


async def resuming_client(url: str, want: int = EVENTS) -> list[int]:
    """An httpx-sse client that reconnects with Last-Event-ID until it has `want` events."""
    ids: list[int] = []
    last_id = ""
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(3 * want):
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                async with aconnect_sse(client, "GET", url, headers=headers) as source:
                    async for event in source.aiter_sse():
                        ids.append(int(event.id))
                        last_id = event.id
            except (httpx.TransportError, SSEError):
                pass  # reset, cut, refused: reconnect
            if len(ids) >= want:
                break
    return ids


def events_url(proxy: ThreadedProxy) -> str:
    return f"{proxy.url}/events?interval=0&heartbeat=0&count={EVENTS}"


def test_an_httpx_sse_client_resumes_through_resets() -> None:
    with run_proxy(scenario=RESET_EVERY_3) as proxy:
        ids = asyncio.run(resuming_client(events_url(proxy)))
        assert ids == list(range(1, EVENTS + 1))
        closed = proxy.wait_for_closed(7)  # 20 events, 3 per connection
        assert [record["events_down"] for record in closed] == [3] * 6 + [2]


def test_the_same_client_without_faults_uses_one_connection() -> None:
    with run_proxy() as proxy:
        assert asyncio.run(resuming_client(events_url(proxy))) == list(range(1, EVENTS + 1))
        assert len(proxy.wait_for_closed(1)) == 1


# Generated scenarios over real sockets (keep them short: this is wall-clock time).
@settings(max_examples=10, deadline=None)
@given(
    scenarios(
        faults=faults(types=["reset", "cut"], max_duration="50ms", directions=["down"]),
        max_faults=2,
    )
)
def test_an_httpx_sse_client_loses_nothing_under_generated_cuts(scenario: Scenario) -> None:
    with run_proxy() as proxy:
        proxy.set_scenario(scenario)
        ids = asyncio.run(resuming_client(events_url(proxy)))
        assert ids == list(range(1, len(ids) + 1))
