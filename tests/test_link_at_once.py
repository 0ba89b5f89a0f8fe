"""The reader's own write (`Link._write_at_once`) on real sockets.

While the writer waits with nothing to write, the reader writes what its read made due
itself, as far as the socket takes it at once, and leaves the rest to the writer. These
tests pin down what that must not change: the reader never waits on a slow peer (an idle
timer must not see a silence that was not there), a timer's cut still abandons what is
left, and a peer that is gone is the sink's failure, not the source's.

Unix socket pairs: a write is readable at once, so virtual time (`autojump_clock`) holds.
"""

from __future__ import annotations

import random
import socket
from typing import Any

import trio

from sseproxy.faults.base import Piece
from sseproxy.faults.idle_timeout import IdleTimeout
from sseproxy.link import FaultSlot, LinkResult, run_link
from tests.test_link import TracingSink

SMALL_BUFFER = 4096


def socket_pair(send_buffer: int | None = None) -> tuple[trio.SocketStream, trio.SocketStream]:
    one, two = trio.socket.socketpair()
    if send_buffer is not None:
        one.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
    return trio.SocketStream(one), trio.SocketStream(two)


class CountingSink(TracingSink):
    """Notes which way each data piece went: the writer's `send` or the reader's
    `send_nowait` (and what `send_nowait` left for `send_rest`)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        super().__init__(stream)
        self.sent: list[bytes] = []
        self.sent_nowait: list[bytes] = []
        self.rests: list[int] = []

    async def send(self, piece: Piece) -> None:
        self.sent.append(piece.data)
        await super().send(piece)

    def send_nowait(self, piece: Piece) -> bytes | memoryview:
        self.sent_nowait.append(piece.data)
        return super().send_nowait(piece)

    async def send_rest(self, rest: bytes | memoryview) -> None:
        self.rests.append(len(rest))
        await super().send_rest(rest)


def idle_timeout(timeout: float, counts: str = "bytes") -> FaultSlot:
    settings = {"timeout": timeout, "counts": counts, "action": "close"}
    return FaultSlot("idle", IdleTimeout(settings, random.Random(0)))


def event(number: int, size: int = 100) -> bytes:
    head = b"id: %d\ndata: " % number
    return head + b"x" * (size - len(head) - 2) + b"\n\n"


async def read_all(stream: trio.SocketStream, into: bytearray, start: float = 0) -> None:
    await trio.sleep_until(start)
    while data := await stream.receive_some(65536):
        into.extend(data)


async def run(
    sink: CountingSink,
    source: trio.SocketStream,
    slots: list[FaultSlot],
    observed: list[Piece] | None = None,
) -> LinkResult:
    return await run_link(
        source, sink, slots, observe=None if observed is None else observed.extend
    )


async def test_the_reader_writes_each_event_itself_while_the_writer_waits(
    autojump_clock: Any,
) -> None:
    feed, source = socket_pair()
    sink_end, far = socket_pair()
    sink = CountingSink(sink_end)
    events = [event(n) for n in range(5)]
    got = bytearray()
    observed: list[Piece] = []

    async def script() -> None:
        for number, data in enumerate(events):
            await trio.sleep_until(number)
            await feed.send_all(data)
        await feed.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(script)
        nursery.start_soon(read_all, far, got)
        result = await run(sink, source, [idle_timeout(60, "events")], observed)
    assert result.kind == "end"
    assert bytes(got) == b"".join(events)
    assert sink.sent_nowait == events  # one write each, by the reader
    assert sink.sent == [] and sink.rests == []
    assert b"".join(piece.data for piece in observed) == b"".join(events)


async def test_what_the_socket_does_not_take_goes_to_the_writer_and_reading_goes_on(
    autojump_clock: Any,
) -> None:
    """A big event into a peer that reads nothing for 30 s: the reader writes what the
    socket takes and reads on; the upstream's bytes every second keep a 5 s idle timer
    quiet. Had the reader waited on the peer, the timer would have cut at 5 s."""
    feed, source = socket_pair()
    sink_end, far = socket_pair(SMALL_BUFFER)
    sink = CountingSink(sink_end)
    big = event(0, 1024 * 1024)
    ticks = [b": tick %d\n" % n for n in range(20)]
    got = bytearray()

    async def script() -> None:
        await feed.send_all(big)
        for number, tick in enumerate(ticks):
            await trio.sleep_until(number + 1)
            await feed.send_all(tick)
        await feed.send_eof()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(script)
        nursery.start_soon(read_all, far, got, 30)
        result = await run(sink, source, [idle_timeout(5)])
    assert result.kind == "end" and result.origin is None
    assert bytes(got) == big + b"".join(ticks)
    assert sink.sent_nowait and sink.rests  # the reader began, the writer finished


async def test_a_timer_cut_abandons_what_the_reader_left(autojump_clock: Any) -> None:
    """The peer reads nothing, the upstream goes quiet after one big event: the idle
    timer's close comes at 3 s, and what the socket had not taken is not written after
    it."""
    feed, source = socket_pair()
    sink_end, far = socket_pair(SMALL_BUFFER)
    sink = CountingSink(sink_end)
    big = event(0, 1024 * 1024)
    got = bytearray()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed.send_all, big)
        nursery.start_soon(read_all, far, got, 10)
        result = await run(sink, source, [idle_timeout(3)])
        await feed.aclose()
    assert (result.kind, result.origin) == ("close", "idle")
    assert sink.stops == [("close", 3.0)]
    assert 0 < len(got) < len(big)
    assert big.startswith(bytes(got))


async def test_a_peer_gone_during_the_readers_write_is_the_sinks_failure(
    autojump_clock: Any,
) -> None:
    feed, source = socket_pair()
    sink_end, far = socket_pair()
    sink = CountingSink(sink_end)
    await far.aclose()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(feed.send_all, event(1))
        result = await run(sink, source, [idle_timeout(60, "events")])
    assert result.kind == "sink-error"
    assert isinstance(result.error, trio.BrokenResourceError)
    assert sink.sent_nowait == [event(1)]
    await feed.aclose()
