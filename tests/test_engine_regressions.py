"""The seven failures of the old fault chain, each reproduced in virtual time.

Every test here failed against the link before `sseproxy.engine` (deadlocks, a lost end of
stream, events unframed after a slicer, a stop that never happened, counters restarting,
unbounded framing memory) and passes now.
"""

from __future__ import annotations

import random
from typing import Any

import h11
import pytest
import trio

from sseproxy.engine import Chain, FaultSlot, Stop
from sseproxy.faults.base import Piece
from sseproxy.journal import Tally
from sseproxy.link import run_link
from sseproxy.scenario import parse_scenario
from sseproxy.sse import MAX_EVENT_SIZE, Framer
from sseproxy.testing import OriginSettings, memory_proxy
from tests.test_link import Hook, drive, writes
from tests.testing.clients import get_events


def chain_of(toml: str, seed: int = 0) -> list[FaultSlot]:
    """The down-direction slots of a scenario's faults, in the order written."""
    scenario = parse_scenario(toml, file="test.toml")
    rng = random.Random(seed)
    return [FaultSlot(spec.name, spec.fault_class(spec.settings, rng)) for spec in scenario.faults]


def body_server(chunks: list[tuple[float, bytes]], *, chunked: bool = True) -> Any:
    """An upstream that answers one GET with an SSE head and `chunks` at their times."""

    async def server(stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER)
        while type(conn.next_event()) is not h11.Request:
            conn.receive_data(bytes(await stream.receive_some()))
        headers = [("content-type", "text/event-stream")]
        if not chunked:
            headers.append(("content-length", str(sum(len(c) for _, c in chunks))))
        await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)) or b"")
        for at, chunk in chunks:
            await trio.sleep_until(at)
            await stream.send_all(conn.send(h11.Data(data=chunk)) or b"")
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")

    return server


# 1. bandwidth + buffer: the buffer's held bytes counted against bandwidth's small budget


async def test_bandwidth_then_buffer_delivers_everything(autojump_clock: Any) -> None:
    scenario = (
        "[[faults]]\ntype = 'bandwidth'\nrate = '4KiB'\n"
        "[[faults]]\ntype = 'buffer'\nsize = '8KiB'\nrespect_accel = false\n"
    )
    origin = OriginSettings(interval=0.1, count=200, size=300, heartbeat=0)
    async with memory_proxy(origin, scenario) as proxy:
        got = await get_events(await proxy.connect(), read_timeout=120)
        ended = await proxy.wait_for("ended")
    assert [event.id for event in got.events] == [str(n) for n in range(1, 201)]
    assert ended[0]["reason"] == "upstream-end"
    # ~64 KB at 4 KiB/s: paced, but done in about 16 s (the origin's 20 s dominates)
    assert trio.current_time() < 40


# 2. buffer until close on a body over the old 4 MiB in-flight cap


async def test_buffer_until_close_holds_a_5_mib_body_to_its_end(autojump_clock: Any) -> None:
    event = b"data: " + b"x" * 1000 + b"\n\n"
    body = event * (5 * 1024 * 1024 // len(event) + 1)
    chunks = [(0.001 * n, body[i : i + 65536]) for n, i in enumerate(range(0, len(body), 65536))]
    async with memory_proxy(body_server(chunks), "antivirus-buffering") as proxy:
        arrivals: list[float] = []
        got = await get_events(
            await proxy.connect(), on_chunk=lambda _: arrivals.append(trio.current_time())
        )
        ended = await proxy.wait_for("ended")
    assert got.body == body
    assert ended[0]["reason"] == "upstream-end"
    assert min(arrivals) >= chunks[-1][0]  # held until the end


# 3. the end of stream inside a fault whose window closes, or that is retired


async def test_the_end_passes_when_a_latency_window_closes(autojump_clock: Any) -> None:
    # latency 5 s holds the end (read at 1) until 6, but its window closes at 2: what it
    # delivered still arrives at 5, and the end right behind it
    slots = chain_of("[[faults]]\ntype = 'latency'\ndelay = '5s'\n")
    slots[0].active_until = 2.0
    run = await drive(slots, writes([(0.0, b"data: a\n\n")], eof_at=1.0))
    assert run.arrivals == [(5.0, b"data: a\n\n")]
    assert run.stops == [("end", 5.0)]
    assert run.result.kind == "end" and run.result.origin is None


async def test_the_end_passes_when_a_fault_holding_it_is_retired(autojump_clock: Any) -> None:
    # slow-close holds the end for 60 s; retiring the fault at 3 lets it through at once
    slots = chain_of("[[faults]]\ntype = 'slow-close'\ndelay = '60s'\n")
    feed, source = trio.testing.memory_stream_pair()
    sink_end, far = trio.testing.memory_stream_pair()
    from sseproxy.transport import StreamSink

    live: set[Any] = set()
    ended_at: list[float] = []

    async def retire_at_3() -> None:
        await trio.sleep_until(3.0)
        (link,) = live
        assert link.retire(slots[0].name)

    async def read_far() -> None:
        while await far.receive_some():
            pass
        ended_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        await feed.send_all(b"data: a\n\n")
        await feed.send_eof()  # type: ignore[attr-defined]
        nursery.start_soon(retire_at_3)
        nursery.start_soon(read_far)
        result = await run_link(source, StreamSink(sink_end), slots, live=live)
    assert result.kind == "end"
    assert ended_at == [3.0]


# 4. events after a fault that re-slices


SLICED = "[[faults]]\ntype = 'slicer'\nsize = '3B'\nvariation = '1B'\n"


async def test_drop_events_after_a_slicer_drops_heartbeats(autojump_clock: Any) -> None:
    scenario = SLICED + "[[faults]]\ntype = 'drop-events'\ncomments = true\n"
    steps = [(float(n), b": ping\n\n" if n % 2 else b"data: %d\n\n" % n) for n in range(10)]
    hook = Hook()
    run = await drive(chain_of(scenario), writes(steps, eof_at=10.0), fired=hook)
    assert run.data == b"".join(b"data: %d\n\n" % n for n in range(0, 10, 2))
    assert len([call for call in hook.calls if call[1] == "note"]) == 5


async def test_an_event_watchdog_after_a_slicer_sees_the_events(autojump_clock: Any) -> None:
    scenario = SLICED + "[[faults]]\ntype = 'idle-timeout'\ntimeout = '5s'\ncounts = 'events'\n"
    steps = [(float(n), b"data: %d\n\n" % n) for n in range(20)]
    run = await drive(chain_of(scenario), writes(steps, eof_at=20.0))
    assert run.result == type(run.result)("end")
    assert run.data == b"".join(chunk for _, chunk in steps)


# 5. a timer's stop while the peer is not reading


async def test_a_lifetime_reset_happens_on_time_though_the_client_reads_nothing(
    autojump_clock: Any,
) -> None:
    async def firehose(stream: trio.abc.Stream) -> None:
        await stream.receive_some()
        await stream.send_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n")
        while True:
            await stream.send_all(b"data: " + b"x" * 4000 + b"\n\n")

    scenario = "[[faults]]\ntype = 'lifetime'\nlimit = '10s'\naction = 'reset'\n"
    async with memory_proxy(firehose, scenario, buffer=16 * 1024) as proxy:
        client = await proxy.connect()
        await client.send_all(b"GET /events HTTP/1.1\r\nhost: test\r\n\r\n")
        closed = await proxy.wait_for_closed()  # the client never reads
    assert closed[0]["t"] == 10.0
    assert (closed[0]["by"], closed[0]["reason"]) == ("proxy", "lifetime")
    fired = [r for r in proxy.records if r["kind"] == "fault"]
    assert [(r["t"], r["action"]) for r in fired] == [(10.0, "reset")]


# 6. plan counters survive a live change of an unrelated fault


async def test_first_still_counts_after_an_unrelated_fault_changes(autojump_clock: Any) -> None:
    status = "[[faults]]\ntype = 'status'\ncode = 503\nfirst = 1\n"
    latency = "[[faults]]\nname = 'slow'\ntype = 'latency'\ndelay = '{}'\n"
    async with memory_proxy(OriginSettings(count=1), status + latency.format("1ms")) as proxy:
        first = await get_events(await proxy.connect())
        proxy.set_scenario(status + latency.format("2ms"))
        second = await get_events(await proxy.connect())
    assert (first.status, second.status) == (503, 200)


# 7. bounded framing memory


def test_the_framer_gives_up_an_event_past_its_bound() -> None:
    framer = Framer(max_pending=1024)
    body = b"data: a\n\n" + b"data: " + b"y" * 5000 + b"\nid: 9\n\ndata: b\n\n"
    blocks = [block for i in range(0, len(body), 100) for block in framer.feed(body[i : i + 100])]
    assert b"".join(block.raw for block in blocks) + framer.close() == body
    assert max(len(block.raw) for block in blocks) <= 1024 + 100
    assert [block.event.data for block in blocks if block.event] == ["a", "b"]
    assert framer.overflows == 1
    assert blocks[-1].event is not None and blocks[-1].event.id == ""  # the lost id: never seen


def test_the_framer_resumes_after_a_skipped_block_ending_in_crlf_across_reads() -> None:
    framer = Framer(max_pending=16)
    body = b"data: " + b"z" * 40 + b"\r\n\r" + b"\ndata: c\r\n\r\n"
    blocks = [block for byte in body for block in framer.feed(bytes([byte]))]
    assert b"".join(block.raw for block in blocks) + framer.close() == body
    assert [block.event.data for block in blocks if block.event] == ["c"]


async def test_the_journal_tally_stays_bounded_and_notes_it_once() -> None:
    notes: list[str] = []
    tally = Tally(on_note=notes.append)
    tally.begin(Framer())
    chunk = b"data: x" * 10000
    for _ in range(300):  # 21 MB without a blank line
        tally.observe([Piece(chunk)])
    assert tally.framer is not None and tally.framer.pending <= MAX_EVENT_SIZE
    assert len(notes) == 1 and "not counted" in notes[0]


def test_a_framing_fault_holds_at_most_the_bound_of_an_endless_event() -> None:
    slots = chain_of("[[faults]]\ntype = 'drop-events'\ncomments = true\n")
    hook = Hook()
    chain = Chain(slots, 0.0, fired=hook)
    out = bytearray()
    sent = 0
    for n in range(100):
        data = b"data: " + b"q" * 65530 if n == 0 else b"q" * 65536
        chain.feed(Piece(data), float(n))
        sent += len(data)
        out += b"".join(piece.data for piece in chain.take_due(float(n)).pieces)
        assert chain.held() <= MAX_EVENT_SIZE + 65536
    chain.source_end(Stop("end"), 100.0)
    out += b"".join(piece.data for piece in chain.take_due(100.0).pieces)
    assert len(out) == sent
    assert [call[1] for call in hook.calls] == ["note"]


# The upstream's last data and its end in one read: one piece, then the end at once (a
# read that gathers every h11 Data event must not wait for more after the end)


@pytest.mark.parametrize("close", [False, True])
@pytest.mark.parametrize("scenario", [None, "antivirus-buffering"])
async def test_the_last_chunk_and_the_end_in_one_read(
    autojump_clock: Any, scenario: Any, close: bool
) -> None:
    body = b"".join(b"id: %d\ndata: x\n\n" % n for n in range(50))

    async def server(stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER)
        while type(conn.next_event()) is not h11.Request:
            conn.receive_data(bytes(await stream.receive_some()))
        headers = [("content-type", "text/event-stream")]
        if close:  # then h11 ends the body in MUST_CLOSE, not DONE
            headers.append(("connection", "close"))
        wire = conn.send(h11.Response(status_code=200, headers=headers)) or b""
        for n in range(50):
            wire += conn.send(h11.Data(data=b"id: %d\ndata: x\n\n" % n)) or b""
        await stream.send_all(wire + (conn.send(h11.EndOfMessage()) or b""))
        await trio.sleep(10)  # keeps the connection open

    async with memory_proxy(server, scenario) as proxy:
        got = await get_events(await proxy.connect())
        assert trio.current_time() == 0.0
        (ended,) = await proxy.wait_for("ended")
    assert got.body == body
    assert ended["reason"] == "upstream-end"


# 8. what a timer's cut lets out is written, though the writer was woken before the cancel


async def test_a_held_head_goes_out_before_an_idle_cut(autojump_clock: Any) -> None:
    """nginx with proxy_buffering: the head waits in the buffer, the read timeout fires,
    the client still gets the 200 and then a close. The writer, parked, is both woken and
    cancelled by the cut; the head it then writes must not be cancelled with it."""
    from sseproxy import origin
    from tests.harness import memory_proxy as origin_proxy

    scenario = (
        '[[faults]]\ntype = "idle-timeout"\ntimeout = "1s"\ncounts = "bytes"\n'
        '[[faults]]\ntype = "buffer"\nsize = "4KiB"\nrespect_accel = false\nhold_head = true\n'
    )
    silent = origin.OriginSettings(interval=100, count=2, heartbeat=0)
    async with origin_proxy(scenario, silent) as proxy:
        got = await proxy.client().get("/events")
    assert (got.status, got.ending, got.ended_at) == (200, "closed", 1.0)
