"""Issue 9's hardening of HTTP mode: framing, smuggling, protocols we do not speak, slow
clients, truncated bodies and who gets the blame; plus the reason phrase and `kill`.

Each case runs through a proxy on memory streams (virtual time) in front of a scripted
upstream that records what reached it, so "the upstream was never contacted" is a
count, not a hope. A few cases run on loopback sockets where only sockets tell.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.scenario import Scenario, parse_scenario
from sseproxy.server import listen, serve_proxy
from sseproxy.testing import pipe_pair
from tests.test_e2e import proxy_port, sseproxy

Record = dict[str, Any]
BOUND = 10_000.0  # virtual seconds: a hang becomes a TooSlowError
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def read_until_eof(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    try:
        while more := await stream.receive_some(65536):
            data += more
    except trio.BrokenResourceError:
        pass
    return data


async def read_head(stream: trio.abc.ReceiveStream) -> bytes:
    """Bytes up to and including the first blank line (or all there was)."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = bytes(await stream.receive_some(65536))
        if not more:
            break
        data += more
    return data


@dataclass
class Upstream_:
    """A scripted upstream: answers `reply` once it read `wait_for` bytes (or the head)."""

    reply: bytes = OK
    read_all: bool = False
    """Read until the proxy closes before answering (a server waiting for a body)."""
    seen: list[bytes] = field(default_factory=list)
    connections: int = 0

    async def handle(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        try:
            data = await (read_until_eof(stream) if self.read_all else read_head(stream))
            self.seen.append(data)
            if self.read_all:
                return  # the request never ended: a server gives up without an answer
            await stream.send_all(self.reply)
            self.seen[-1] += await read_until_eof(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(stream)


@dataclass
class Rig:
    proxy: Proxy
    upstream: Upstream_
    nursery: trio.Nursery
    clients: int = 0

    @property
    def journal(self) -> Journal:
        return self.proxy.journal

    def client(self) -> trio.abc.HalfCloseableStream:
        client_end, proxy_end = pipe_pair(64 * 1024)
        self.clients += 1
        self.nursery.start_soon(self.proxy.handle, proxy_end, f"127.0.0.1:{50000 + self.clients}")
        return client_end

    def records(self, conn: str) -> list[Record]:
        return [r for r in self.journal.records if r["conn"] == conn]

    async def closed(self, conn: str) -> Record:
        while not (found := [r for r in self.journal.of_kind("closed") if r["conn"] == conn]):
            await self.journal.wait_for("closed", len(self.journal.of_kind("closed")) + 1)
        return found[0]


@asynccontextmanager
async def rig(
    upstream: Upstream_ | None = None, scenario: Scenario | None = None, **settings: Any
) -> AsyncIterator[Rig]:
    up = upstream or Upstream_()
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:

            async def connect() -> trio.abc.Stream:
                proxy_end, upstream_end = pipe_pair(64 * 1024)
                nursery.start_soon(up.handle, upstream_end)
                return proxy_end

            proxy = Proxy(
                ProxySettings(Upstream("127.0.0.1", 9), **settings),
                scenario or Scenario(name="none"),
                Journal(keep=True),
                seed=1,
                connector=connect,
            )
            yield Rig(proxy, up, nursery)
            nursery.cancel_scope.cancel()


async def exchange(rig: Rig, raw: bytes, *, half_close: bool = False) -> bytes:
    """Send raw bytes on a new connection; everything the proxy sent until it closed."""
    client = rig.client()
    await client.send_all(raw)
    if half_close:
        await client.send_eof()
    return await read_until_eof(client)


def status_of(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1]) if reply.startswith(b"HTTP/1.1 ") else 0


def assert_balanced(journal: Journal) -> None:
    """One `closed` per `opened`, and never an internal error."""
    opened = [r["conn"] for r in journal.of_kind("opened")]
    closed = [r["conn"] for r in journal.of_kind("closed")]
    assert sorted(opened) == sorted(closed)
    assert not [r for r in journal.records if r.get("reason") == "internal-error"]


# -- 1. Content-Length with Transfer-Encoding: never forwarded ---------------------------

SMUGGLE = (
    b"POST /upload HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
    b"1e\r\nGET /SMUGGLED HTTP/1.1\r\nhost: t\r\n\r\n0\r\n\r\n"
)


async def test_content_length_with_transfer_encoding_gets_400_and_never_reaches_upstream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with rig() as r:
        reply = await exchange(r, SMUGGLE)
        assert status_of(reply) == 400
        assert b"Content-Length and Transfer-Encoding" in reply
        assert b"SMUGGLED" not in b"".join(r.upstream.seen)
        assert r.upstream.connections == 0
        closed = await r.closed("c1")
        kinds = [rec["kind"] for rec in r.records("c1")]
        assert kinds == ["opened", "request", "response", "ended", "closed"]
        (ended,) = r.journal.of_kind("ended")
        assert (ended["by"], ended["reason"]) == ("client", "bad-request")
        assert (closed["by"], closed["reason"]) == ("client", "bad-request")
        assert_balanced(r.journal)


async def test_a_response_with_both_framings_gets_502(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reply = (
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\n\r\n"
    )
    async with rig(Upstream_(reply)) as r:
        client = r.client()
        await client.send_all(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
        got = b""
        while not got.endswith(b"Transfer-Encoding\n"):  # the end of the one-line body
            got += await client.receive_some(65536)
        await client.aclose()  # the connection was kept alive after the 502: leave
        assert status_of(got) == 502
        assert b"both Content-Length and Transfer-Encoding" in got
        assert b"hello" not in got
        closed = await r.closed("c1")
        (ended,) = r.journal.of_kind("ended")
        assert (ended["by"], ended["reason"]) == ("upstream", "upstream-protocol-error")
        assert (closed["by"], closed["reason"]) == ("client", "client-closed")
        assert_balanced(r.journal)


# -- 3. framing headers and Host are never hop-by-hop ------------------------------------


@pytest.mark.parametrize("listed", ["content-length", "Content-Length, host", "host"])
async def test_connection_cannot_remove_framing_headers_or_host(
    autojump_clock: trio.testing.MockClock, listed: str
) -> None:
    raw = (
        f"POST /x HTTP/1.1\r\nhost: t\r\nconnection: {listed}\r\ncontent-length: 4\r\n\r\nbody"
    ).encode()
    async with rig() as r:
        client = r.client()
        await client.send_all(raw)
        reply = await read_head(client)
        assert status_of(reply) == 200
        await client.aclose()
        closed = await r.closed("c1")
        (seen,) = r.upstream.seen
        assert b"\r\ncontent-length: 4\r\n" in seen.lower()
        assert b"\r\nhost: 127.0.0.1:9\r\n" in seen.lower()
        assert seen.endswith(b"\r\n\r\nbody")
        assert (closed["by"], closed["reason"]) == ("client", "client-closed")
        assert_balanced(r.journal)


# -- 4. truncated request bodies: 400, the client's fault, every time --------------------

TRUNCATED = b"POST /x HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nabcde"
BAD_CHUNK = b"POST /x HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n5\r\nabcde\r\nzz\r\n"
TRIES = 200  # the old race blamed each side about half the time: 200 tries catch it


@pytest.mark.parametrize("live", [False, True], ids=["fast-path", "fault-chain"])
async def test_a_truncated_body_is_always_the_clients_400(
    autojump_clock: trio.testing.MockClock, live: bool
) -> None:
    async with rig(Upstream_(read_all=True), live=live) as r:
        for n in range(1, TRIES + 1):
            reply = await exchange(r, TRUNCATED, half_close=True)
            assert status_of(reply) == 400, (n, reply)
            closed = await r.closed(f"c{n}")
            (ended,) = [rec for rec in r.records(f"c{n}") if rec["kind"] == "ended"]
            assert (ended["by"], ended["reason"]) == ("client", "client-closed"), n
            assert (closed["by"], closed["reason"]) == ("client", "client-closed"), n
        assert_balanced(r.journal)


async def loopback_proxy(nursery: trio.Nursery, up: Upstream_) -> tuple[Proxy, int]:
    """`up` and a proxy in front of it (no faults, journal kept), on loopback sockets."""
    upstream_listener = await listen("127.0.0.1", 0)
    await nursery.start(trio.serve_listeners, up.handle, [upstream_listener])
    upstream = Upstream("127.0.0.1", upstream_listener.socket.getsockname()[1])
    proxy = Proxy(ProxySettings(upstream), Scenario(name="none"), Journal(keep=True), seed=1)
    listener = await listen("127.0.0.1", 0)
    await nursery.start(serve_proxy, proxy, listener)
    return proxy, listener.socket.getsockname()[1]


async def test_a_truncated_body_on_loopback_sockets_is_always_the_clients_400() -> None:
    """The same over real sockets (where the race was first measured: 101 to 99)."""
    up = Upstream_(read_all=True)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            proxy, port = await loopback_proxy(nursery, up)
            for n in range(1, 51):
                client = await trio.open_tcp_stream("127.0.0.1", port)
                await client.send_all(TRUNCATED)
                await client.send_eof()
                assert status_of(await read_until_eof(client)) == 400, n
                await client.aclose()
                closed = (await proxy.journal.wait_for("closed", n))[n - 1]
                assert (closed["by"], closed["reason"]) == ("client", "client-closed"), n
            assert_balanced(proxy.journal)
            nursery.cancel_scope.cancel()


async def test_a_malformed_chunked_body_is_the_clients_400(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with rig(Upstream_(read_all=True)) as r:
        for n in range(1, 51):
            reply = await exchange(r, BAD_CHUNK)
            assert status_of(reply) == 400, (n, reply)
            closed = await r.closed(f"c{n}")
            assert (closed["by"], closed["reason"]) == ("client", "client-protocol-error")
        assert_balanced(r.journal)


# -- 5. protocols we do not speak: answered without contacting the upstream ---------------

UNSPOKEN = {
    "http2-preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "bad-request"),
    "http-9.9": (b"GET /x HTTP/9.9\r\nhost: t\r\n\r\n", 505, "version-not-supported"),
    "http-2.0": (b"GET /x HTTP/2.0\r\nhost: t\r\n\r\n", 505, "version-not-supported"),
    "connect": (b"CONNECT example.org:443 HTTP/1.1\r\nhost: t\r\n\r\n", 501, "not-implemented"),
    "transfer-encoding-gzip": (
        b"POST /x HTTP/1.1\r\nhost: t\r\ntransfer-encoding: gzip\r\n\r\n",
        501,
        "not-implemented",
    ),
}


@pytest.mark.parametrize(("raw", "status", "reason"), UNSPOKEN.values(), ids=UNSPOKEN.keys())
async def test_protocols_we_do_not_speak_are_answered_without_the_upstream(
    autojump_clock: trio.testing.MockClock, raw: bytes, status: int, reason: str
) -> None:
    async with rig() as r:
        reply = await exchange(r, raw)
        assert status_of(reply) == status
        assert b"connection: close\r\n" in reply
        assert r.upstream.connections == 0
        closed = await r.closed("c1")
        assert (closed["by"], closed["reason"]) == ("client", reason)
        (response,) = r.journal.of_kind("response")
        assert (response["status"], response["origin"]) == (status, "proxy")
        assert_balanced(r.journal)


# -- 9. --client-header-timeout ----------------------------------------------------------


async def test_a_partial_head_gets_408_after_the_header_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with rig() as r:
        client = r.client()
        await client.send_all(b"GET /x HTTP/1.1\r\nhost: t\r\n")  # no blank line, ever
        reply = await read_until_eof(client)
        assert status_of(reply) == 408
        assert trio.current_time() == 60.0
        closed = await r.closed("c1")
        assert (closed["by"], closed["reason"], closed["duration"]) == (
            "client",
            "client-header-timeout",
            60.0,
        )
        assert r.upstream.connections == 0


async def test_a_silent_client_is_closed_without_a_reply(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with rig(client_header_timeout=5.0) as r:
        assert await read_until_eof(r.client()) == b""
        closed = await r.closed("c1")
        assert (closed["by"], closed["reason"], closed["duration"]) == (
            "client",
            "client-header-timeout",
            5.0,
        )
        assert closed["detail"] == "idle 5s for a request"
        assert r.journal.of_kind("response") == []


async def test_each_keep_alive_request_head_has_the_timeout_but_a_long_response_does_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    slow = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"

    class Slow(Upstream_):
        async def handle(self, stream: trio.abc.Stream) -> None:
            await read_head(stream)
            await stream.send_all(slow)
            await trio.sleep(100)  # the response takes longer than the header timeout
            await stream.send_all(b"ok")
            await read_until_eof(stream)

    async with rig(Slow(), client_header_timeout=10.0) as r:
        client = r.client()
        await client.send_all(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
        reply = b""
        while not reply.endswith(b"ok"):
            reply += await client.receive_some(65536)
        assert trio.current_time() == 100.0
        await trio.sleep(9)
        await client.send_all(b"GET /y HTTP/1.1\r\n")  # a second head, never finished
        rest = await read_until_eof(client)
        assert status_of(rest) == 408
        assert trio.current_time() == 110.0
        closed = await r.closed("c1")
        assert (closed["reason"], closed["requests"]) == ("client-header-timeout", 1)


# -- issue 15 item 12: the reason phrase, as sent -----------------------------------------


@pytest.mark.parametrize(
    ("status_line", "expected"),
    [
        (b"HTTP/1.1 200 OK", b"HTTP/1.1 200 OK\r\n"),
        (b"HTTP/1.1 200 Fine Thanks", b"HTTP/1.1 200 Fine Thanks\r\n"),
        (b"HTTP/1.1 299", b"HTTP/1.1 299 \r\n"),
    ],
)
async def test_the_upstreams_reason_phrase_reaches_a_socket_client_as_sent(
    status_line: bytes, expected: bytes
) -> None:
    up = Upstream_(status_line + b"\r\ncontent-length: 2\r\n\r\nok")
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            _, port = await loopback_proxy(nursery, up)
            client = await trio.open_tcp_stream("127.0.0.1", port)
            await client.send_all(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
            reply = await read_head(client)
            assert reply.startswith(expected)
            await client.aclose()
            nursery.cancel_scope.cancel()


async def test_a_status_faults_head_gets_the_standard_reason_phrase(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = parse_scenario('[[faults]]\ntype = "status"\ncode = 503\n', file="t.toml")
    async with rig(scenario=scenario) as r:
        client = r.client()
        await client.send_all(b"GET /x HTTP/1.1\r\nhost: t\r\n\r\n")
        assert (await read_head(client)).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")


# -- issue 15 item 8: a killed exchange says killed --------------------------------------


async def test_a_killed_exchange_and_its_connection_both_say_killed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Streaming(Upstream_):
        async def handle(self, stream: trio.abc.Stream) -> None:
            await read_head(stream)
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
            )
            await read_until_eof(stream)

    async with rig(Streaming(), live=True) as r:
        client = r.client()
        await client.send_all(b"GET /events HTTP/1.1\r\nhost: t\r\n\r\n")
        assert status_of(await read_head(client)) == 200
        r.proxy.live["c1"].kill()
        closed = await r.closed("c1")
        (ended,) = r.journal.of_kind("ended")
        assert (ended["by"], ended["reason"]) == ("proxy", "killed")
        assert (closed["by"], closed["reason"]) == ("proxy", "killed")


def test_settings_default_to_nginxs_client_header_timeout() -> None:
    settings = ProxySettings(Upstream("127.0.0.1", 9))
    assert settings.client_header_timeout == 60.0
    assert dataclasses.replace(settings, client_header_timeout=5).client_header_timeout == 5


def test_sseproxy_run_takes_client_header_timeout() -> None:
    """The option reaches the proxy: a real socket with half a head gets 408 in time."""
    with sseproxy("run", "--listen", "127.0.0.1:0", "--client-header-timeout", "300ms") as proxy:
        port = proxy_port(proxy)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(b"GET /events HTTP/1.1\r\nhost: t\r\n")
            reply = b""
            while more := sock.recv(65536):
                reply += more
            waited = time.monotonic() - started
        assert status_of(reply) == 408
        assert 0.25 <= waited < 5


CHUNKED_HEAD_END = b"transfer-encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"HEAD /x HTTP/9.9\r\nhost: t\r\n\r\n", 505),
        (b"HEAD /x HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n" + CHUNKED_HEAD_END, 400),
        (b"HEAD /x HTTP/1.1\r\nhost: t\r\nx-big: " + b"a" * 17_000 + b"\r\n\r\n", 431),
    ],
)
async def test_the_proxys_own_answer_to_head_is_a_head_alone(
    autojump_clock: trio.testing.MockClock, raw: bytes, status: int
) -> None:
    """Found by the fuzzer: the body of an error answer made h11 refuse it for HEAD, so
    the client got nothing while the journal said it got a status."""
    async with rig() as r:
        reply = await exchange(r, raw)
        assert status_of(reply) == status
        assert reply.endswith(b"\r\n\r\n") and b"sseproxy:" not in reply
