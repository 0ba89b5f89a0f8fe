"""slicer: slicing decisions in pure code, then exact virtual times through the proxy."""

from __future__ import annotations

import random

import pytest

from sseproxy import origin
from sseproxy.errors import ScenarioError
from sseproxy.faults.base import Deliver, Piece
from sseproxy.faults.slicer import Slicer
from sseproxy.sse import Event
from tests.harness import memory_proxy, scenario_of


def cut(data: bytes) -> Piece:
    """A slice as the slicer delivers it: written on its own, never merged."""
    return Piece(data, boundary=True)


def make(size: int = 16, variation: int = 8, delay: float = 0.0, seed: int = 0) -> Slicer:
    settings = {"size": size, "variation": variation, "delay": delay}
    return Slicer(settings, random.Random(seed))


def test_slices_split_lines_and_crlf_and_follow_each_other_by_delay() -> None:
    fault = make(size=4, variation=2, delay=0.5)
    assert fault.on_piece(Piece(b"id: 1\r\ndata: x\r\n\r\n"), 3.0) == [
        Deliver(cut(b"id: 1"), 3.0),
        Deliver(cut(b"\r\ndat"), 3.5),  # the CRLF of `id` and the next line
        Deliver(cut(b"a:"), 4.0),
        Deliver(cut(b" x\r\n"), 4.5),
        Deliver(cut(b"\r\n"), 5.0),
    ]
    # a piece arriving while slices are still due waits its turn, `delay` after the last
    assert fault.on_piece(Piece(b"abc"), 4.0) == [Deliver(cut(b"abc"), 5.5)]
    # after a pause there is no catching up to do: the first slice goes at once
    assert fault.on_piece(Piece(b"abc"), 10.0) == [Deliver(cut(b"abc"), 10.0)]


@pytest.mark.parametrize("seed", range(20))
def test_bytes_exact_and_every_slice_within_bounds(seed: int) -> None:
    fault = make(size=16, variation=8, seed=seed)
    data = bytes(range(256)) * 4
    actions = fault.on_piece(Piece(data), 1.0)
    slices = [a.piece.data for a in actions if isinstance(a, Deliver)]
    assert len(slices) == len(actions)
    assert b"".join(slices) == data
    assert all(8 <= len(s) <= 24 for s in slices[:-1])
    assert 1 <= len(slices[-1]) <= 24
    assert all(isinstance(a, Deliver) and a.at == 1.0 for a in actions)  # no delay: all now


def test_same_seed_same_slices() -> None:
    data = Piece(bytes(500))
    assert make(seed=7).on_piece(data, 0.0) == make(seed=7).on_piece(data, 0.0)
    assert make(seed=7).on_piece(data, 0.0) != make(seed=8).on_piece(data, 0.0)


def test_a_piece_that_fits_in_one_slice_keeps_its_framing() -> None:
    piece = Piece(b"data: x\n\n", framed=True, event=Event("message", "x", ""))
    whole = Piece(piece.data, True, piece.event, boundary=True)
    assert make(size=16, variation=0).on_piece(piece, 2.0) == [Deliver(whole, 2.0)]


def test_variation_must_leave_slices_non_empty() -> None:
    with pytest.raises(ScenarioError, match=r"'variation'.*must be smaller than `size`"):
        scenario_of('[[faults]]\ntype = "slicer"\nsize = "4B"\nvariation = "4B"\n')
    (spec,) = scenario_of('[[faults]]\ntype = "slicer"\n').faults
    assert spec.settings == {"size": 16, "variation": 8, "delay": 0.0}


SLICER = '[[faults]]\ntype = "slicer"\nsize = "16B"\nvariation = "4B"\ndelay = "250ms"\n'


async def test_events_arrive_in_slices_a_quarter_second_apart(autojump_clock: object) -> None:
    settings = origin.OriginSettings(interval=10, heartbeat=0, count=3, size=100)
    async with memory_proxy(SLICER, settings) as mp:
        got = await mp.client().get("/events")
        assert got.body == b"".join(origin.encode_event(n, 100) for n in (1, 2, 3))
        for n in (1, 2, 3):  # event n is sent at 10(n-1) s, then sliced
            start = 10.0 * (n - 1)
            chunks = [(at, data) for at, data in got.chunks if start <= at < start + 10]
            assert b"".join(data for _, data in chunks) == origin.encode_event(n, 100)
            assert len(chunks) >= 5
            assert [at for at, _ in chunks] == [start + 0.25 * i for i in range(len(chunks))]
            assert all(12 <= len(data) <= 20 for _, data in chunks[:-1])
            assert 1 <= len(chunks[-1][1]) <= 20
        # the origin ends at 20 s; the end follows the last slice of event 3
        assert (got.ending, got.ended_at) == ("end", got.chunks[-1][0])
        assert got.ended_at == 20.0 + 0.25 * (len(chunks) - 1)
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"]) == ("upstream", "upstream-end")
