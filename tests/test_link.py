"""The link: `run_link` / `pump` on memory streams, driven by small fake faults.

The source is one end of a memory stream pair (the test writes the other end on a
schedule); the sink is a `StreamSink` over another pair's end, traced so the test knows
whether it was ended, closed or reset, and the far end records what arrived and when.
Every test runs in virtual time (`autojump_clock`), so times are exact.
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from sseproxy.faults.base import Action, Close, Deliver, End, Fault, Piece, Reset, Wake
from sseproxy.faults.idle_timeout import IdleTimeout
from sseproxy.faults.latency import Latency
from sseproxy.link import FaultSlot, LinkResult, StopKind, run_link
from sseproxy.sse import Event
from sseproxy.transport import StreamSink

Script = Callable[[trio.abc.Stream], Awaitable[None]]
Step = tuple[float, bytes]

# -- the rig -------------------------------------------------------------------------------


class TracingSink(StreamSink):
    """A `StreamSink` that also notes how (and when) the link finished it."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        super().__init__(stream)
        self.stops: list[tuple[str, float]] = []

    async def end(self) -> None:
        self.stops.append(("end", trio.current_time()))
        await super().end()

    async def close(self) -> None:
        self.stops.append(("close", trio.current_time()))
        await super().close()

    async def reset(self) -> None:
        self.stops.append(("reset", trio.current_time()))
        await super().reset()


@dataclass
class Run:
    result: LinkResult
    arrivals: list[Step]
    """(virtual time, bytes) as the far end of the sink received them."""
    stops: list[tuple[str, float]]
    """What the link did to the sink at the end, and when."""
    observed: list[Piece] = field(default_factory=list)

    @property
    def data(self) -> bytes:
        return b"".join(chunk for _, chunk in self.arrivals)

    def by_time(self) -> dict[float, bytes]:
        grouped: dict[float, bytes] = {}
        for at, chunk in self.arrivals:
            grouped[at] = grouped.get(at, b"") + chunk
        return grouped


def writes(steps: Sequence[Step], *, eof_at: float | None = None) -> Script:
    """A source script: write each chunk at its time, then send EOF (at `eof_at`)."""

    async def script(feed: trio.abc.Stream) -> None:
        for at, chunk in steps:
            await trio.sleep_until(at)
            await feed.send_all(chunk)
        if eof_at is not None:
            await trio.sleep_until(eof_at)
        assert isinstance(feed, trio.abc.HalfCloseableStream)
        await feed.send_eof()

    return script


def memory_pair() -> tuple[trio.abc.Stream, trio.abc.Stream]:
    return trio.testing.memory_stream_pair()


def socket_pair() -> tuple[trio.abc.Stream, trio.abc.Stream]:
    """Connected Unix sockets: a write is readable at once, so virtual time still holds,
    and the link's reader can write what is due itself (`Link._write_at_once`)."""
    one, two = trio.socket.socketpair()
    return trio.SocketStream(one), trio.SocketStream(two)


PAIRS: list[Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]]] = [memory_pair]


@pytest.fixture(autouse=True, params=[memory_pair, socket_pair], ids=["memory", "socket"])
def pair_kind(request: pytest.FixtureRequest) -> Any:
    """Every test that uses `drive` runs over memory streams and over sockets."""
    PAIRS[0] = request.param
    yield request.param
    PAIRS[0] = memory_pair


async def drive(
    slots: Sequence[FaultSlot],
    script: Script,
    *,
    fired: Callable[[str, str, str], None] | None = None,
    source: trio.abc.ReceiveStream | None = None,
) -> Run:
    """Run one link from a scripted source to a traced sink; return what happened."""
    feed, link_end = PAIRS[0]()
    sink_end, far = PAIRS[0]()
    sink = TracingSink(sink_end)
    observed: list[Piece] = []
    arrivals: list[Step] = []

    async def read_far_end() -> None:
        while data := await far.receive_some(65536):
            arrivals.append((trio.current_time(), bytes(data)))

    async with trio.open_nursery() as nursery:
        script_scope = trio.CancelScope()

        async def run_script() -> None:
            with script_scope:
                await script(feed)

        nursery.start_soon(run_script)
        nursery.start_soon(read_far_end)
        link_source = source or link_end
        result = await run_link(link_source, sink, slots, observe=observed.extend, fired=fired)
        script_scope.cancel()  # the script may still be waiting on a source that is done
    return Run(result, arrivals, sink.stops, observed)


class Hook:
    """A `fired` hook that records its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, name: str, action: str, detail: str) -> None:
        self.calls.append((name, action, detail))


def slot(
    fault: Fault,
    name: str = "fake",
    *,
    active_from: float = -math.inf,
    active_until: float = math.inf,
) -> FaultSlot:
    return FaultSlot(name, fault, active_from, active_until)


RNG = random.Random(0)


def latency(delay: float) -> Latency:
    return Latency({"delay": delay, "jitter": 0.0}, RNG)


def idle(timeout: float, action: str = "close") -> IdleTimeout:
    return IdleTimeout({"timeout": timeout, "counts": "bytes", "action": action}, RNG)


# -- fake faults ---------------------------------------------------------------------------


class Passthrough(Fault):
    """Delivers every piece at once (the base class's defaults), noting what it saw."""

    name = "passthrough"
    summary = "test"

    def __init__(self) -> None:
        super().__init__({}, RNG)
        self.log: list[tuple[str, float]] = []
        self.pieces: list[Piece] = []

    def start(self, now: float) -> list[Action]:
        self.log.append(("start", now))
        return []

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        self.log.append(("piece", now))
        self.pieces.append(piece)
        return super().on_piece(piece, now)

    def on_eof(self, now: float) -> list[Action]:
        self.log.append(("eof", now))
        return super().on_eof(now)

    def stop(self, now: float) -> list[Action]:
        self.log.append(("stop", now))
        return []


class Framed(Passthrough):
    """Asks the link for whole SSE blocks."""

    def needs_events(self) -> bool:
        return True


class Delays(Passthrough):
    """Delivers the n-th piece `delays[n]` late, with no ordering of its own."""

    def __init__(self, *delays: float) -> None:
        super().__init__()
        self.delays = list(delays)

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        return [Deliver(piece, now + self.delays.pop(0))]


class DelayThen(Passthrough):
    """Delivers each piece `delay` late, and answers `then` right after the first one."""

    def __init__(self, delay: float, then: Action) -> None:
        super().__init__()
        self.delay = delay
        self.then = then

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        return [Deliver(piece, now + self.delay), self.then]


class CutAfter(Passthrough):
    """Lets `limit` bytes through, then stops with `stop` (a reset by default)."""

    def __init__(self, limit: int, stop: Action | None = None) -> None:
        super().__init__()
        self.left = limit
        self.stop_action = stop or Reset("cut")

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        if len(piece.data) < self.left:
            self.left -= len(piece.data)
            return [Deliver(piece, now)]
        head = Piece(piece.data[: self.left])
        return [Deliver(head, now), self.stop_action]


class Hold(Passthrough):
    """Keeps every piece until its window closes; asks for a wake-up at `wake_at`."""

    def __init__(self, wake_at: float | None = None) -> None:
        super().__init__()
        self.held: list[Piece] = []
        self.wake_at = wake_at

    def start(self, now: float) -> list[Action]:
        super().start(now)
        return [Wake(self.wake_at)] if self.wake_at is not None else []

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        self.log.append(("piece", now))
        self.held.append(piece)
        return []

    def on_timer(self, now: float) -> list[Action]:
        self.log.append(("timer", now))
        return []

    def stop(self, now: float) -> list[Action]:
        self.log.append(("stop", now))
        held, self.held = self.held, []
        return [Deliver(piece, now) for piece in held]


class Rearm(Passthrough):
    """Asks for a wake-up at start, then replaces it with each piece's `wakes` entry."""

    def __init__(self, first: float | None, *wakes: float | None) -> None:
        super().__init__()
        self.first = first
        self.wakes = list(wakes)

    def start(self, now: float) -> list[Action]:
        return [Wake(self.first)]

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        return [Deliver(piece, now), Wake(self.wakes.pop(0))]

    def on_timer(self, now: float) -> list[Action]:
        self.log.append(("timer", now))
        return []


class StopOnTimer(Passthrough):
    """Stops the stream with `action` when its wake-up at `at` comes."""

    def __init__(self, at: float, action: Action) -> None:
        super().__init__()
        self.at = at
        self.action = action

    def start(self, now: float) -> list[Action]:
        return [Wake(self.at)]

    def on_timer(self, now: float) -> list[Action]:
        return [self.action]


class BrokenSource(trio.abc.ReceiveStream):
    """Gives its chunks (each at its time), then fails as a reset connection does."""

    def __init__(self, steps: Sequence[Step], fail_at: float, error: BaseException) -> None:
        self.steps = list(steps)
        self.fail_at = fail_at
        self.error = error

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.steps:
            at, chunk = self.steps.pop(0)
            await trio.sleep_until(at)
            return chunk
        await trio.sleep_until(self.fail_at)
        raise self.error

    async def aclose(self) -> None:
        pass


async def idle_script(feed: trio.abc.Stream) -> None:
    await trio.sleep_forever()


# -- the fast path -------------------------------------------------------------------------


async def test_fast_path_copies_bytes_exactly_and_ends_with_eof(autojump_clock: Any) -> None:
    chunks = [bytes(range(256)), b"", b"\r\n\r\n", b"x" * 100_000]
    steps = [(float(i), chunk) for i, chunk in enumerate(chunks) if chunk]
    feed, link_end = PAIRS[0]()
    sink_end, far = PAIRS[0]()
    sink = TracingSink(sink_end)
    observed: list[Piece] = []
    async with trio.open_nursery() as nursery:
        results: list[LinkResult] = []

        async def link() -> None:
            results.append(await run_link(link_end, sink, [], observe=observed.extend))

        nursery.start_soon(link)
        nursery.start_soon(writes(steps, eof_at=7.0), feed)
        received = b""
        while data := await far.receive_some(4096):
            received += data
        assert trio.current_time() == 7.0
        # send_eof, not a full close: the sink's stream still reads the other way
        await far.send_all(b"still open")
        assert await sink_end.receive_some(100) == b"still open"
    assert received == b"".join(chunks)
    assert b"".join(piece.data for piece in observed) == received
    assert results == [LinkResult("end")]
    assert sink.stops == [("end", 7.0)]


async def test_chunks_arrive_when_written_without_faults(autojump_clock: Any) -> None:
    run = await drive([], writes([(0.0, b"a"), (1.5, b"b"), (4.0, b"c")]))
    assert run.arrivals == [(0.0, b"a"), (1.5, b"b"), (4.0, b"c")]
    assert run.stops == [("end", 4.0)]


async def test_a_fault_that_passes_everything_copies_exactly(autojump_clock: Any) -> None:
    fault = Passthrough()
    body = random.Random(7).randbytes(200_000)
    steps = [(i * 0.5, body[i * 30_000 : (i + 1) * 30_000]) for i in range(7)]
    run = await drive([slot(fault)], writes(steps))
    assert run.data == body
    assert b"".join(piece.data for piece in run.observed) == body
    assert run.result == LinkResult("end")
    assert run.stops == [("end", 3.0)]
    assert fault.log[0] == ("start", 0.0) and fault.log[-1] == ("eof", 3.0)


# -- latency and order ---------------------------------------------------------------------


async def test_latency_pipelines_instead_of_throttling(autojump_clock: Any) -> None:
    steps = [(0.0, b"one "), (0.1, b"two "), (0.2, b"three")]
    run = await drive([slot(latency(1.0), "latency")], writes(steps))
    assert run.arrivals == [(1.0, b"one "), (1.1, b"two "), (1.2, b"three")]
    # the source's end also waits behind the delayed data
    assert run.stops == [("end", 1.2)]
    assert run.result == LinkResult("end")


@pytest.mark.parametrize("mid_chain", [False, True])
async def test_order_is_kept_when_a_later_piece_would_be_due_earlier(
    autojump_clock: Any, mid_chain: bool
) -> None:
    then = [Passthrough()] if mid_chain else []
    fault = Delays(1.0, 0.1)  # piece 2 (written at 0.2) would be due at 0.3, before piece 1
    slots = [slot(fault), *(slot(f, "next") for f in then)]
    run = await drive(slots, writes([(0.0, b"first|"), (0.2, b"second")]))
    assert run.by_time() == {1.0: b"first|second"}
    assert run.stops == [("end", 1.0)]
    for f in then:
        assert f.log == [("start", 0.0), ("piece", 1.0), ("piece", 1.0), ("eof", 1.0)]


# -- stops travel behind the data ----------------------------------------------------------


async def test_reset_after_ten_bytes_delivers_exactly_ten_bytes_first(
    autojump_clock: Any,
) -> None:
    run = await drive([slot(CutAfter(10), "cut")], writes([(0.0, b"0123456"), (1.0, b"789abc")]))
    assert run.data == b"0123456789"
    assert run.arrivals[-1][0] == 1.0
    assert run.stops == [("reset", 1.0)]
    assert run.result == LinkResult("reset", "cut", "cut")


async def test_a_stop_waits_for_data_its_fault_delivered_late(autojump_clock: Any) -> None:
    fault = DelayThen(2.0, Close("late"))
    run = await drive([slot(fault, "slow")], writes([(0.5, b"payload"), (0.6, b"dropped")]))
    assert run.arrivals == [(2.5, b"payload")]
    assert run.stops == [("close", 2.5)]
    assert run.result == LinkResult("close", "slow", "late")


async def test_a_reset_upstream_of_latency_arrives_after_the_delayed_bytes(
    autojump_clock: Any,
) -> None:
    slots = [slot(CutAfter(4), "cut"), slot(latency(1.0), "latency")]
    run = await drive(slots, writes([(0.0, b"abcdefgh")]))
    assert run.arrivals == [(1.0, b"abcd")]
    assert run.stops == [("reset", 1.0)]
    assert (run.result.kind, run.result.origin) == ("reset", "cut")


@pytest.mark.parametrize(
    ("action", "kind"), [(Close("c"), "close"), (Reset("r"), "reset"), (End("e"), "end")]
)
async def test_each_stop_reaches_the_sink_as_itself(
    autojump_clock: Any, action: Close | Reset | End, kind: StopKind
) -> None:
    run = await drive([slot(StopOnTimer(3.0, action), "timer")], writes([(1.0, b"x")], eof_at=9))
    assert run.arrivals == [(1.0, b"x")]
    assert run.stops == [(kind, 3.0)]
    assert run.result == LinkResult(kind, "timer", action.detail)


# -- chains of two faults ------------------------------------------------------------------


async def test_latency_then_idle_timeout(autojump_clock: Any) -> None:
    # the idle timer (2 s from t=0) sees the piece only at t=1, so it fires at 3
    slots = [slot(latency(1.0), "latency"), slot(idle(2.0), "idle")]
    hook = Hook()
    run = await drive(slots, writes([(0.0, b"hello")], eof_at=10.0), fired=hook)
    assert run.arrivals == [(1.0, b"hello")]
    assert run.stops == [("close", 3.0)]
    assert run.result == LinkResult("close", "idle", "no byte for 2s")
    assert hook.calls == [("idle", "close", "no byte for 2s")]


async def test_idle_timeout_then_latency(autojump_clock: Any) -> None:
    # the idle timer sees the piece at t=0 and fires at 2; latency delays pieces, and the
    # close goes behind the delayed piece (which reached the peer at 1)
    slots = [slot(idle(2.0), "idle"), slot(latency(1.0), "latency")]
    hook = Hook()
    run = await drive(slots, writes([(0.0, b"hello")], eof_at=10.0), fired=hook)
    assert run.arrivals == [(1.0, b"hello")]
    assert run.stops == [("close", 2.0)]
    assert run.result == LinkResult("close", "idle", "no byte for 2s")
    assert hook.calls == [("idle", "close", "no byte for 2s")]


async def test_a_timer_reset_overtakes_data_still_on_its_way(autojump_clock: Any) -> None:
    # latency 5 s > the 2 s timeout: a timer's stop happens at its time (t=2), and the
    # piece still inside the later latency (due at 5) never arrives, as data a proxy
    # holds is lost when it resets the connection
    slots = [slot(idle(2.0, "reset"), "idle"), slot(latency(5.0), "latency")]
    run = await drive(slots, writes([(0.0, b"late")], eof_at=10.0))
    assert run.arrivals == []
    assert run.stops == [("reset", 2.0)]


# -- windows: active_from and active_until -------------------------------------------------


async def test_a_fault_starts_exactly_at_active_from(autojump_clock: Any) -> None:
    fault = Delays(0.5, 0.5)
    steps = [(0.0, b"a"), (1.0, b"b"), (3.0, b"c"), (4.0, b"d")]
    run = await drive([slot(fault, active_from=2.0)], writes(steps))
    assert fault.log == [("start", 2.0), ("eof", 4.0)]
    # before the window, pieces pass untouched (no delay); after it, the fault acts
    assert run.arrivals == [(0.0, b"a"), (1.0, b"b"), (3.5, b"c"), (4.5, b"d")]
    assert fault.delays == []


async def test_a_fault_stops_at_active_until_and_hands_back_what_it_held(
    autojump_clock: Any,
) -> None:
    fault = Hold(wake_at=7.0)  # the wake-up falls after the window: it must never come
    steps = [(0.0, b"a"), (1.0, b"b"), (2.0, b"c"), (6.0, b"d")]
    run = await drive([slot(fault, active_until=5.0)], writes(steps, eof_at=8.0))
    assert run.by_time() == {5.0: b"abc", 6.0: b"d"}
    assert fault.log == [
        ("start", 0.0),
        ("piece", 0.0),
        ("piece", 1.0),
        ("piece", 2.0),
        ("stop", 5.0),
    ]
    assert run.stops == [("end", 8.0)]


async def test_a_window_that_closes_before_it_opens_never_activates(
    autojump_clock: Any,
) -> None:
    # Plan builds such a slot for `after = "10s"` with `window = { until = "5s" }`
    fault = Delays(3.0)
    run = await drive(
        [slot(fault, active_from=2.0, active_until=1.0)], writes([(4.0, b"x")], eof_at=6.0)
    )
    assert fault.log == []
    assert run.arrivals == [(4.0, b"x")]


# -- timers --------------------------------------------------------------------------------


def timers(fault: Passthrough) -> list[float]:
    return [at for kind, at in fault.log if kind == "timer"]


async def test_a_replaced_wake_fires_once_at_the_later_time(autojump_clock: Any) -> None:
    fault = Rearm(1.0, 3.0)  # Wake(1) at start, replaced by Wake(3) at t=0.5
    run = await drive([slot(fault)], writes([(0.5, b"x")], eof_at=5.0))
    assert timers(fault) == [3.0]
    assert run.stops == [("end", 5.0)]


async def test_a_wake_replaced_by_an_earlier_one_fires_only_early(autojump_clock: Any) -> None:
    fault = Rearm(4.0, 2.0)
    await drive([slot(fault)], writes([(0.5, b"x")], eof_at=6.0))
    assert timers(fault) == [2.0]


async def test_wake_none_cancels_the_wake_up(autojump_clock: Any) -> None:
    fault = Rearm(1.0, None)
    await drive([slot(fault)], writes([(0.5, b"x")], eof_at=5.0))
    assert timers(fault) == []
    assert fault.log == [("eof", 5.0)]  # the link did run until the end


# -- errors --------------------------------------------------------------------------------

SOURCE_FAILURES = [
    pytest.param([], id="fast-path"),
    pytest.param([0.0], id="with-a-fault"),
]


@pytest.mark.parametrize("delays", SOURCE_FAILURES)
async def test_a_broken_source_closes_the_sink_and_reports_the_error(
    autojump_clock: Any, delays: list[float]
) -> None:
    error = trio.BrokenResourceError("connection reset by peer")
    source = BrokenSource([(0.0, b"ab"), (1.0, b"cd")], fail_at=2.0, error=error)
    slots = [slot(latency(d), "latency") for d in delays]
    run = await drive(slots, idle_script, source=source)
    assert run.data == b"abcd"
    assert run.stops == [("close", 2.0)]
    assert (run.result.kind, run.result.origin, run.result.error) == ("close", None, error)


@pytest.mark.parametrize("delays", SOURCE_FAILURES)
async def test_a_source_closed_under_the_link_closes_the_sink(
    autojump_clock: Any, delays: list[float]
) -> None:
    feed, link_end = trio.testing.memory_stream_pair()

    async def script(_: trio.abc.Stream) -> None:
        await feed.send_all(b"data")
        await trio.sleep(1.0)
        await link_end.aclose()  # someone closed the source under the link

    run = await drive([slot(latency(d)) for d in delays], script, source=link_end)
    assert run.data == b"data"
    assert run.stops == [("close", 1.0)]
    assert run.result.kind == "close" and run.result.origin is None
    assert isinstance(run.result.error, trio.ClosedResourceError)


@pytest.mark.parametrize("delays", SOURCE_FAILURES)
async def test_a_failing_sink_is_a_sink_error(autojump_clock: Any, delays: list[float]) -> None:
    feed, link_end = trio.testing.memory_stream_pair()
    sink_end, far = trio.testing.memory_stream_pair()
    await far.aclose()  # the peer is gone: writing to it fails
    slots = [slot(latency(d)) for d in delays]
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed.send_all, b"nobody reads this")
            result = await run_link(link_end, TracingSink(sink_end), slots)
    assert result.kind == "sink-error"
    assert isinstance(result.error, trio.BrokenResourceError)


# -- the fired hook ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "kind"), [(Close("c"), "close"), (Reset("r"), "reset"), (End("e"), "end")]
)
async def test_fired_is_called_for_a_fault_stop(
    autojump_clock: Any, action: Close | Reset | End, kind: StopKind
) -> None:
    hook = Hook()
    await drive([slot(StopOnTimer(1.0, action), "boom")], idle_script, fired=hook)
    assert hook.calls == [("boom", kind, action.detail)]


async def test_fired_is_not_called_for_the_sources_own_end(autojump_clock: Any) -> None:
    hook = Hook()
    slots = [slot(Passthrough(), "a"), slot(latency(1.0), "b")]
    run = await drive(slots, writes([(0.0, b"x")], eof_at=2.0), fired=hook)
    assert hook.calls == []
    assert run.result == LinkResult("end")
    assert run.stops == [("end", 3.0)]  # the end crosses the 1 s latency too


async def test_fired_is_not_called_for_the_sources_failure(autojump_clock: Any) -> None:
    hook = Hook()
    source = BrokenSource([], fail_at=1.0, error=trio.BrokenResourceError("gone"))
    run = await drive([slot(Passthrough(), "a")], idle_script, fired=hook, source=source)
    assert hook.calls == []
    assert run.result.kind == "close" and run.result.origin is None


# -- framing -------------------------------------------------------------------------------


async def test_a_fault_that_needs_events_sees_whole_blocks(autojump_clock: Any) -> None:
    fault = Framed()
    steps = [
        (0.0, b"data: hel"),
        (1.0, b"lo\n"),
        (2.0, b"\nid: 7\r\ndata: x\r"),
        (3.0, b"\n\r\n: tail"),
    ]
    run = await drive([slot(fault)], writes(steps, eof_at=4.0))
    assert run.data == b"".join(chunk for _, chunk in steps)
    assert fault.pieces == [
        Piece(b"data: hello\n\n", True, Event("message", "hello", ""), last_id=""),
        Piece(b"id: 7\r\ndata: x\r\n\r\n", True, Event("message", "x", "7"), last_id="7"),
        Piece(b": tail"),  # the unfinished block, flushed unframed at the end
    ]
    assert [at for kind, at in fault.log if kind == "piece"] == [2.0, 3.0, 4.0]
    # each block goes on when it completes: nothing arrives before its blank line
    assert run.by_time() == {
        2.0: b"data: hello\n\n",
        3.0: b"id: 7\r\ndata: x\r\n\r\n",
        4.0: b": tail",
    }


async def test_framing_happens_only_where_a_fault_needs_events(autojump_clock: Any) -> None:
    plain, framed = Passthrough(), Framed()
    steps = [(0.0, b"data: a\n"), (1.0, b"\n: c\n\ndata")]
    run = await drive([slot(plain, "plain"), slot(framed, "framed")], writes(steps))
    assert run.data == b"data: a\n\n: c\n\ndata"
    assert [p.data for p in plain.pieces] == [b"data: a\n", b"\n: c\n\ndata"]
    assert not any(p.framed for p in plain.pieces)
    assert [p.event for p in framed.pieces] == [Event("message", "a", ""), None, None]


async def test_without_needs_events_pieces_are_raw_chunks(autojump_clock: Any) -> None:
    fault = Passthrough()
    await drive([slot(fault)], writes([(0.0, b"data: hel"), (1.0, b"lo\n\n")]))
    assert fault.pieces == [Piece(b"data: hel"), Piece(b"lo\n\n")]
