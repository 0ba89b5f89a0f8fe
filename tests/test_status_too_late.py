"""A `status` fault that becomes active after the response head went out (its window
opens, or it is added live: the demo page's form, `ctl faults add`) has nothing left to
answer: the stream must go on.
Found while finishing issue 11 (the demo's add-fault form reached it): the link used to
send a second response head, h11 refused it, and the connection died as `internal-error`.
"""

from __future__ import annotations

from dataclasses import replace

import trio

from sseproxy import origin
from tests.harness import memory_proxy, scenario_of

SIX = origin.OriginSettings(interval=1, heartbeat=0, count=6)
ALL = b"".join(origin.encode_event(n) for n in range(1, 7))


async def test_a_status_whose_window_opens_mid_stream_leaves_it_alone(
    autojump_clock: object,
) -> None:
    late = '[[faults]]\ntype = "status"\ncode = 503\nwindow = { from = "2.5s" }\n'
    async with memory_proxy(late, SIX) as mp:
        got = await mp.client().get("/events")
        (closed,) = await mp.journal.wait_for("closed")
    (ended,) = [r for r in mp.proxy.journal.records if r["kind"] == "ended"]
    assert (ended["by"], ended["reason"]) == ("upstream", "upstream-end"), ended
    assert closed["reason"] != "internal-error", closed
    assert (got.status, got.ending, got.body) == (200, "end", ALL)


async def test_a_status_added_live_mid_stream_leaves_it_alone(autojump_clock: object) -> None:
    async def add_status_at_2_5s() -> None:
        await trio.sleep(2.5)
        mp.proxy.set_scenario(scenario_of('[[faults]]\ntype = "status"\ncode = 503\n'))

    async with memory_proxy(settings=SIX) as mp:
        mp.proxy.settings = replace(mp.proxy.settings, live=True)
        mp.nursery.start_soon(add_status_at_2_5s)
        got = await mp.client().get("/events")
        (closed,) = await mp.journal.wait_for("closed")
    (ended,) = [r for r in mp.proxy.journal.records if r["kind"] == "ended"]
    assert (ended["by"], ended["reason"]) == ("upstream", "upstream-end"), ended
    assert closed["reason"] != "internal-error", closed
    assert (got.status, got.ending, got.body) == (200, "end", ALL)
