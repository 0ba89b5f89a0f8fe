"""slow-close: decisions in pure code, then exact virtual times through the proxy."""

from __future__ import annotations

import random

from sseproxy import origin
from sseproxy.faults.base import Deliver, End, Piece, Wake
from sseproxy.faults.slow_close import SlowClose
from tests.harness import memory_proxy


def make(delay: float = 5.0) -> SlowClose:
    return SlowClose({"delay": delay}, random.Random(0))


def test_the_end_waits_for_delay_while_data_flows() -> None:
    fault = make()
    piece = Piece(b"id: 1\n\n")
    assert fault.on_piece(piece, 1.0) == [Deliver(piece, 1.0)]
    assert fault.on_eof(2.0) == [Wake(7.0)]
    assert fault.on_timer(7.0) == [End()]  # no detail: the source's own end, passed on late


def test_a_closing_window_lets_a_held_end_through() -> None:
    fault = make()
    assert fault.stop(1.0) == []
    fault.on_eof(2.0)
    assert fault.stop(3.0) == [End()]


def test_no_delay_passes_the_source_end_itself() -> None:
    assert make(0.0).on_eof(2.0) == [End()]


SLOW_CLOSE = '[[faults]]\ntype = "slow-close"\ndelay = "5s"\n'


async def test_the_terminating_chunk_comes_delay_after_the_origin_ended(
    autojump_clock: object,
) -> None:
    settings = origin.OriginSettings(interval=1, heartbeat=0, count=3)  # ends at 2 s
    async with memory_proxy(SLOW_CLOSE, settings) as mp:
        client = mp.client()
        got = await client.get("/events")
        assert got.body == b"".join(origin.encode_event(n) for n in (1, 2, 3))
        assert [at for at, _ in got.chunks] == [0, 1, 2]
        assert (got.ending, got.ended_at) == ("end", 7.0)
        (ended,) = await mp.journal.wait_for("ended")
        # the end is the origin's own, only late
        assert (ended["by"], ended["reason"], ended["duration"]) == ("upstream", "upstream-end", 7)
        assert not mp.journal.of_kind("fault")
        # a clean end, only late: the connection carries the next request
        again = await client.get("/status/204")
        assert again.status == 204


async def test_outside_its_window_the_end_is_on_time(autojump_clock: object) -> None:
    scenario = SLOW_CLOSE + 'window = { until = "1s" }\n'
    settings = origin.OriginSettings(interval=1, heartbeat=0, count=3)
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events")
        assert (got.ending, got.ended_at) == ("end", 2.0)
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"]) == ("upstream", "upstream-end")
