"""delay-events: due times in pure code, then exact arrival times through the proxy."""

from __future__ import annotations

import random
from typing import Any

from trio.testing import MockClock

from sseproxy import origin
from sseproxy.faults.base import Deliver, Piece
from sseproxy.faults.delay_events import DelayEvents
from sseproxy.faults.drop_events import BlockMatch
from sseproxy.sse import Framer
from tests.harness import memory_proxy


def blocks(raw: bytes) -> list[Piece]:
    return [Piece(block.raw, True, block.event) for block in Framer().feed(raw)]


def make(seed: int = 0, **settings: Any) -> DelayEvents:
    defaults = {"event": None, "id": None, "data": None, "comments": False, "rate": 1.0}
    full = {**defaults, "jitter": 0.0, **settings}
    DelayEvents.check(full)
    return DelayEvents(full, random.Random(seed))


def test_shares_its_matching_fields_with_drop_events() -> None:
    names = [param.name for param in DelayEvents.params]
    assert names == ["delay", "jitter", *(param.name for param in BlockMatch.params)]


def test_later_blocks_wait_behind_a_delayed_one() -> None:
    fault = make(event="heartbeat", delay=2.0)
    assert fault.needs_events()
    e1, hb, e2, e3 = blocks(
        origin.encode_event(1)
        + origin.encode_heartbeat("event", 5.0)
        + origin.encode_event(2)
        + origin.encode_event(3)
    )
    assert fault.on_piece(e1, 0.0) == [Deliver(e1, 0.0)]
    assert fault.on_piece(hb, 5.0) == [Deliver(hb, 7.0)]
    assert fault.on_piece(e2, 6.0) == [Deliver(e2, 7.0)]  # behind the heartbeat
    assert fault.on_piece(e3, 10.0) == [Deliver(e3, 10.0)]  # the queue drained meanwhile
    rest = Piece(b"data: cut")
    assert fault.on_piece(rest, 10.5) == [Deliver(rest, 10.5)]


def test_jitter_is_drawn_per_matching_block_and_never_reorders() -> None:
    fault = make(seed=7, comments=True, delay=1.0, jitter=0.5)
    pieces = blocks(b": hb\n\ndata: x\n\n" * 10)
    draws = random.Random(7)
    last, expected = 0.0, []
    for i, piece in enumerate(pieces):
        due = i + (1.0 + draws.uniform(-0.5, 0.5) if piece.event is None else 0.0)
        last = max(last, due)
        expected.append(Deliver(piece, last))
    assert [fault.on_piece(p, float(i)) for i, p in enumerate(pieces)] == [[d] for d in expected]


def merged(chunks: list[tuple[float, bytes]]) -> list[tuple[float, bytes]]:
    """Chunks written at the same instant, joined (how they are split is not our business)."""
    out: list[tuple[float, bytes]] = []
    for at, data in chunks:
        if out and out[-1][0] == at:
            out[-1] = (at, out[-1][1] + data)
        else:
            out.append((at, data))
    return out


async def test_late_heartbeat_holds_back_the_stream(autojump_clock: MockClock) -> None:
    scenario = '[[faults]]\ntype = "delay-events"\ndelay = "7s"\ncomments = true\n'
    settings = origin.OriginSettings(interval=10, heartbeat=6, count=3)
    hb = origin.encode_heartbeat("comment", 0)
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events")
        assert merged(got.chunks) == [
            (0.0, origin.encode_event(1)),
            (13.0, hb + origin.encode_event(2)),  # sent at 6 and 10
            (19.0, hb),  # sent at 12
            (25.0, hb + origin.encode_event(3)),  # sent at 18 and 20
        ]
        assert (got.ending, got.ended_at) == ("end", 25.0)  # the end queues behind them too
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"], ended["t"]) == ("upstream", "upstream-end", 25.0)
