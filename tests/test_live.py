"""Faults changed while streams flow: what the control API and sseproxy.testing rely on."""

from __future__ import annotations

from dataclasses import replace

import trio

from sseproxy import origin
from tests.harness import MemoryProxy, memory_proxy, scenario_of

EVERY_SECOND = origin.OriginSettings(interval=1, heartbeat=0)
ONE = len(origin.encode_event(1))


def live(mp: MemoryProxy) -> MemoryProxy:
    mp.proxy.settings = replace(mp.proxy.settings, live=True)
    return mp


async def test_a_fault_added_live_applies_to_an_open_stream(autojump_clock: object) -> None:
    async def add_reset_at_2_5s() -> None:
        await trio.sleep(2.5)
        mp.proxy.set_scenario(scenario_of('[[faults]]\ntype = "reset"\nafter = "5s"\n'))

    async with memory_proxy(settings=EVERY_SECOND) as mp:
        live(mp)
        mp.nursery.start_soon(add_reset_at_2_5s)
        got = await mp.client().get("/events")
        assert (got.status, got.ending, got.ended_at) == (200, "closed", 5.0)  # `after`: from t=0
        assert got.body == b"".join(origin.encode_event(n) for n in range(1, 6))
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["reason"]) == ("proxy", "reset")


async def test_a_fault_removed_live_lets_held_data_go(autojump_clock: object) -> None:
    async with memory_proxy('[[faults]]\ntype = "stall"\n', EVERY_SECOND) as mp:
        live(mp)
        client = mp.client()
        await client.send("GET", "/events")
        await trio.sleep(10)  # stalled from the start: nothing, not even the head
        mp.proxy.set_scenario(scenario_of(""))
        held = b"".join(origin.encode_event(n) for n in range(1, 12))
        got = await client.response(limit=len(held))
        assert got.status == 200
        assert got.chunks[0][0] == 10.0  # released at once
        assert got.body[: len(held)] == held


async def test_live_connections_are_listed_and_can_be_killed(autojump_clock: object) -> None:
    async with memory_proxy(settings=EVERY_SECOND) as mp:
        client = mp.client()
        await client.get("/events", limit=2 * ONE)
        (info,) = [c.info() for c in mp.proxy.live.values()]
        assert (info["id"], info["path"], info["events_down"], info["last_id"]) == (
            "c1",
            "/events",
            2,
            "2",
        )
        mp.proxy.live["c1"].kill()
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["reason"]) == ("proxy", "killed")
        assert not mp.proxy.live
