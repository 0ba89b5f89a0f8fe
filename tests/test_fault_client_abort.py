"""client-abort: when it hangs up in pure code, then exact times through the proxy."""

from __future__ import annotations

import random

from trio.testing import MockClock

from sseproxy import origin
from sseproxy.faults.base import Close, Deliver, Piece
from sseproxy.faults.client_abort import ClientAbort
from sseproxy.sse import Framer
from tests.harness import memory_proxy


def blocks(raw: bytes) -> list[Piece]:
    return [Piece(block.raw, True, block.event) for block in Framer().feed(raw)]


def make(events: int | None = None) -> ClientAbort:
    return ClientAbort({"events": events}, random.Random(0))


def test_without_events_it_closes_once_active() -> None:
    fault = make()
    assert not fault.needs_events()
    assert fault.start(10.0) == [Close("client abort")]


def test_after_events_exactly_that_many_pass() -> None:
    fault = make(2)
    assert fault.needs_events()
    assert fault.start(0.0) == []
    e1, hb, e2 = blocks(origin.encode_event(1) + b": hb\n\n" + origin.encode_event(2))
    assert fault.on_piece(e1, 1.0) == [Deliver(e1, 1.0)]
    assert fault.on_piece(hb, 1.5) == [Deliver(hb, 1.5)]  # comments do not count
    assert fault.on_piece(e2, 2.0) == [Deliver(e2, 2.0), Close("client abort after 2 events")]


def test_zero_events_closes_at_once() -> None:
    assert make(0).start(3.0) == [Close("client abort after 0 events")]


async def test_leaves_at_the_after_time(autojump_clock: MockClock) -> None:
    scenario = '[[faults]]\ntype = "client-abort"\nafter = "10s"\n'
    async with memory_proxy(scenario, origin.OriginSettings(interval=3, heartbeat=0)) as mp:
        got = await mp.client().get("/events")
        assert got.chunks == [(3.0 * i, origin.encode_event(i + 1)) for i in range(4)]
        assert (got.ending, got.ended_at) == ("closed", 10.0)
        (fault,) = await mp.journal.wait_for("fault")
        assert (fault["fault"], fault["action"], fault["detail"]) == (
            "client-abort",
            "close",
            "client abort",
        )
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"], ended["t"]) == ("proxy", "client-abort", 10.0)
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["reason"], closed["t"]) == ("proxy", "client-abort", 10.0)
        assert closed["events_down"] == 4


async def test_leaves_after_ten_events(autojump_clock: MockClock) -> None:
    scenario = '[[faults]]\ntype = "client-abort"\nevents = 10\n'
    settings = origin.OriginSettings(interval=1, heartbeat=0.75)
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events")
        # Heartbeats every 0.75 s; the one due at 9 s would follow event 10 and never goes.
        sent = [(float(i), 0, origin.encode_event(i + 1)) for i in range(10)]
        sent += [(0.75 * k, 1, origin.encode_heartbeat("comment", 0)) for k in range(1, 12)]
        assert got.body == b"".join(data for _, _, data in sorted(sent))
        assert (got.ending, got.ended_at) == ("closed", 9.0)
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["reason"], closed["detail"]) == (
            "client-abort",
            "client abort after 10 events",
        )
        assert (closed["events_down"], closed["last_id"]) == (10, "10")
