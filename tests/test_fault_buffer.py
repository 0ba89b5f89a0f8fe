"""buffer: holding decisions in pure code, then exact virtual times through the proxy."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
import trio
import trio.testing

from sseproxy import origin
from sseproxy.errors import ScenarioError
from sseproxy.faults import buffer as buffer_module
from sseproxy.faults.base import Deliver, End, Note, Piece, ResponseHead, Wake
from sseproxy.faults.buffer import Buffer, head_size
from sseproxy.link import CHUNK, MAX_IN_FLIGHT
from sseproxy.params import ParamError
from sseproxy.sse import Event
from tests.harness import memory_proxy, scenario_of


def make(**settings: Any) -> Buffer:
    defaults: dict[str, Any] = {
        "size": 4096,
        "flush": None,
        "until": "size",
        "mode": "bytes",
        "respect_accel": True,
    }
    return Buffer(defaults | settings, random.Random(0))


def head(*headers: tuple[bytes, bytes]) -> Piece:
    return Piece(b"", head=ResponseHead(200, ((b"content-type", b"text/event-stream"), *headers)))


def event(n: int) -> Piece:
    return Piece(origin.encode_event(n), True, Event("message", f'{{"n": {n}}}', str(n)))


COMMENT = Piece(b": heartbeat\n\n", framed=True)
NO_ACCEL = (b"x-accel-buffering", b"no")


# -- decisions -----------------------------------------------------------------------------


def test_holds_until_size_then_releases_in_order() -> None:
    fault = make(size=10)
    assert fault.on_piece(head(), 0.0) == [Deliver(head(), 0.0)]  # the head is never held
    a, b, c = Piece(b"0123"), Piece(b"4567"), Piece(b"89ab")
    assert fault.on_piece(a, 1.0) == []
    assert fault.on_piece(b, 2.0) == []
    assert fault.on_piece(c, 3.0) == [Deliver(a, 3.0), Deliver(b, 3.0), Deliver(c, 3.0), Wake(None)]
    assert fault.on_piece(a, 4.0) == []
    assert fault.on_eof(5.0) == [Deliver(a, 5.0), End()]


def test_flush_wakes_after_the_first_held_byte() -> None:
    fault = make(flush=2.0)
    a, b = Piece(b"a"), Piece(b"b")
    assert fault.on_piece(a, 1.0) == [Wake(3.0)]
    assert fault.on_piece(b, 2.0) == []  # the deadline stays with the first byte
    assert fault.on_timer(3.0) == [Deliver(a, 3.0), Deliver(b, 3.0)]
    assert fault.on_piece(b, 4.0) == [Wake(6.0)]


def test_until_close_holds_past_the_size() -> None:
    fault = make(size=1, until="close")
    assert fault.on_piece(Piece(b"x" * 100), 1.0) == []
    assert fault.on_eof(9.0) == [Deliver(Piece(b"x" * 100), 9.0), End()]


def test_one_behind_delivers_an_event_when_the_next_arrives() -> None:
    fault = make(mode="one-behind")
    assert fault.needs_events()
    assert fault.on_piece(event(1), 1.0) == []
    assert fault.on_piece(COMMENT, 1.5) == []  # a comment waits with the event before it
    assert fault.on_piece(event(2), 2.0) == [Deliver(event(1), 2.0), Deliver(COMMENT, 2.0)]
    assert fault.on_eof(3.0) == [Deliver(event(2), 3.0), End()]


def test_x_accel_buffering_no_passes_everything_through() -> None:
    fault = make(size=1)
    aside = Note(buffer_module.ASIDE)
    assert fault.on_piece(head(NO_ACCEL), 0.0) == [aside, Deliver(head(NO_ACCEL), 0.0)]
    assert fault.on_piece(Piece(b"x"), 1.0) == [Deliver(Piece(b"x"), 1.0)]
    ignoring = make(size=10, respect_accel=False)
    ignoring.on_piece(head(NO_ACCEL), 0.0)
    assert ignoring.on_piece(Piece(b"x"), 1.0) == []


def test_window_end_hands_back_what_is_held() -> None:
    fault = make()
    fault.on_piece(Piece(b"abc"), 1.0)
    assert fault.stop(2.0) == [Deliver(Piece(b"abc"), 2.0)]


def test_check_refuses_flush_with_until_close() -> None:
    with pytest.raises(ParamError) as caught:
        Buffer.check({"until": "close", "flush": 2.0})
    assert caught.value.field == "flush"
    Buffer.check({"until": "size", "flush": 2.0})
    Buffer.check({"until": "close", "flush": None})
    with pytest.raises(ScenarioError, match=r"field 'flush'.*no effect"):
        scenario_of('[[faults]]\ntype = "buffer"\nuntil = "close"\nflush = "2s"\n')


# -- through the proxy, in virtual time ----------------------------------------------------

EVERY_SECOND = origin.OriginSettings(interval=1, heartbeat=0)  # event n at n - 1 s, ~22 B
IGNORE_ACCEL = '[[faults]]\ntype = "buffer"\nrespect_accel = false\n'


def events(numbers: range) -> bytes:
    return b"".join(origin.encode_event(n) for n in numbers)


def filled_at(size: int) -> int:
    """The number of the event that makes the held bytes reach `size`."""
    total = itertools.accumulate(len(origin.encode_event(n)) for n in itertools.count(1))
    return next(n for n, held in enumerate(total, 1) if held >= size)


async def test_small_events_arrive_together_once_4kib_are_held(autojump_clock: object) -> None:
    last = filled_at(4096)
    assert 150 < last < 200
    async with memory_proxy(IGNORE_ACCEL, EVERY_SECOND) as mp:
        got = await mp.client().get("/events", limit=len(events(range(1, last + 1))))
        assert got.status == 200
        assert got.body == events(range(1, last + 1))
        # event `last` is due at last - 1 s: everything arrives at that instant
        assert {at for at, _ in got.chunks} == {float(last - 1)}
        (response,) = mp.journal.of_kind("response")
        assert response["t"] == 0.0  # the head is not held


async def test_flush_delivers_two_seconds_after_the_first_held_byte(
    autojump_clock: object,
) -> None:
    settings = origin.OriginSettings(interval=1.5, heartbeat=0)  # events at 0, 1.5, 3, 4.5 ...
    async with memory_proxy(IGNORE_ACCEL + 'flush = "2s"\n', settings) as mp:
        got = await mp.client().get("/events", limit=len(events(range(1, 7))))
        assert got.body == events(range(1, 7))
        # held from 0 (1, 2) until 2; from 3 (3, 4) until 5; from 6 (5, 6) until 8
        assert [at for at, _ in got.chunks] == [2.0, 5.0, 8.0]  # each release in one write


async def test_until_close_delivers_everything_at_the_end(autojump_clock: object) -> None:
    settings = origin.OriginSettings(interval=1, heartbeat=0, count=5)  # ends at 4 s
    scenario = IGNORE_ACCEL + 'until = "close"\nsize = "1B"\n'
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events")
        assert got.body == events(range(1, 6))
        assert [at for at, _ in got.chunks] == [4.0]  # everything, in one write
        assert (got.ending, got.ended_at) == ("end", 4.0)
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"]) == ("upstream", "upstream-end")


async def test_one_behind_delivers_each_event_when_the_next_arrives(
    autojump_clock: object,
) -> None:
    settings = origin.OriginSettings(interval=2, heartbeat=1.5, count=4)  # beats 1.5, 3, 4.5
    async with memory_proxy(IGNORE_ACCEL + 'mode = "one-behind"\n', settings) as mp:
        got = await mp.client().get("/events")
        beat = origin.encode_heartbeat("comment", 0)
        assert [(at, data) for at, data in got.chunks] == [
            (2.0, origin.encode_event(1) + beat),
            (4.0, origin.encode_event(2) + beat),
            (6.0, origin.encode_event(3) + beat),
            (6.0, origin.encode_event(4)),  # the last one comes with the end of the stream
        ]
        assert (got.ending, got.ended_at) == ("end", 6.0)


async def test_the_origin_x_accel_buffering_no_is_respected_by_default(
    autojump_clock: object,
) -> None:
    async with memory_proxy('[[faults]]\ntype = "buffer"\n', EVERY_SECOND) as mp:
        got = await mp.client().get("/events", limit=len(events(range(1, 6))))
        assert got.headers[b"x-accel-buffering"] == b"no"
        assert [at for at, _ in got.chunks] == [0.0, 1.0, 2.0, 3.0, 4.0]


async def test_removing_x_accel_buffering_before_the_buffer_makes_it_buffer(
    autojump_clock: object,
) -> None:
    scenario = (
        '[[faults]]\ntype = "headers"\nremove = ["X-Accel-Buffering"]\n\n'
        '[[faults]]\ntype = "buffer"\n'
    )
    last = filled_at(4096)
    async with memory_proxy(scenario, EVERY_SECOND) as mp:
        got = await mp.client().get("/events", limit=len(events(range(1, last + 1))))
        assert b"x-accel-buffering" not in got.headers
        assert {at for at, _ in got.chunks} == {float(last - 1)}


async def test_removing_it_after_the_buffer_is_too_late(autojump_clock: object) -> None:
    scenario = (
        '[[faults]]\ntype = "buffer"\n\n'
        '[[faults]]\ntype = "headers"\nremove = ["X-Accel-Buffering"]\n'
    )
    async with memory_proxy(scenario, EVERY_SECOND) as mp:
        got = await mp.client().get("/events", limit=len(events(range(1, 4))))
        assert b"x-accel-buffering" not in got.headers
        assert [at for at, _ in got.chunks] == [0.0, 1.0, 2.0]  # the buffer saw `no`


async def test_holding_until_the_end_reads_on_past_the_stage_default(
    autojump_clock: object,
) -> None:
    settings = origin.OriginSettings(interval=0, size=64 * 1024, heartbeat=0, count=160)
    read: list[int] = []

    class Counting(trio.abc.Stream):
        def __init__(self, stream: trio.abc.Stream) -> None:
            self.stream = stream

        async def receive_some(self, max_bytes: int | None = None) -> bytes:
            data = bytes(await self.stream.receive_some(max_bytes))
            read.append(len(data))
            return data

        async def send_all(self, data: bytes | bytearray | memoryview) -> None:
            await self.stream.send_all(data)

        async def wait_send_all_might_not_block(self) -> None:
            await self.stream.wait_send_all_might_not_block()

        async def aclose(self) -> None:
            await self.stream.aclose()

    async with memory_proxy(IGNORE_ACCEL + 'until = "close"\n') as mp:

        async def connect() -> trio.abc.Stream:
            proxy_end, origin_end = trio.testing.lockstep_stream_pair()
            mp.nursery.start_soon(origin.handle_connection, origin_end, settings)
            return Counting(proxy_end)

        mp.proxy.connector = connect
        client = mp.client()
        await client.send("GET", "/events")
        await trio.sleep(60)
        # 10 MiB were offered: a buffer holding until the end must read on past the
        # 4 MiB a stage may otherwise hold, or the end it waits for never comes
        assert sum(read) > 10 * 1024 * 1024 > MAX_IN_FLIGHT + CHUNK


def test_past_the_hold_limit_it_lets_the_stream_through(monkeypatch: Any) -> None:
    monkeypatch.setattr(buffer_module, "HOLD_LIMIT", 100)
    fault = make(until="close", respect_accel=False)
    assert fault.in_flight_limit() == buffer_module.HOLD_LIMIT
    first, second, third = Piece(b"a" * 60), Piece(b"b" * 60), Piece(b"c")
    assert fault.on_piece(first, 1.0) == []
    assert fault.on_piece(second, 2.0) == [
        Note("held 100B: passing the stream through"),
        Deliver(first, 2.0),
        Deliver(second, 2.0),
        Wake(None),
    ]
    assert fault.holding() == 0
    assert fault.on_piece(third, 3.0) == [Deliver(third, 3.0)]


def test_hold_head_keeps_the_head_until_the_first_release() -> None:
    head = Piece(b"", head=ResponseHead(200, ((b"content-type", b"text/event-stream"),)))
    assert head.head is not None
    fault = make(size=head_size(head.head) + 10, hold_head=True)
    assert fault.on_piece(head, 0.0) == []
    first, second = Piece(b"12345"), Piece(b"67890")
    assert fault.on_piece(first, 1.0) == []
    assert fault.on_piece(second, 2.0) == [
        Deliver(head, 2.0),
        Deliver(first, 2.0),
        Deliver(second, 2.0),
        Wake(None),
    ]


def test_a_held_heads_bytes_count_toward_the_size_as_in_nginx() -> None:
    """nginx reads the upstream's head into its first buffer, so a 4k buffer releases
    one event sooner than the body's bytes alone would say."""
    wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-A: 1\r\n\r\n"
    headers = ((b"content-type", b"text/event-stream"), (b"x-a", b"1"))
    response = ResponseHead(200, headers, b"OK")
    assert head_size(response) == len(wire)
    assert head_size(ResponseHead(200)) == len(b"HTTP/1.1 200\r\n\r\n")
    held_head, plain = make(size=100, hold_head=True), make(size=100)
    head = Piece(b"", head=response)
    assert held_head.on_piece(head, 0.0) == []
    assert held_head.holding() == len(wire)
    body = Piece(b"x" * (100 - len(wire)))
    assert held_head.on_piece(body, 1.0) == [Deliver(head, 1.0), Deliver(body, 1.0), Wake(None)]
    assert plain.on_piece(head, 0.0) == [Deliver(head, 0.0)]
    assert plain.on_piece(body, 1.0) == []  # only the body counts without hold_head


def test_a_held_head_starts_the_flush_timer() -> None:
    fault = make(size=4096, flush=0.5, hold_head=True)
    head = Piece(b"", head=ResponseHead(200))
    assert fault.on_piece(head, 1.0) == [Wake(1.5)]
    assert fault.on_piece(Piece(b"a"), 1.2) == []
    assert fault.on_timer(1.5) == [Deliver(head, 1.5), Deliver(Piece(b"a"), 1.5)]


def test_cut_short_a_held_head_still_goes_out_but_the_body_is_lost() -> None:
    """nginx: proxy_read_timeout while buffering sends the header, not the held events."""
    fault = make(hold_head=True)
    head = Piece(b"", head=ResponseHead(200))
    fault.on_piece(head, 0.0)
    fault.on_piece(Piece(b"id: 1\ndata: x\n\n"), 0.5)
    assert fault.on_abort(1.0) == [Deliver(head, 1.0)]
    assert make().on_abort(1.0) == []
