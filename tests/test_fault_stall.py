"""stall: decisions in pure code, exact virtual times through the proxy, one real socket."""

from __future__ import annotations

import itertools
import random

import pytest
import trio

from sseproxy import origin
from sseproxy.errors import ScenarioError
from sseproxy.faults.base import Close, Deliver, End, Note, Piece, Reset, Wake
from sseproxy.faults.stall import Stall
from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.server import listen, serve_proxy
from tests.harness import Client, memory_proxy, scenario_of

A, B, C = Piece(b"id: 1\n\n"), Piece(b"id: 2\n\n"), Piece(b"id: 3\n\n")


HOLDING = Note("stalled: holding all data, socket open")


def released(*pieces: Piece) -> Note:
    return Note(f"released {sum(len(p.data) for p in pieces)} bytes")


def make(duration: float | None = 10.0, then: str = "release") -> Stall:
    return Stall({"duration": duration, "then": then}, random.Random(0))


def test_holds_everything_then_releases_it_in_order_and_goes_on() -> None:
    fault = make()
    assert fault.start(5.0) == [HOLDING, Wake(15.0)]
    assert fault.on_piece(A, 6.0) == []
    assert fault.on_piece(B, 8.0) == []
    assert fault.on_timer(15.0) == [released(A, B), Deliver(A, 15.0), Deliver(B, 15.0)]
    assert fault.on_piece(C, 16.0) == [Deliver(C, 16.0)]
    assert fault.on_eof(17.0) == [End()]  # the source's own end, passed through
    assert fault.stop(18.0) == []


def test_the_end_of_the_stream_is_held_too() -> None:
    fault = make()
    fault.start(5.0)
    assert fault.on_piece(A, 6.0) == []
    assert fault.on_eof(7.0) == []
    assert fault.on_timer(15.0) == [released(A), Deliver(A, 15.0), End()]  # End(): the source's own


@pytest.mark.parametrize(("then", "stop"), [("close", Close), ("reset", Reset)])
def test_close_or_reset_after_the_stall_loses_what_was_held(then: str, stop: type) -> None:
    fault = make(then=then)
    fault.start(5.0)
    assert fault.on_piece(A, 6.0) == []
    assert fault.on_timer(15.0) == [stop("stalled for 10s")]


def test_without_duration_it_holds_until_its_window_closes() -> None:
    fault = make(duration=None)
    assert fault.start(5.0) == [HOLDING]
    assert fault.on_piece(A, 6.0) == []
    assert fault.stop(90.0) == [released(A), Deliver(A, 90.0)]
    assert fault.on_piece(B, 91.0) == [Deliver(B, 91.0)]


def test_close_or_reset_needs_a_duration() -> None:
    with pytest.raises(ScenarioError, match=r"'then'.*needs a `duration`"):
        scenario_of('[[faults]]\ntype = "stall"\nthen = "reset"\n')
    (spec,) = scenario_of('[[faults]]\ntype = "stall"\n').faults
    assert spec.settings == {"duration": None, "then": "release"}


EVERY_2S = origin.OriginSettings(interval=2, heartbeat=0)  # event n at 2(n-1) s
STALL = '[[faults]]\ntype = "stall"\nafter = "5s"\nduration = "10s"\n'


def events(*numbers: int) -> bytes:
    return b"".join(origin.encode_event(n) for n in numbers)


async def test_events_sent_during_the_stall_arrive_together_at_its_end(
    autojump_clock: object,
) -> None:
    async with memory_proxy(STALL, EVERY_2S) as mp:
        got = await mp.client().get("/events", limit=len(events(*range(1, 10))))
        assert got.body == events(*range(1, 10))
        # events 4..8 are sent at 6, 8, 10, 12 and 14 s: held, and delivered together at 15
        assert [at for at, _ in got.chunks] == [0, 2, 4, 15, 16]  # released in one write
        assert got.ending == ""  # the stream goes on
        notes = [(r["t"], r["action"], r["detail"]) for r in mp.journal.of_kind("fault")]
        assert notes == [
            (5.0, "note", "stalled: holding all data, socket open"),
            (15.0, "note", f"released {len(events(4, 5, 6, 7, 8))} bytes"),
        ]


async def test_a_window_that_closes_releases_what_is_held(autojump_clock: object) -> None:
    scenario = '[[faults]]\ntype = "stall"\nwindow = { from = "5s", until = "15s" }\n'
    async with memory_proxy(scenario, EVERY_2S) as mp:
        got = await mp.client().get("/events", limit=len(events(*range(1, 10))))
        assert got.body == events(*range(1, 10))
        assert [at for at, _ in got.chunks] == [0, 2, 4, 15, 16]  # released in one write


async def test_then_reset_cuts_at_the_end_of_the_stall(autojump_clock: object) -> None:
    async with memory_proxy(STALL + 'then = "reset"\n', EVERY_2S) as mp:
        got = await mp.client().get("/events")
        assert got.body == events(1, 2, 3)  # what was held is lost with the connection
        assert (got.ending, got.ended_at) == ("closed", 15.0)
        (_, fault) = mp.journal.of_kind("fault")
        assert (fault["fault"], fault["action"], fault["detail"]) == (
            "stall",
            "reset",
            "stalled for 10s",
        )
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["reason"], closed["t"]) == ("proxy", "stall", 15.0)
        assert (closed["events_down"], closed["last_id"]) == (3, "3")


async def test_a_stall_from_the_start_holds_the_response_head_too(autojump_clock: object) -> None:
    scenario = '[[faults]]\ntype = "stall"\nduration = "10s"\n'
    async with memory_proxy(scenario, EVERY_2S) as mp:
        got = await mp.client().get("/events", limit=len(events(1, 2, 3, 4, 5, 6, 7)))
        assert got.status == 200
        assert [at for at, _ in got.chunks] == [10, 10, 12]  # the head, then the body at once
        (response,) = mp.journal.of_kind("response")
        assert response["t"] == 10.0


async def test_a_stall_from_the_start_then_close_never_answers(autojump_clock: object) -> None:
    scenario = '[[faults]]\ntype = "stall"\nduration = "10s"\nthen = "close"\n'
    async with memory_proxy(scenario, EVERY_2S) as mp:
        got = await mp.client().get("/events")
        assert (got.status, got.ending, got.ended_at) == (0, "closed", 10.0)  # no response at all
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"], ended["t"]) == ("proxy", "stall", 10.0)


async def test_an_end_during_the_stall_arrives_after_the_held_data(autojump_clock: object) -> None:
    settings = origin.OriginSettings(interval=2, heartbeat=0, count=5)  # ends at 8 s
    async with memory_proxy(STALL, settings) as mp:
        got = await mp.client().get("/events")
        assert got.body == events(1, 2, 3, 4, 5)
        assert [at for at, _ in got.chunks] == [0, 2, 4, 15]
        assert (got.ending, got.ended_at) == ("end", 15.0)
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"]) == ("upstream", "upstream-end")


async def test_on_real_sockets_the_client_stays_connected_and_hears_nothing() -> None:
    """Wall clock: events every 20 ms, a 300 ms stall from 100 ms on, then the rest."""
    settings = origin.OriginSettings(interval=0.02, heartbeat=0)
    scenario = scenario_of('[[faults]]\ntype = "stall"\nafter = "100ms"\nduration = "300ms"\n')
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            origin_port = await nursery.start(origin.serve, "127.0.0.1", 0, settings)
            listener = await listen("127.0.0.1", 0)
            settings_ = ProxySettings(Upstream("127.0.0.1", origin_port))
            proxy = Proxy(settings_, scenario, Journal(keep=True), seed=1)
            await nursery.start(serve_proxy, proxy, listener)
            port = listener.socket.getsockname()[1]
            client = Client(await trio.open_tcp_stream("127.0.0.1", port))
            wanted = events(*range(1, 26))
            got = await client.get("/events", limit=len(wanted))
            assert not proxy.journal.of_kind("ended")  # still streaming
            nursery.cancel_scope.cancel()
    assert got.body.startswith(wanted)  # nothing lost, nothing out of order
    assert got.ending == ""  # the same connection carried data before and after
    gaps = [(b[0] - a[0], i) for i, (a, b) in enumerate(itertools.pairwise(got.chunks), 1)]
    silence, resumed = max(gaps)
    assert silence >= 0.25  # nothing at all reached the client for (nearly) the whole stall
    burst = b"".join(
        data for at, data in got.chunks[resumed:] if at - got.chunks[resumed][0] < 0.05
    )
    assert burst.count(b"\n\n") >= 5  # the events held during the stall arrive together
