"""idle-timeout: decisions in pure code, then exact virtual times through the proxy."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable

import pytest
import trio
import trio.testing

from sseproxy import origin
from sseproxy.faults.base import Close, Deliver, End, Piece, Reset, Wake
from sseproxy.faults.idle_timeout import IdleTimeout
from sseproxy.sse import Event
from tests.harness import memory_proxy


def make(
    timeout: float = 60.0, counts: str = "bytes", action: str = "close", lazy: float = 0.0
) -> IdleTimeout:
    settings = {"timeout": timeout, "counts": counts, "action": action, "lazy": lazy}
    return IdleTimeout(settings, random.Random(0))


def test_any_byte_moves_the_deadline() -> None:
    fault = make()
    assert fault.start(0.0) == [Wake(60.0)]
    piece = Piece(b": hb\n\n")
    assert fault.on_piece(piece, 30.0) == [Deliver(piece, 30.0), Wake(90.0)]


def test_comments_do_not_count_when_counting_events() -> None:
    fault = make(counts="events")
    assert fault.needs_events()
    comment = Piece(b": hb\n\n", framed=True)
    event = Piece(b"data: x\n\n", framed=True, event=Event("message", "x", ""))
    assert fault.on_piece(comment, 10.0) == [Deliver(comment, 10.0)]
    assert fault.on_piece(event, 20.0) == [Deliver(event, 20.0), Wake(80.0)]


@pytest.mark.parametrize(("action", "stop"), [("close", Close), ("reset", Reset), ("end", End)])
def test_timer_answers_the_configured_action(action: str, stop: type) -> None:
    assert make(action=action).on_timer(60.0) == [stop("no byte for 60s")]


SLOW_HEARTBEAT = origin.OriginSettings(interval=10_000, heartbeat=61)


async def test_closes_at_exactly_the_timeout(autojump_clock: object) -> None:
    scenario = '[[faults]]\ntype = "idle-timeout"\ntimeout = "60s"\n'
    async with memory_proxy(scenario, SLOW_HEARTBEAT) as mp:
        got = await mp.client().get("/events")
        assert got.status == 200
        assert got.ending == "closed"
        assert got.ended_at == 60.0
        assert got.body == origin.encode_event(1)
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["reason"], closed["t"]) == ("proxy", "idle-timeout", 60.0)
        assert closed["events_down"] == 1 and closed["last_id"] == "1"


async def test_heartbeats_within_the_timeout_keep_the_stream(autojump_clock: object) -> None:
    scenario = '[[faults]]\ntype = "idle-timeout"\ntimeout = "60s"\n'
    settings = origin.OriginSettings(interval=100, heartbeat=30, count=10)
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events")
        assert got.ending == "end"
        assert got.ended_at == 900.0  # event 10 at 9 x 100 s; never cut
        assert not mp.journal.of_kind("fault")


async def test_comment_heartbeats_do_not_help_when_counting_events(autojump_clock: object) -> None:
    scenario = '[[faults]]\ntype = "idle-timeout"\ntimeout = "60s"\ncounts = "events"\n'
    settings = origin.OriginSettings(interval=10_000, heartbeat=15)
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events")
        assert (got.ending, got.ended_at) == ("closed", 60.0)
        assert got.body.count(b": heartbeat") == 3  # at 15, 30, 45: delivered, not counted


async def test_event_heartbeats_do_help_when_counting_events(autojump_clock: object) -> None:
    scenario = '[[faults]]\ntype = "idle-timeout"\ntimeout = "20s"\ncounts = "events"\n'
    settings = origin.OriginSettings(interval=10_000, heartbeat=15, hb="event")
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events", limit=400)
        assert got.ending == ""  # still open after several heartbeats
        assert trio_time(got) >= 90.0


def trio_time(got: object) -> float:
    return got.chunks[-1][0]  # type: ignore[attr-defined,no-any-return]


async def test_end_action_finishes_the_response_cleanly(autojump_clock: object) -> None:
    scenario = '[[faults]]\ntype = "idle-timeout"\ntimeout = "5s"\naction = "end"\n'
    async with memory_proxy(scenario, SLOW_HEARTBEAT) as mp:
        client = mp.client()
        got = await client.get("/events")
        assert (got.ending, got.ended_at) == ("end", 5.0)
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"]) == ("proxy", "idle-timeout")
        # keep-alive survives a clean end: a second request on the same connection works
        again = await client.get("/status/204")
        assert again.status == 204


async def test_before_the_response_head_the_proxy_answers_the_status(
    autojump_clock: object,
) -> None:
    """nginx: proxy_read_timeout before the response head is a 504 from nginx itself."""
    import trio

    async def silent_upstream() -> trio.abc.Stream:
        proxy_end, upstream_end = trio.testing.memory_stream_pair()
        holder.append(upstream_end)  # never answers
        return proxy_end

    holder: list[trio.abc.Stream] = []
    scenario = '[[faults]]\ntype = "idle-timeout"\ntimeout = "60s"\nstatus = 524\n'
    async with memory_proxy(scenario) as mp:
        mp.proxy.connector = silent_upstream
        got = await mp.client().get("/events")
        assert (got.status, got.ended_at) == (524, 60.0)
        assert got.body == b"sseproxy: no byte for 60s\n"
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"]) == ("proxy", "idle-timeout")


async def test_drop_forgets_the_flow_and_leaves_the_socket_open(autojump_clock: object) -> None:
    """Azure LB: after the idle timeout nothing passes, and nobody is told."""
    import trio

    scenario = '[[faults]]\ntype = "idle-timeout"\ntimeout = "240s"\naction = "drop"\n'
    settings = origin.OriginSettings(interval=300, heartbeat=0)
    async with memory_proxy(scenario, settings) as mp:
        client = mp.client()
        got = await client.get("/events", limit=len(origin.encode_event(1)))
        assert got.body == origin.encode_event(1)
        with trio.move_on_after(3600):  # event 2 at t=300 and every 300 s after: all lost
            await client.response()
        assert trio.current_time() == 3600  # still open, still silent
        (note,) = mp.journal.of_kind("fault")
        assert (note["t"], note["action"]) == (240.0, "note")
        assert not mp.journal.of_kind("closed")


def test_a_lazy_deadline_moves_only_by_lazy_or_more() -> None:
    """nginx's NGX_TIMER_LAZY_DELAY: a read that would move the timer by < 300 ms leaves it."""
    fault = make(timeout=3.0, lazy=0.3)
    assert fault.start(0.0) == [Wake(3.0)]
    piece = Piece(b"data: x\n\n")
    assert fault.on_piece(piece, 0.1) == [Deliver(piece, 0.1)]  # 3.1 is within 0.3 of 3.0
    assert fault.on_piece(piece, 0.29) == [Deliver(piece, 0.29)]
    assert fault.on_piece(piece, 0.35) == [Deliver(piece, 0.35), Wake(3.35)]
    assert fault.on_piece(piece, 0.6) == [Deliver(piece, 0.6)]  # measured from 3.35 now
    assert fault.on_piece(piece, 0.7) == [Deliver(piece, 0.7), Wake(3.7)]


def test_lazy_zero_moves_the_deadline_on_every_byte() -> None:
    fault = make(timeout=3.0)
    fault.start(0.0)
    piece = Piece(b"x")
    assert fault.on_piece(piece, 0.001) == [Deliver(piece, 0.001), Wake(3.001)]


def scripted_upstream(
    nursery: trio.Nursery, times: tuple[float, ...]
) -> Callable[[], Awaitable[trio.abc.Stream]]:
    """An upstream answering an event-stream head, then one event at each of `times`
    (seconds after it was asked), then silence."""

    async def serve(stream: trio.abc.Stream) -> None:
        start = trio.current_time()
        await stream.receive_some()
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: 1000\r\n\r\n"
        await stream.send_all(head)
        for n, at in enumerate(times, 1):
            await trio.sleep_until(start + at)
            await stream.send_all(b"data: %d\n\n" % n)
        await trio.sleep_forever()

    async def connect() -> trio.abc.Stream:
        proxy_end, upstream_end = trio.testing.memory_stream_pair()
        nursery.start_soon(serve, upstream_end)
        return proxy_end

    return connect


@pytest.mark.parametrize(
    ("lazy", "times", "cut_at"),
    [
        ("300ms", (0.0, 0.1), 2.0),  # nginx: the read at 0.1 s does not move the timer
        ("300ms", (0.0, 0.45), 2.45),
        ("0s", (0.0, 0.1), 2.1),
    ],
)
async def test_a_lazy_timer_cuts_where_nginx_cuts(
    autojump_clock: object, lazy: str, times: tuple[float, ...], cut_at: float
) -> None:
    scenario = f'[[faults]]\ntype = "idle-timeout"\ntimeout = "2s"\nlazy = "{lazy}"\n'
    async with trio.open_nursery() as nursery, memory_proxy(scenario) as mp:
        mp.proxy.connector = scripted_upstream(nursery, times)
        got = await mp.client().get("/events")
        assert (got.ending, got.ended_at) == ("closed", cut_at)
        assert got.body == b"data: 1\n\ndata: 2\n\n"
        nursery.cancel_scope.cancel()
