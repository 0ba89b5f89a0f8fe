"""lifetime: decisions in pure code, exact virtual times through the proxy, a real RST."""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing

from sseproxy import origin
from sseproxy.faults.base import Close, Deliver, End, Piece, Reset, Wake
from sseproxy.faults.lifetime import Lifetime
from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.server import listen, serve_proxy
from tests.harness import memory_proxy, scenario_of


def make(limit: float = 15.0, action: str = "close", status: int = 504) -> Lifetime:
    return Lifetime({"limit": limit, "action": action, "status": status}, random.Random(0))


def events(*numbers: int) -> bytes:
    return b"".join(origin.encode_event(n) for n in numbers)


# -- decisions -----------------------------------------------------------------------------


def test_counts_from_activation_and_lets_data_through_meanwhile() -> None:
    fault = make(limit=15.0)
    assert fault.start(2.0) == [Wake(17.0)]
    piece = Piece(b"id: 1\n\n")
    assert fault.on_piece(piece, 16.9) == [Deliver(piece, 16.9)]  # data does not move it


@pytest.mark.parametrize(("action", "stop"), [("close", Close), ("reset", Reset), ("end", End)])
def test_the_timer_answers_the_action_with_the_status(action: str, stop: type) -> None:
    fault = make(limit=15.0, action=action, status=503)
    fault.start(0.0)
    assert fault.on_timer(15.0) == [stop("limit of 15s reached", 503)]


# -- through the proxy, in virtual time ----------------------------------------------------

EVERY_SECOND = origin.OriginSettings(interval=1, heartbeat=0)  # event n at n - 1 s
ENVOY = '[[faults]]\ntype = "lifetime"\nlimit = "15s"\n'


async def test_envoy_route_timeout_cuts_a_flowing_stream_at_15_seconds(
    autojump_clock: object,
) -> None:
    async with memory_proxy(ENVOY, EVERY_SECOND) as mp:
        got = await mp.client().get("/events")
        assert got.status == 200
        assert got.body == events(*range(1, 16))  # due at 0..14 s; event 16 (15 s) is cut
        assert [at for at, _ in got.chunks] == [float(n) for n in range(15)]
        assert (got.ending, got.ended_at) == ("closed", 15.0)  # no terminating chunk
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["reason"], closed["t"]) == ("proxy", "lifetime", 15.0)
        assert closed["detail"] == "limit of 15s reached"
        assert (closed["events_down"], closed["last_id"]) == (15, "15")
        (fault,) = mp.journal.of_kind("fault")
        assert (fault["fault"], fault["action"], fault["t"]) == ("lifetime", "close", 15.0)


async def test_close_sends_no_terminating_chunk_on_the_wire(autojump_clock: object) -> None:
    async with memory_proxy(ENVOY, EVERY_SECOND) as mp:
        client = mp.client()
        await client.send("GET", "/events")
        raw = b""
        while data := await client.stream.receive_some(65536):
            raw += data
        assert trio.current_time() == 15.0
        last = origin.encode_event(15)
        assert raw.endswith(b"%x\r\n%s\r\n" % (len(last), last))  # no b"0\r\n\r\n" after it


async def test_spring_async_timeout_ends_cleanly_at_30_seconds(autojump_clock: object) -> None:
    scenario = '[[faults]]\ntype = "lifetime"\nlimit = "30s"\naction = "end"\n'
    async with memory_proxy(scenario, EVERY_SECOND) as mp:
        client = mp.client()
        got = await client.get("/events")
        assert got.body == events(*range(1, 31))
        assert (got.ending, got.ended_at) == ("end", 30.0)
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"], ended["t"]) == ("proxy", "lifetime", 30.0)
        # a clean end keeps the connection: the client's reconnect can reuse it
        again = await client.get("/status/204")
        assert (again.status, again.ended_at) == (204, 30.0)


async def test_counted_from_when_the_fault_becomes_active(autojump_clock: object) -> None:
    async with memory_proxy(ENVOY + 'after = "5s"\n', EVERY_SECOND) as mp:
        got = await mp.client().get("/events")
        assert (got.ending, got.ended_at) == ("closed", 20.0)
        assert got.body == events(*range(1, 21))


async def test_a_stream_that_ends_in_time_is_not_touched(autojump_clock: object) -> None:
    settings = origin.OriginSettings(interval=1, heartbeat=0, count=10)  # ends at 9 s
    async with memory_proxy(ENVOY, settings) as mp:
        got = await mp.client().get("/events")
        assert (got.ending, got.ended_at, got.body) == ("end", 9.0, events(*range(1, 11)))
        await trio.sleep(60)
        assert not mp.journal.of_kind("fault")


async def test_before_the_response_head_the_proxy_answers_the_status(
    autojump_clock: object,
) -> None:
    ends: list[trio.abc.Stream] = []

    async def silent_upstream() -> trio.abc.Stream:
        proxy_end, upstream_end = trio.testing.memory_stream_pair()
        ends.append(upstream_end)  # never answers
        return proxy_end

    async with memory_proxy(ENVOY) as mp:
        mp.proxy.connector = silent_upstream
        got = await mp.client().get("/events")
        assert (got.status, got.ending, got.ended_at) == (504, "end", 15.0)
        assert got.body == b"sseproxy: limit of 15s reached\n"
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"], ended["t"]) == ("proxy", "lifetime", 15.0)
        (response,) = mp.journal.of_kind("response")
        assert (response["status"], response["origin"]) == (504, "proxy")


# -- over real loopback sockets: a real RST ------------------------------------------------

QUIET = origin.OriginSettings(interval=3600, heartbeat=0)
REQUEST = b"GET /events HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n"


@asynccontextmanager
async def loopback_proxy(toml: str, settings: origin.OriginSettings) -> AsyncIterator[int]:
    """The built-in origin and the proxy on 127.0.0.1 ephemeral ports; yields the proxy's."""
    async with trio.open_nursery() as nursery:
        origin_port = await nursery.start(origin.serve, "127.0.0.1", 0, settings)
        listener = await listen("127.0.0.1", 0)
        port: int = listener.socket.getsockname()[1]
        settings_ = ProxySettings(Upstream("127.0.0.1", origin_port))
        proxy = Proxy(settings_, scenario_of(toml), Journal(keep=True), seed=1)
        await nursery.start(serve_proxy, proxy, listener)
        yield port
        nursery.cancel_scope.cancel()


async def test_reset_action_gives_the_client_econnreset() -> None:
    toml = '[[faults]]\ntype = "lifetime"\nlimit = "200ms"\naction = "reset"\n'
    with trio.fail_after(5):
        async with loopback_proxy(toml, QUIET) as port:
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            with sock:
                await sock.connect(("127.0.0.1", port))
                await sock.send(REQUEST)
                started = trio.current_time()
                received = b""
                with pytest.raises(ConnectionResetError) as caught:
                    while data := await sock.recv(65536):
                        received += data
                waited = trio.current_time() - started
    assert caught.value.errno == errno.ECONNRESET
    assert received.startswith(b"HTTP/1.1 200 ")
    assert origin.encode_event(1) in received
    assert waited >= 0.15
