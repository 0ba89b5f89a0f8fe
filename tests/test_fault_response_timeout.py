"""response-timeout: decisions in pure code, then exact virtual times through the proxy."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from sseproxy import origin
from sseproxy.faults.base import Close, Deliver, Piece, ResponseHead, Wake
from sseproxy.faults.response_timeout import ResponseTimeout
from tests.harness import MemoryProxy, memory_proxy


def make(timeout: float = 30.0, status: int = 504) -> ResponseTimeout:
    return ResponseTimeout({"timeout": timeout, "status": status}, random.Random(0))


HEAD = Piece(b"", head=ResponseHead(200, ((b"content-type", b"text/event-stream"),)))
DATA = Piece(b"id: 1\ndata: x\n\n")


# -- decisions -----------------------------------------------------------------------------


def test_waits_for_the_first_piece_then_never_acts_again() -> None:
    fault = make(timeout=30.0)
    assert fault.start(5.0) == [Wake(35.0)]
    assert fault.on_piece(HEAD, 20.0) == [Deliver(HEAD, 20.0), Wake(None)]
    assert fault.on_piece(DATA, 21.0) == [Deliver(DATA, 21.0)]  # no new wake-up
    assert fault.start(100.0) == []  # a window opening again after the head: nothing to wait for


def test_the_timer_answers_the_status() -> None:
    fault = make(timeout=30.0, status=503)
    fault.start(0.0)
    assert fault.on_timer(30.0) == [Close("no response within 30s", 503)]


# -- through the proxy, in virtual time ----------------------------------------------------


def silent_upstream(mp: MemoryProxy) -> list[trio.abc.Stream]:
    """Make the proxy's upstream accept and then never answer; returns its ends."""
    ends: list[trio.abc.Stream] = []

    async def connect() -> trio.abc.Stream:
        proxy_end, upstream_end = trio.testing.memory_stream_pair()
        ends.append(upstream_end)
        return proxy_end

    mp.proxy.connector = connect
    return ends


def late_upstream(mp: MemoryProxy, delay: float) -> None:
    """An upstream that reads the request, answers the head `delay` later, sends one event,
    and then stays silent for good."""

    async def serve(stream: trio.abc.Stream) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += await stream.receive_some(65536)
        await trio.sleep(delay)
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        event = origin.encode_event(1)
        await stream.send_all(b"%x\r\n%s\r\n" % (len(event), event))
        await trio.sleep_forever()

    async def connect() -> trio.abc.Stream:
        proxy_end, upstream_end = trio.testing.memory_stream_pair()
        mp.nursery.start_soon(serve, upstream_end)
        return proxy_end

    mp.proxy.connector = connect


async def test_a_silent_upstream_gets_the_status_at_exactly_the_timeout(
    autojump_clock: object,
) -> None:
    scenario = '[[faults]]\ntype = "response-timeout"\ntimeout = "10s"\n'
    async with memory_proxy(scenario) as mp:
        silent_upstream(mp)
        got = await mp.client().get("/events")
        assert (got.status, got.ending, got.ended_at) == (504, "end", 10.0)
        assert got.body == b"sseproxy: no response within 10s\n"  # one line
        assert b"connection" not in got.headers  # kept alive, as nginx keeps it after its 504
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"], ended["t"]) == ("proxy", "response-timeout", 10.0)
        assert ended["detail"] == "no response within 10s"
        (response,) = mp.journal.of_kind("response")
        assert (response["status"], response["origin"], response["t"]) == (504, "proxy", 10.0)
        (fault,) = mp.journal.of_kind("fault")
        assert (fault["fault"], fault["action"], fault["t"]) == ("response-timeout", "close", 10.0)


async def test_heroku_router_answers_503_after_30_seconds(autojump_clock: object) -> None:
    """Heroku H12: the app has 30 s to send the first byte, then the router answers 503."""
    scenario = '[[faults]]\ntype = "response-timeout"\ntimeout = "30s"\nstatus = 503\n'
    async with memory_proxy(scenario) as mp:
        silent_upstream(mp)
        got = await mp.client().get("/events")
        assert (got.status, got.ended_at) == (503, 30.0)
        assert got.body == b"sseproxy: no response within 30s\n"
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"]) == ("proxy", "response-timeout")


async def test_a_head_just_in_time_passes_and_a_long_silence_after_it_is_fine(
    autojump_clock: object,
) -> None:
    scenario = '[[faults]]\ntype = "response-timeout"\ntimeout = "30s"\n'
    async with memory_proxy(scenario) as mp:
        late_upstream(mp, delay=29.0)
        client = mp.client()
        got = await client.get("/events", limit=len(origin.encode_event(1)))
        assert got.status == 200
        assert got.chunks == [(29.0, origin.encode_event(1))]
        await trio.sleep(3600)  # an hour of silence, virtual
        assert not mp.journal.of_kind("fault")
        assert not mp.journal.of_kind("ended")


async def test_an_origin_answering_at_once_streams_on_through_long_silences(
    autojump_clock: object,
) -> None:
    scenario = '[[faults]]\ntype = "response-timeout"\ntimeout = "5s"\n'
    settings = origin.OriginSettings(interval=100, heartbeat=0, count=4)  # gaps of 100 s
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events")
        assert got.body == b"".join(origin.encode_event(n) for n in range(1, 5))
        assert (got.ending, got.ended_at) == ("end", 300.0)
        assert [at for at, _ in got.chunks] == [0.0, 100.0, 200.0, 300.0]
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"]) == ("upstream", "upstream-end")
        assert not mp.journal.of_kind("fault")


@pytest.mark.parametrize(
    "timing", ['after = "5s"', 'window = { from = "5s" }'], ids=["after", "window"]
)
async def test_activated_after_the_head_it_never_cuts_the_stream(
    autojump_clock: object, timing: str
) -> None:
    scenario = f'[[faults]]\ntype = "response-timeout"\ntimeout = "10s"\n{timing}\n'
    settings = origin.OriginSettings(interval=10_000, heartbeat=0)  # event 1, then silence
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events", limit=len(origin.encode_event(1)))
        assert (got.status, got.body) == (200, origin.encode_event(1))
        await trio.sleep(100)
        # the head came at 0 s, before the fault was active: it has nothing to time
        assert not mp.journal.of_kind("fault")
        assert not mp.journal.of_kind("ended")
