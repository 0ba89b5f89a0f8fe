"""drop-events: which blocks vanish in pure code, then exact bytes and times through the proxy."""

from __future__ import annotations

import random
from typing import Any

import pytest
from trio.testing import MockClock

from sseproxy import origin
from sseproxy.errors import ScenarioError
from sseproxy.faults.base import Deliver, Note, Piece
from sseproxy.faults.drop_events import DropEvents
from sseproxy.sse import Framer
from tests.harness import memory_proxy, scenario_of


def blocks(raw: bytes) -> list[Piece]:
    return [Piece(block.raw, True, block.event) for block in Framer().feed(raw)]


def make(seed: int = 0, **settings: Any) -> DropEvents:
    defaults = {"event": None, "id": None, "data": None, "comments": False, "rate": 1.0}
    DropEvents.check({**defaults, **settings})
    return DropEvents({**defaults, **settings}, random.Random(seed))


def kept(fault: DropEvents, pieces: list[Piece], now: float = 5.0) -> list[bytes]:
    out = []
    for piece in pieces:
        actions = fault.on_piece(piece, now)
        dropped = len(actions) == 1 and isinstance(actions[0], Note)
        assert dropped or actions == [Deliver(piece, now)]
        if dropped:
            assert f"({len(piece.data)} bytes)" in actions[0].detail  # type: ignore[union-attr]
        out += [] if dropped else [piece.data]
    return out


HB = origin.encode_heartbeat("event", 15.0)
STREAM = origin.encode_event(1) + HB + b": ping\n\n" + b"id: 7\n\n" + b"retry: 10\n\n"
STREAM += b"event: update\ndata: price=3\n\n" + origin.encode_event(2)


def test_drops_event_types_by_glob_and_keeps_everything_else() -> None:
    fault = make(event="heart*")
    assert fault.needs_events()
    pieces = blocks(STREAM)
    assert kept(fault, pieces) == [p.data for p in pieces if p.data != HB]


def test_comments_drops_comment_only_blocks_but_not_id_or_retry_blocks() -> None:
    fault = make(comments=True)
    pieces = blocks(b"\xef\xbb\xbf: bom\r\n\r\n" + STREAM + b": a\n: b\r\n\n")
    assert kept(fault, pieces) == [p.data for p in blocks(STREAM) if p.data != b": ping\n\n"]


def test_event_criteria_must_all_hold() -> None:
    fault = make(event="update", data=r"price=\d")
    assert kept(fault, blocks(STREAM)) == [p.data for p in blocks(STREAM) if b"price" not in p.data]
    only_two = make(id="2", data=r'"n": \d')
    assert kept(only_two, blocks(STREAM)) == [p.data for p in blocks(STREAM)][:-1]


def test_id_is_the_id_the_client_sees() -> None:
    # An event without an `id` field carries the last one, as MessageEvent.lastEventId does.
    pieces = blocks(b"id: 5\ndata: a\n\ndata: b\n\nid: 6\ndata: c\n\n")
    assert kept(make(id="5"), pieces) == [b"id: 6\ndata: c\n\n"]


def test_rate_draws_once_per_matching_block_from_the_seed() -> None:
    fault = make(seed=3, comments=True, rate=0.5)
    pieces = blocks(b": hb\n\ndata: x\n\n" * 20)
    draws = random.Random(3)
    expected = [
        p.data for p in pieces if p.event is not None or draws.random() >= 0.5
    ]  # events never match, so they draw nothing
    assert kept(fault, pieces) == expected
    assert 20 < len(expected) < 40


def test_trailing_incomplete_block_passes() -> None:
    rest = Piece(b"data: never dispatched")
    assert make(data=".*").on_piece(rest, 1.0) == [Deliver(rest, 1.0)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            "rate = 0.5",
            "test.toml:1: fault #1 (drop-events): "
            "give at least one of `event`, `id`, `data`, `comments = true`",
        ),
        (
            'data = "price=("',
            "test.toml:3: fault #1 (drop-events), field 'data': "
            "'price=(' is not a valid regex: missing ), unterminated subpattern at position 6",
        ),
        ('data = "x"\nrate = 1.5', "test.toml:4: fault #1 (drop-events), field 'rate': 1.5 is"),
    ],
)
def test_refused_settings(fields: str, message: str) -> None:
    with pytest.raises(ScenarioError) as info:
        scenario_of(f'[[faults]]\ntype = "drop-events"\n{fields}\n')
    assert str(info.value).startswith(message)


async def test_lost_heartbeat_events(autojump_clock: MockClock) -> None:
    scenario = '[[faults]]\ntype = "drop-events"\nevent = "heartbeat"\n'
    settings = origin.OriginSettings(interval=10, heartbeat=4, hb="event", count=3)
    async with memory_proxy(scenario, settings) as mp:
        client = mp.client()
        got = await client.get("/events")
        assert got.chunks == [(t * 10.0, origin.encode_event(t + 1)) for t in range(3)]
        assert (got.ending, got.ended_at) == ("end", 20.0)
        await client.stream.aclose()
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["events_down"], closed["last_id"]) == ("client", 3, "3")
        notes = mp.journal.of_kind("fault")  # each loss is in the journal, nothing stopped
        assert notes and {n["action"] for n in notes} == {"note"}
        assert all(n["detail"].startswith("dropped event") for n in notes)


async def test_lost_comment_heartbeats_and_one_message(autojump_clock: MockClock) -> None:
    scenario = '[[faults]]\ntype = "drop-events"\ncomments = true\nid = "2"\n'
    settings = origin.OriginSettings(interval=10, heartbeat=4, count=3)
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events")
        assert got.chunks == [(0.0, origin.encode_event(1)), (20.0, origin.encode_event(3))]
        assert (got.ending, got.ended_at) == ("end", 20.0)
