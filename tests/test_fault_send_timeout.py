"""send-timeout: decisions in pure code, then lockstep streams (a client that really stops
reading) in virtual time, and one real socket with a small receive buffer."""

from __future__ import annotations

import random
import socket

import trio
import trio.testing

from sseproxy import origin
from sseproxy.faults.base import Close, Deliver, Piece
from sseproxy.faults.send_timeout import SendTimeout
from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.server import listen, serve_proxy
from tests.harness import Client, MemoryProxy, memory_proxy, scenario_of


def make(timeout: float = 60.0) -> SendTimeout:
    return SendTimeout({"timeout": timeout}, random.Random(0))


# -- decisions -----------------------------------------------------------------------------


def test_it_only_limits_blocked_writes() -> None:
    fault = make(timeout=5.0)
    assert fault.write_timeout() == 5.0
    assert fault.start(0.0) == []
    piece = Piece(b"id: 1\n\n")
    assert fault.on_piece(piece, 1.0) == [Deliver(piece, 1.0)]
    assert fault.on_timer(2.0) == []
    assert fault.on_write_timeout(6.0) == [Close("peer read nothing for 5s")]


# -- through the proxy, in virtual time ----------------------------------------------------

FAST = origin.OriginSettings(interval=0, size=64 * 1024, heartbeat=0)
"""64 KiB events as fast as the proxy takes them."""


def lockstep_origin(mp: MemoryProxy, settings: origin.OriginSettings) -> None:
    """Serve the upstream over lockstep streams: the origin feels the proxy's backpressure
    (over an unbounded memory stream a fast origin would never block, nor time move)."""

    async def connect() -> trio.abc.Stream:
        proxy_end, origin_end = trio.testing.lockstep_stream_pair()
        mp.nursery.start_soon(origin.handle_connection, origin_end, settings)
        return proxy_end

    mp.proxy.connector = connect


def lockstep_client(mp: MemoryProxy) -> Client:
    """A client whose proxy-side writes complete only as far as the client reads."""
    client_end, proxy_end = trio.testing.lockstep_stream_pair()
    mp.nursery.start_soon(mp.proxy.handle, proxy_end, "127.0.0.1:50000")
    return Client(client_end)


async def test_a_client_that_stops_reading_is_closed_after_the_timeout(
    autojump_clock: object,
) -> None:
    async with memory_proxy('[[faults]]\ntype = "send-timeout"\ntimeout = "5s"\n') as mp:
        lockstep_origin(mp, FAST)
        client = lockstep_client(mp)
        got = await client.get("/events", limit=1)  # the head and part of event 1, then no more
        assert got.status == 200
        assert trio.current_time() == 0.0
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["reason"], closed["t"]) == ("proxy", "send-timeout", 5.0)
        assert "5s" in closed["detail"]
        (fault,) = mp.journal.of_kind("fault")
        assert (fault["fault"], fault["action"], fault["t"]) == ("send-timeout", "close", 5.0)
        # reading again, the client finds the connection closed, with no terminating chunk
        rest = b""
        while data := await client.stream.receive_some(65536):
            rest += data
        assert not rest.endswith(b"0\r\n\r\n")


async def test_a_client_that_keeps_reading_is_never_cut(autojump_clock: object) -> None:
    settings = origin.OriginSettings(interval=0, size=64 * 1024, heartbeat=0, count=24)
    async with memory_proxy('[[faults]]\ntype = "send-timeout"\ntimeout = "1s"\n') as mp:
        lockstep_origin(mp, settings)
        client = lockstep_client(mp)
        await client.send("GET", "/events")
        raw = bytearray()
        while data := await client.stream.receive_some(16 * 1024):
            raw += data
            await trio.sleep(0.1)  # slow, but steady: never 1 s without a read
            if raw.endswith(b"\r\n0\r\n\r\n"):
                break
        assert trio.current_time() > 9.0  # the whole response took far longer than 1 s
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"]) == ("upstream", "upstream-end")
        assert not mp.journal.of_kind("fault")


async def test_a_fast_reader_gets_the_whole_stream(autojump_clock: object) -> None:
    settings = origin.OriginSettings(interval=0, size=64 * 1024, heartbeat=0, count=32)
    async with memory_proxy('[[faults]]\ntype = "send-timeout"\ntimeout = "1s"\n') as mp:
        lockstep_origin(mp, settings)
        got = await lockstep_client(mp).get("/events")
        assert got.ending == "end"
        assert got.body == b"".join(origin.encode_event(n, 64 * 1024) for n in range(1, 33))
        assert not mp.journal.of_kind("fault")


async def test_a_client_reading_more_often_than_the_timeout_is_never_cut(
    autojump_clock: object,
) -> None:
    settings = origin.OriginSettings(interval=0, size=64 * 1024, heartbeat=0, count=8)
    async with memory_proxy('[[faults]]\ntype = "send-timeout"\ntimeout = "1s"\n') as mp:
        lockstep_origin(mp, settings)
        client = lockstep_client(mp)
        await client.send("GET", "/events")
        raw = bytearray()
        while data := await client.stream.receive_some(64 * 1024):
            raw += data
            if raw.endswith(b"\r\n0\r\n\r\n"):
                break
            await trio.sleep(0.6)  # a read every 0.6 s: never 1 s without progress
        assert not mp.journal.of_kind("fault")
        assert raw.endswith(b"\r\n0\r\n\r\n")


# -- over a real socket: a client that never reads -----------------------------------------


async def test_on_a_real_socket_a_client_that_never_reads_is_closed() -> None:
    fast = origin.OriginSettings(interval=0, size=64 * 1024, heartbeat=0)
    scenario = scenario_of('[[faults]]\ntype = "send-timeout"\ntimeout = "200ms"\n')
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            origin_port = await nursery.start(origin.serve, "127.0.0.1", 0, fast)
            listener = await listen("127.0.0.1", 0)
            port = listener.socket.getsockname()[1]
            proxy = Proxy(
                ProxySettings(Upstream("127.0.0.1", origin_port)), scenario, Journal(keep=True)
            )
            await nursery.start(serve_proxy, proxy, listener)
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            with sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                await sock.connect(("127.0.0.1", port))
                await sock.send(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
                started = trio.current_time()
                (closed,) = await proxy.journal.wait_for("closed")  # we never read
                waited = trio.current_time() - started
            nursery.cancel_scope.cancel()
    assert (closed["by"], closed["reason"]) == ("proxy", "send-timeout")
    assert closed["detail"] == "peer read nothing for 200ms"
    assert waited >= 0.2
