"""bandwidth: pacing decisions in pure code, then exact virtual times through the proxy."""

from __future__ import annotations

import random

import trio
import trio.testing

from sseproxy import origin
from sseproxy.faults.bandwidth import Bandwidth
from sseproxy.faults.base import Deliver, End, Piece
from sseproxy.link import FaultSlot, run_link
from sseproxy.sse import Event
from sseproxy.transport import StreamSink
from tests.harness import memory_proxy, scenario_of


def make(rate: int = 1024) -> Bandwidth:
    return Bandwidth({"rate": rate}, random.Random(0))


def test_the_kth_byte_is_due_k_over_rate_after_the_start() -> None:
    fault = make(1000)  # slices of 50 bytes
    actions = fault.on_piece(Piece(bytes(120)), 10.0)
    assert actions == [
        Deliver(Piece(bytes(50)), 10.05),
        Deliver(Piece(bytes(50)), 10.1),
        Deliver(Piece(bytes(20)), 10.12),
    ]
    # the next piece queues behind the first: no byte earlier than its turn
    assert fault.on_piece(Piece(b"x" * 10), 10.0) == [Deliver(Piece(b"x" * 10), 10.13)]


def test_idle_time_is_not_saved_up_for_a_burst() -> None:
    fault = make(1024)
    fault.on_piece(Piece(bytes(51)), 0.0)
    # 100 s of silence: the next piece is paced from its own arrival, not from 0
    assert fault.on_piece(Piece(bytes(1024)), 100.0)[-1] == Deliver(Piece(bytes(4)), 101.0)


def test_a_piece_within_one_slice_keeps_its_framing() -> None:
    piece = Piece(b"data: x\n\n", framed=True, event=Event("message", "x", ""))
    assert make(1024).on_piece(piece, 1.0) == [Deliver(piece, 1.0 + 9 / 1024)]


def test_reading_is_throttled_with_it() -> None:
    assert make(1024).in_flight_limit() == 1024
    assert make(1024 * 1024).in_flight_limit() == 256 * 1024
    assert make(1024).on_eof(3.0) == [End()]


def test_rate_is_a_size_per_second() -> None:
    (spec,) = scenario_of('[[faults]]\ntype = "bandwidth"\nrate = "10KiB"\n').faults
    assert spec.settings == {"rate": 10 * 1024}


async def test_the_sender_feels_the_slowness(autojump_clock: object) -> None:
    """A lockstep source: each write returns only once the link has read it."""
    feed, source = trio.testing.lockstep_stream_pair()
    sink, far_end = trio.testing.memory_stream_pair()
    written: list[float] = []
    received = bytearray()

    async def send() -> None:
        for _ in range(10):
            await feed.send_all(bytes(1024))
            written.append(trio.current_time())
        await feed.aclose()

    async def drain() -> None:
        while data := await far_end.receive_some():
            received.extend(data)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        nursery.start_soon(drain)
        result = await run_link(source, StreamSink(sink), [FaultSlot("bandwidth", make(1024))])
    assert (result.kind, result.origin, trio.current_time()) == ("end", None, 10.0)
    assert len(received) == 10240
    # one KiB in the pipe and one waiting: the sender writes at the pipe's pace, not at once
    assert written == [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]


async def test_ten_kib_at_one_kib_per_second_take_ten_seconds(autojump_clock: object) -> None:
    settings = origin.OriginSettings(interval=0, heartbeat=0, count=10, size=1024)
    async with memory_proxy('[[faults]]\ntype = "bandwidth"\nrate = "1KiB"\n', settings) as mp:
        client = mp.client()
        got = await client.get("/events")
        assert got.body == b"".join(origin.encode_event(n, 1024) for n in range(1, 11))
        assert (got.ending, got.ended_at) == ("end", 10.0)
        assert got.chunks[-1][0] == 10.0
        total = 0
        for at, chunk in got.chunks:  # never ahead of the rate, and never more than a slice late
            total += len(chunk)
            assert total == at * 1024
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"], ended["duration"]) == ("upstream", "upstream-end", 10)
        await client.stream.aclose()
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["bytes_down"], closed["events_down"]) == (10240, 10)
        assert not mp.journal.of_kind("fault")
