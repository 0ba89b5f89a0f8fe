"""The journal: what each record carries, written as it happens, line by line."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import trio

from sseproxy import origin
from sseproxy.journal import Journal
from tests.harness import memory_proxy


async def test_lines_are_json_and_carry_times_scenario_and_seed(autojump_clock: object) -> None:
    out = io.StringIO()
    journal = Journal(out, scenario="demo", seed=9)
    await trio.sleep(2.5)
    journal.write("opened", "c1", client="127.0.0.1")
    (line,) = out.getvalue().splitlines()
    record = json.loads(line)
    assert (record["t"], record["kind"], record["conn"]) == (2.5, "opened", "c1")
    assert (record["scenario"], record["seed"]) == ("demo", 9)
    assert record["ts"].endswith("+00:00")


async def test_session_key_from_a_header_or_a_query_parameter(autojump_clock: object) -> None:
    async with memory_proxy(settings=origin.OriginSettings(count=1)) as mp:
        await mp.client().get("/events?sessionId=abc")
        await mp.client().get("/events", [("Mcp-Session-Id", "xyz")])
        await mp.client().get("/events")
        sessions = [r.get("session") for r in await mp.journal.wait_for("request", 3)]
        assert sessions == ["abc", "xyz", None]


async def test_journal_events_writes_a_line_per_event(autojump_clock: object) -> None:
    async with memory_proxy(settings=origin.OriginSettings(count=3, heartbeat=0)) as mp:
        mp.proxy.settings = replace(mp.proxy.settings, journal_events=True)
        await mp.client().get("/events")
        events = await mp.journal.wait_for("event", 3)
        assert [(e["t"], e["id"], e["type"]) for e in events] == [
            (0.0, "1", "message"),
            (1.0, "2", "message"),
            (2.0, "3", "message"),
        ]
        assert [e["size"] for e in events] == [len(origin.encode_event(n)) for n in (1, 2, 3)]


async def test_longest_gaps_include_the_silence_that_got_the_stream_cut(
    autojump_clock: object,
) -> None:
    scenario = '[[faults]]\ntype = "client-watchdog"\ntimeout = "40s"\n'
    settings = origin.OriginSettings(interval=1000, heartbeat=15)
    async with memory_proxy(scenario, settings) as mp:
        await mp.client().get("/events")
        (closed,) = await mp.journal.wait_for("closed")
        # event 1 at 0, comment heartbeats at 15 and 30, cut at 40 for want of events
        assert closed["longest_gap_down"] == 15.0
        assert closed["longest_event_gap"] == 40.0
