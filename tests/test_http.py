"""HTTP mode: forwarding, keep-alive, bad input and the journal (memory streams and sockets).

The upstream is a `Router`: the built-in origin for ordinary paths, and a few hand-written
misbehaving answers (`/garbage`, `/no-response`, `/cut`, `/huge-head`, `/record`) for
the rest. Every bad-input case runs next to a live SSE stream on another connection and
checks that the stream keeps receiving the next events.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import h11
import pytest
import trio
import trio.testing

from sseproxy import origin
from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.scenario import Scenario
from sseproxy.server import listen, serve_proxy
from sseproxy.transport import UpstreamError
from tests.harness import Client, MemoryProxy, Received, scenario_of

Record = dict[str, Any]
Connector = Callable[[], Awaitable[trio.abc.Stream]]

UPSTREAM = Upstream("127.0.0.1", 9)
EVERY_SECOND = origin.OriginSettings(interval=1, heartbeat=0)  # memory, virtual time
FAST = origin.OriginSettings(interval=0.05, heartbeat=0)  # sockets, wall time
MEMORY_BOUND = 10_000.0  # virtual seconds: under autojump a hang becomes a TooSlowError
SOCKET_BOUND = 10.0  # seconds any real-socket test may take before it is a failure

CUT_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
)
CUT_EVENT = b"id: 1\ndata: first\n\n"
RECORD_REPLY = (
    b"HTTP/1.1 200 OK\r\n"
    b"content-length: 8\r\n"
    b"connection: x-up, keep-alive\r\n"
    b"keep-alive: timeout=5\r\n"
    b"x-up: hop\r\n"
    b"x-end: kept\r\n"
    b"\r\n"
    b"recorded"
)


def get(target: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nhost: test\r\n\r\n".encode()


def chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


# -- the upstream ----------------------------------------------------------------------


async def read_head(stream: trio.abc.ReceiveStream) -> tuple[bytes, bytes]:
    """Bytes up to the end of a message head, and what came after it."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = bytes(await stream.receive_some(65536))
        if not more:
            return data, b""
        data += more
    head, sep, rest = data.partition(b"\r\n\r\n")
    return head + sep, rest


async def drain(stream: trio.abc.ReceiveStream) -> None:
    """Read until the peer closes (so an upstream ends only after the proxy let go)."""
    try:
        while await stream.receive_some(65536):
            pass
    except trio.BrokenResourceError:
        pass


class Replay(trio.abc.Stream):
    """A stream that first gives back bytes already read from it (to hand a request on)."""

    def __init__(self, stream: trio.abc.Stream, pending: bytes) -> None:
        self.stream = stream
        self.pending = pending

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.pending:
            size = max_bytes or 65536
            data, self.pending = self.pending[:size], self.pending[size:]
            await trio.lowlevel.checkpoint()
            return data
        return bytes(await self.stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.stream.aclose()


@dataclass
class Router:
    """The upstream behind the proxy: the origin, or a scripted misbehaviour by path."""

    settings: origin.OriginSettings
    seen: list[tuple[h11.Request, bytes]] = field(default_factory=list)

    async def handle(self, stream: trio.abc.Stream) -> None:
        try:
            head, rest = await read_head(stream)
            path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
            if path == b"/garbage":
                await stream.send_all(b"HELLO\r\n\r\n")
            elif path == b"/no-response":
                pass
            elif path == b"/cut":  # a chunked body that never gets its terminating chunk
                await stream.send_all(CUT_HEAD + chunk(CUT_EVENT))
            elif path == b"/huge-head":  # a response head that never ends, over 16 KiB
                await stream.send_all(b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * 20_000)
                await drain(stream)
            elif path.startswith(b"/record"):
                await self.record(stream, head + rest)
            else:
                await origin.handle_connection(Replay(stream, head + rest), self.settings)
        except trio.BrokenResourceError:
            pass  # the proxy may close as soon as it has the whole response
        finally:
            await trio.aclose_forcefully(stream)

    async def record(self, stream: trio.abc.Stream, data: bytes) -> None:
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        request, body = None, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(65536)))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            else:
                break
        assert request is not None
        self.seen.append((request, body))
        await stream.send_all(RECORD_REPLY)


# -- rigs: the proxy in front of a Router, on memory streams or on loopback sockets ------

Prepare = Literal["refuse", "timeout"]


@dataclass
class MemoryRig:
    mp: MemoryProxy
    router: Router
    next_connect: deque[Connector] = field(default_factory=deque)

    @property
    def proxy(self) -> Proxy:
        return self.mp.proxy

    @property
    def journal(self) -> Journal:
        return self.mp.journal

    async def client(self) -> Client:
        return self.mp.client()

    async def prepare(self, kind: Prepare) -> str:
        """Make the next connect fail; returns how the error response must start."""
        message = (
            "cannot connect to upstream 127.0.0.1:9: Connection refused"
            if kind == "refuse"
            else "upstream 127.0.0.1:9 did not accept within 10s"
        )

        async def fail() -> trio.abc.Stream:
            raise UpstreamError("refused" if kind == "refuse" else "timeout", message)

        self.next_connect.append(fail)
        return message


@asynccontextmanager
async def memory_rig(
    settings: origin.OriginSettings = EVERY_SECOND, *, connect_timeout: float = 10.0
) -> AsyncIterator[MemoryRig]:
    router = Router(settings)
    with trio.fail_after(MEMORY_BOUND):
        async with trio.open_nursery() as nursery:
            queue: deque[Connector] = deque()

            async def connect() -> trio.abc.Stream:
                if queue:
                    return await queue.popleft()()
                proxy_end, upstream_end = trio.testing.memory_stream_pair()
                nursery.start_soon(router.handle, upstream_end)
                return proxy_end

            proxy = Proxy(
                ProxySettings(UPSTREAM, connect_timeout=connect_timeout),
                Scenario(name="none"),
                Journal(keep=True),
                seed=1,
                connector=connect,
            )
            yield MemoryRig(MemoryProxy(proxy, nursery), router, queue)
            nursery.cancel_scope.cancel()


@dataclass
class SocketRig:
    proxy: Proxy
    router: Router
    port: int
    upstream_port: int
    listener: trio.SocketListener
    accepting: trio.CancelScope
    stopped: trio.Event
    fillers: list[trio.SocketStream] = field(default_factory=list)

    @property
    def journal(self) -> Journal:
        return self.proxy.journal

    async def client(self) -> Client:
        return Client(await trio.open_tcp_stream("127.0.0.1", self.port))

    async def prepare(self, kind: Prepare) -> str:
        """Make the next connect fail for real; returns how the error response must start."""
        where = f"127.0.0.1:{self.upstream_port}"
        self.accepting.cancel()
        await self.stopped.wait()
        if kind == "refuse":  # close the listening socket: the port now refuses
            await self.listener.aclose()
            return f"cannot connect to upstream {where}: "  # the OS's words: see the xfail
        # no more accept() on a backlog-0 listener: one connect fills its queue, then
        # the kernel drops SYNs and a connect hangs until the proxy's connect timeout
        self.fillers.append(await trio.open_tcp_stream("127.0.0.1", self.upstream_port))
        return f"upstream {where} did not accept within 0.3s"


@asynccontextmanager
async def socket_rig(settings: origin.OriginSettings = FAST) -> AsyncIterator[SocketRig]:
    router = Router(settings)
    (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=0)
    fillers: list[trio.SocketStream] = []
    try:
        with trio.fail_after(SOCKET_BOUND):
            async with trio.open_nursery() as nursery:
                upstream_port = listener.socket.getsockname()[1]
                accepting, stopped = trio.CancelScope(), trio.Event()

                async def accept_loop() -> None:
                    with accepting:
                        while True:
                            stream = await listener.accept()
                            nursery.start_soon(router.handle, stream)
                    stopped.set()

                nursery.start_soon(accept_loop)
                upstream = Upstream("127.0.0.1", upstream_port)
                proxy = Proxy(
                    ProxySettings(upstream, connect_timeout=0.3),
                    Scenario(name="none"),
                    Journal(keep=True),
                    seed=1,
                )
                proxy_listener = await listen("127.0.0.1", 0)
                port = proxy_listener.socket.getsockname()[1]
                await nursery.start(serve_proxy, proxy, proxy_listener)
                yield SocketRig(
                    proxy, router, port, upstream_port, listener, accepting, stopped, fillers
                )
                nursery.cancel_scope.cancel()  # nothing awaits after this: no swallowed errors
    finally:
        for filler in fillers:
            await trio.aclose_forcefully(filler)
        await trio.aclose_forcefully(listener)


Rig = MemoryRig | SocketRig


# -- clients ---------------------------------------------------------------------------


class LiveStream:
    """An SSE response being read, event by event."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.buffer = b""
        self.last = 0

    async def _next(self) -> object:
        conn = self.client.conn
        while (event := conn.next_event()) is h11.NEED_DATA:
            conn.receive_data(bytes(await self.client.stream.receive_some(65536)))
        return event

    async def start(self, target: str = "/events") -> None:
        await self.client.send("GET", target)
        head = await self._next()
        assert isinstance(head, h11.Response), head
        assert head.status_code == 200

    async def next_ids(self, count: int) -> list[int]:
        ids: list[int] = []
        while len(ids) < count:
            while b"\n\n" not in self.buffer:
                event = await self._next()
                assert isinstance(event, h11.Data), event
                self.buffer += event.data
            block, _, self.buffer = self.buffer.partition(b"\n\n")
            ids += [int(line[4:]) for line in block.split(b"\n") if line.startswith(b"id: ")]
        self.last = ids[-1]
        return ids


@asynccontextmanager
async def live_stream(rig: Rig) -> AsyncIterator[LiveStream]:
    """An SSE stream on its own connection that must keep going through the block."""
    stream = LiveStream(await rig.client())
    await stream.start()
    assert await stream.next_ids(1) == [1]
    yield stream
    last = stream.last
    assert await stream.next_ids(2) == [last + 1, last + 2]


async def raw_exchange(client: Client, raw: bytes, *, limit: int | None = None) -> Received:
    """Send `raw` bytes as a request and read one response (h11 is told only 'a GET')."""
    client.conn.send(h11.Request(method="GET", target="/", headers=[("host", "test")]))
    client.conn.send(h11.EndOfMessage())
    await client.stream.send_all(raw)
    return await client.response(limit=limit)


async def assert_closed_by_proxy(client: Client) -> None:
    assert await client.stream.receive_some(65536) == b""


def records_of(journal: Journal, conn: str) -> list[Record]:
    return [record for record in journal.records if record["conn"] == conn]


async def closed_record(journal: Journal, conn: str) -> Record:
    while not (found := [r for r in journal.of_kind("closed") if r["conn"] == conn]):
        await journal.wait_for("closed", len(journal.of_kind("closed")) + 1)
    (closed,) = found
    return closed


async def closed_record_after_close(rig: Rig, client: Client, conn: str) -> Record:
    await client.stream.aclose()
    return await closed_record(rig.journal, conn)


# -- request forwarding ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "body"), [("GET", b""), ("DELETE", b""), ("OPTIONS", b""), ("PATCH", b"a=1")]
)
async def test_method_target_query_and_body_reach_the_upstream(
    autojump_clock: trio.testing.MockClock, method: str, body: bytes
) -> None:
    target = "/record/a%20b?x=1&y=two%2Fthree&x=&z"
    async with memory_rig() as rig:
        client = await rig.client()
        await client.send(method, target, body=body)
        got = await client.response()
        assert (got.status, got.body, got.ending) == (200, b"recorded", "end")
        ((request, seen_body),) = rig.router.seen
        assert request.method == method.encode()
        assert request.target == target.encode()
        assert seen_body == body
        (record,) = await rig.journal.wait_for("request")
        path, _, query = target.partition("?")
        assert (record["method"], record["path"], record["query"]) == (method, path, query)


async def test_a_large_body_goes_up_and_comes_back_through_echo(
    autojump_clock: trio.testing.MockClock,
) -> None:
    body = os.urandom(200_000) + b"\r\n\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n"
    async with memory_rig() as rig:
        client = await rig.client()
        await client.send("POST", "/echo", [("content-type", "application/x-test")], body)
        got = await client.response()
        assert (got.status, got.ending) == (200, "end")
        assert got.headers[b"content-type"] == b"application/x-test"
        assert got.body == body
        client.conn.start_next_cycle()
        # a chunked request body is forwarded as chunks and arrives whole
        parts = [b"first,", b"", b"second,", b"third"]
        request = h11.Request(
            method="PUT",
            target="/echo",
            headers=[("host", "test"), ("transfer-encoding", "chunked")],
        )
        data = client.conn.send(request) or b""
        for part in parts:
            data += client.conn.send(h11.Data(data=part)) or b""
        data += client.conn.send(h11.EndOfMessage()) or b""
        await client.stream.send_all(data)
        again = await client.response()
        assert (again.status, again.body) == (200, b"".join(parts))
        closed = await closed_record_after_close(rig, client, "c1")
        assert closed["bytes_up"] == len(body) + len(b"".join(parts))
        assert closed["bytes_down"] == len(body) + len(b"".join(parts))


async def test_last_event_id_reaches_the_origin_which_resumes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memory_rig() as rig:
        got = await (await rig.client()).get("/events?count=45", [("Last-Event-ID", "41")])
        assert (got.status, got.ending) == (200, "end")
        assert got.body == b"".join(origin.encode_event(n) for n in range(42, 46))
        (request,) = await rig.journal.wait_for("request")
        assert request["last_event_id"] == "41"


async def test_hop_by_hop_headers_are_dropped_and_end_to_end_ones_pass(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sent = [
        ("Connection", "x-custom, x-other"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Upgrade", "websocket"),
        ("Proxy-Connection", "keep-alive"),
        ("X-Custom", "listed in Connection"),
        ("X-Other", "also listed"),
        ("Accept", "text/event-stream"),
        ("Cache-Control", "no-cache"),
        ("Last-Event-ID", "abc:41/x y"),
        ("User-Agent", "probe/1.0"),
        ("X-End", "kept"),
    ]
    async with memory_rig() as rig:
        client = await rig.client()
        got = await client.get("/record", sent)
        assert (got.status, got.body) == (200, b"recorded")
        ((request, _),) = rig.router.seen
        names = [name for name, _ in request.headers]
        headers = dict(request.headers)
        for dropped in (b"connection", b"keep-alive", b"te", b"upgrade", b"proxy-connection"):
            assert dropped not in headers
        assert b"x-custom" not in headers and b"x-other" not in headers
        assert headers[b"accept"] == b"text/event-stream"
        assert headers[b"cache-control"] == b"no-cache"
        assert headers[b"last-event-id"] == b"abc:41/x y"
        assert headers[b"user-agent"] == b"probe/1.0"
        assert headers[b"x-end"] == b"kept"
        assert names.count(b"host") == 1 and headers[b"host"] == b"127.0.0.1:9"
        assert headers[b"x-forwarded-for"] == b"127.0.0.1"
        # the response's hop-by-hop headers are dropped on the way down too
        assert b"x-up" not in got.headers and b"keep-alive" not in got.headers
        assert b"connection" not in got.headers
        assert got.headers[b"x-end"] == b"kept"
        (record,) = await rig.journal.wait_for("request")
        assert record["last_event_id"] == "abc:41/x y"
        assert record["user_agent"] == "probe/1.0"


# -- keep-alive --------------------------------------------------------------------------


async def test_sse_stream_while_sequential_requests_share_another_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memory_rig() as rig, live_stream(rig) as stream:
        client = await rig.client()
        for n in range(3):
            await client.send("POST", "/echo", body=f"post {n}".encode())
            got = await client.response()
            assert (got.status, got.body, got.ending) == (200, f"post {n}".encode(), "end")
            other = await rig.client()  # meanwhile, a POST on a connection of its own
            await other.send("POST", "/echo", body=b"elsewhere")
            assert (await other.response()).body == b"elsewhere"
            await other.stream.aclose()
        assert (await client.get("/status/204")).status == 204
        index = await client.get("/?x=1")
        assert index.status == 200 and index.body.startswith(b"sseproxy origin")
        last = stream.last
        assert await stream.next_ids(1) == [last + 1]  # still flowing, in order
        closed = await closed_record_after_close(rig, client, "c2")
        assert (closed["by"], closed["reason"], closed["requests"]) == (
            "client",
            "client-closed",
            5,
        )
        assert [r["kind"] for r in records_of(rig.journal, "c2")].count("opened") == 1
        requests = [r for r in records_of(rig.journal, "c2") if r["kind"] == "request"]
        assert [r["method"] for r in requests] == ["POST"] * 3 + ["GET"] * 2


async def test_pipelined_requests_are_answered_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memory_rig() as rig:
        client = await rig.client()
        raw = b"".join(
            f"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\n\r\nr{n:02}".encode()
            for n in range(3)
        )
        await client.stream.send_all(raw)
        for n in range(3):
            if n:
                client.conn.start_next_cycle()
            client.conn.send(h11.Request(method="POST", target="/", headers=[("host", "t")]))
            client.conn.send(h11.EndOfMessage())
            got = await client.response()
            assert (got.status, got.body) == (200, f"r{n:02}".encode())


# -- bad input: its own status, and the neighbour's stream goes on ----------------------


@dataclass(frozen=True)
class BadCase:
    request: bytes
    status: int
    by: str
    reason: str | None  # None: checked by its own (xfail) test
    prepare: Prepare | None = None
    parsed: bool = True  # the request head was understood (a `request` record exists)


BAD_CASES = {
    "malformed-request-line": BadCase(
        b"GARBAGE\r\n\r\n", 400, "client", "bad-request", parsed=False
    ),
    "head-over-16KiB": BadCase(
        b"GET /events HTTP/1.1\r\nhost: t\r\nx-big: " + b"a" * 17_000,
        431,
        "client",
        "head-too-large",
        parsed=False,
    ),
    "upstream-refused": BadCase(get("/events"), 502, "upstream", "upstream-refused", "refuse"),
    "upstream-connect-timeout": BadCase(
        get("/events"), 504, "upstream", "upstream-timeout", "timeout"
    ),
    "garbage-before-response-head": BadCase(
        get("/garbage"), 502, "upstream", "upstream-protocol-error"
    ),
    "upstream-closes-without-response": BadCase(get("/no-response"), 502, "upstream", None),
    "response-head-over-16KiB": BadCase(
        get("/huge-head"), 502, "upstream", "upstream-protocol-error"
    ),
}


async def check_bad_case(rig: Rig, case: BadCase) -> None:
    """Its status with one line saying why, and the neighbour's stream goes on. The
    client's bad input ends its connection; an upstream's failure ends only the exchange:
    the next request on the connection is served, as behind nginx and HAProxy."""
    kept = case.by == "upstream"
    async with live_stream(rig):
        named = await rig.prepare(case.prepare) if case.prepare else None
        client = await rig.client()
        got = await raw_exchange(client, case.request)
        assert (got.status, got.ending) == (case.status, "end")
        assert got.headers[b"content-type"] == b"text/plain; charset=utf-8"
        assert got.headers.get(b"connection") == (None if kept else b"close")
        assert got.body.startswith(b"sseproxy: ") and got.body.count(b"\n") == 1
        assert got.body.endswith(b"\n")
        if named is not None:
            assert got.body.startswith(f"sseproxy: {named}".encode())
        elif case.by == "upstream":
            assert f"upstream {rig.proxy.settings.upstream} ".encode() in got.body
        else:
            assert got.body.startswith(b"sseproxy: bad request: ")
        if kept:
            client.conn.start_next_cycle()
            again = await client.get("/?x=1")
            if isinstance(rig, SocketRig) and case.prepare is not None:
                assert again.status == case.status  # the upstream is still down: again
            else:
                assert again.status == 200 and again.body.startswith(b"sseproxy origin")
            await client.stream.aclose()
        else:
            await assert_closed_by_proxy(client)
        closed = await closed_record(rig.journal, "c2")

    records = records_of(rig.journal, "c2")
    kinds = [r["kind"] for r in records]
    if case.parsed:
        upstream = ["upstream"] if case.by == "upstream" and case.status == 502 else []
        first = kinds[: kinds.index("ended") + 1]
        assert first in (
            ["opened", "request", *upstream, "response", "ended"],
            ["opened", "request", "response", "ended"],
        )
        rest = kinds[len(first) :]
        if kept:  # a fresh exchange on the same connection
            assert rest[0] == "request" and rest[-3:] == ["response", "ended", "closed"]
        else:
            assert rest == ["closed"]
        ended = next(r for r in records if r["kind"] == "ended")
        assert ended["by"] == case.by
        if case.reason is not None:
            assert ended["reason"] == case.reason
    else:
        assert kinds == ["opened", "response", "closed"]
    response = next(r for r in records if r["kind"] == "response")
    assert (response["status"], response["origin"]) == (case.status, "proxy")
    if kept:  # the client closed the connection after its second exchange
        assert (closed["by"], closed["reason"], closed["requests"]) == (
            "client",
            "client-closed",
            2,
        )
    else:
        assert closed["by"] == case.by
        if case.reason is not None:
            assert closed["reason"] == case.reason
        assert closed["requests"] == (1 if case.parsed else 0)
        assert closed["bytes_down"] == 0


@pytest.mark.parametrize("case", BAD_CASES.values(), ids=BAD_CASES.keys())
async def test_bad_input_on_memory_streams(
    autojump_clock: trio.testing.MockClock, case: BadCase
) -> None:
    async with memory_rig() as rig:
        await check_bad_case(rig, case)


@pytest.mark.parametrize("case", BAD_CASES.values(), ids=BAD_CASES.keys())
async def test_bad_input_on_loopback_sockets(case: BadCase) -> None:
    async with socket_rig() as rig:
        await check_bad_case(rig, case)


async def test_a_complete_head_over_16KiB_in_one_read_gets_431(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memory_rig() as rig:
        client = await rig.client()
        head = b"GET /events HTTP/1.1\r\nhost: t\r\nx-big: " + b"a" * 17_000 + b"\r\n\r\n"
        got = await raw_exchange(client, head, limit=1)
        assert got.status == 431


async def test_connect_timeout_applies_to_a_custom_connector(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memory_rig(connect_timeout=5) as rig:

        async def hang() -> trio.abc.Stream:
            await trio.sleep_forever()
            raise AssertionError("unreachable")

        rig.next_connect.append(hang)
        client = await rig.client()
        with trio.fail_after(60):
            got = await client.get("/events")
        assert got.status == 504
        assert b"127.0.0.1:9" in got.body and b" 5s" in got.body
        (ended,) = await rig.journal.wait_for("ended")
        assert (ended["by"], ended["reason"], ended["duration"]) == (
            "upstream",
            "upstream-timeout",
            5.0,
        )


async def test_a_refused_upstream_is_called_refused() -> None:
    async with socket_rig() as rig:
        await rig.prepare("refuse")
        got = await raw_exchange(await rig.client(), get("/events"))
        assert got.status == 502
        where = f"127.0.0.1:{rig.upstream_port}"
        assert (
            got.body
            == f"sseproxy: cannot connect to upstream {where}: Connection refused\n".encode()
        )


async def test_upstream_closing_without_a_response_is_journaled_as_closed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memory_rig() as rig:
        got = await (await rig.client()).get("/no-response")
        assert got.status == 502
        assert b"closed the connection without a response" in got.body
        (ended,) = await rig.journal.wait_for("ended")
        assert (ended["by"], ended["reason"]) == ("upstream", "upstream-closed")


async def test_expect_100_continue_request_gets_the_final_response(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memory_rig() as rig:
        client = await rig.client()
        head = (
            b"POST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n"
        )
        await client.stream.send_all(head + b"hello")
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="POST", target="/", headers=[("host", "t")]))
        response: object = h11.NEED_DATA
        while not isinstance(response, h11.Response):
            response = conn.next_event()
            if response is h11.NEED_DATA:
                conn.receive_data(bytes(await client.stream.receive_some(65536)))
        assert response.status_code == 200


# -- bodies cut short, and who is to blame ----------------------------------------------


async def check_upstream_dies_mid_body(rig: Rig) -> None:
    async with live_stream(rig):
        got = await (await rig.client()).get("/cut")
        assert (got.status, got.body, got.ending) == (200, CUT_EVENT, "closed")
        closed = await closed_record(rig.journal, "c2")
        (ended,) = [r for r in records_of(rig.journal, "c2") if r["kind"] == "ended"]
    assert (ended["by"], ended["reason"]) == ("upstream", "upstream-closed")
    assert (closed["by"], closed["reason"]) == ("upstream", "upstream-closed")
    assert closed["bytes_down"] == len(CUT_EVENT)
    assert (closed["events_down"], closed["last_id"]) == (1, "1")


async def test_upstream_dying_mid_body_cuts_the_client_body(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memory_rig() as rig:
        await check_upstream_dies_mid_body(rig)


async def test_upstream_dying_mid_body_cuts_the_client_body_on_sockets() -> None:
    async with socket_rig() as rig:
        await check_upstream_dies_mid_body(rig)


async def test_client_disconnect_mid_stream_is_the_clients_doing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memory_rig() as rig:
        client = await rig.client()
        stream = LiveStream(client)
        await stream.start()
        assert await stream.next_ids(3) == [1, 2, 3]
        await client.stream.aclose()
        closed = await closed_record(rig.journal, "c1")
        (ended,) = rig.journal.of_kind("ended")
    assert (ended["by"], ended["reason"]) == ("client", "client-closed")
    assert (closed["by"], closed["reason"], closed["duration"]) == ("client", "client-closed", 2.0)
    assert (closed["events_down"], closed["last_id"]) == (3, "3")
    assert closed["bytes_down"] == sum(len(origin.encode_event(n)) for n in (1, 2, 3))


async def test_journal_tells_a_whole_exchange(autojump_clock: trio.testing.MockClock) -> None:
    async with memory_rig() as rig:
        client = await rig.client()
        got = await client.get(
            "/events?count=4", [("Last-Event-ID", "1"), ("User-Agent", "journal-test/2")]
        )
        assert (got.status, got.ending, got.ended_at) == (200, "end", 2.0)
        closed = await closed_record_after_close(rig, client, "c1")
        records = records_of(rig.journal, "c1")
    kinds = [r["kind"] for r in records]
    assert kinds == ["opened", "request", "upstream", "response", "ended", "closed"]
    opened, request, upstream, response, ended, _ = records
    assert (opened["client"], opened["client_port"], opened["mode"]) == ("127.0.0.1", 50000, "http")
    assert (upstream["upstream"], upstream["connect_time"]) == ("http://127.0.0.1:9", 0.0)
    assert {
        k: request[k] for k in ("req", "method", "path", "query", "last_event_id", "user_agent")
    } == {
        "req": 1,
        "method": "GET",
        "path": "/events",
        "query": "count=4",
        "last_event_id": "1",
        "user_agent": "journal-test/2",
    }
    assert (response["status"], response["content_type"], response["ttfb"]) == (
        200,
        "text/event-stream",
        0.0,
    )
    assert (ended["by"], ended["reason"], ended["duration"]) == ("upstream", "upstream-end", 2.0)
    assert (closed["by"], closed["reason"], closed["duration"]) == ("client", "client-closed", 2.0)
    assert closed["bytes_down"] == len(got.body)
    assert (closed["events_down"], closed["first_id"], closed["last_id"]) == (3, "2", "4")
    assert (closed["longest_gap_down"], closed["longest_event_gap"]) == (1.0, 1.0)
    assert (closed["bytes_up"], closed["requests"]) == (0, 1)
    assert all(r["scenario"] == "none" and r["seed"] == 1 for r in records)


async def test_shutdown_writes_a_closed_record_for_an_open_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with memory_rig() as rig:
        async with trio.open_nursery() as connections:
            client_end, proxy_end = trio.testing.memory_stream_pair()
            connections.start_soon(rig.mp.proxy.handle, proxy_end, "127.0.0.1:50000")
            stream = LiveStream(Client(client_end))
            await stream.start()
            assert await stream.next_ids(2) == [1, 2]
            connections.cancel_scope.cancel()
        closed = rig.journal.of_kind("closed")
        assert [(r["conn"], r["by"], r["reason"]) for r in closed] == [("c1", "proxy", "shutdown")]


async def test_a_bug_in_one_connection_ends_only_that_connection(
    autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    """An internal error is printed and journaled; the proxy and other streams go on."""
    from sseproxy.faults.latency import Latency

    def broken(self: Latency, piece: object, now: float) -> list[object]:
        raise RuntimeError("a bug in a fault")

    async with memory_rig() as rig:
        rig.mp.proxy.set_scenario(scenario_of('[[faults]]\ntype = "latency"\n'))
        original = Latency.on_piece
        Latency.on_piece = broken  # type: ignore[assignment,method-assign]
        try:
            got = await (await rig.client()).get("/events?count=1")
        finally:
            Latency.on_piece = original  # type: ignore[method-assign]
        assert got.ending == "closed"
        (closed,) = await rig.journal.wait_for("closed")
        assert (closed["by"], closed["reason"]) == ("proxy", "internal-error")
        second = await rig.client()
        again = await second.get("/events?count=1")  # the proxy still serves
        assert (again.status, again.ending) == (200, "end")
        await second.stream.aclose()
        await rig.journal.wait_for("closed", 2)  # the first handler is long done by now
        assert "a bug in a fault" in capsys.readouterr().err


async def test_shutdown_ends_an_open_stream_cleanly(autojump_clock: trio.testing.MockClock) -> None:
    """On Ctrl-C a stream gets its terminating chunk: the client reconnects, it is not cut."""
    async with memory_rig() as rig:
        client_end, proxy_end = trio.testing.memory_stream_pair()
        proxy_scope = trio.CancelScope()

        async def serve_until_stopped() -> None:
            with proxy_scope:
                await rig.mp.proxy.handle(proxy_end, "127.0.0.1:50000")

        async def stop_at_2_5s() -> None:
            await trio.sleep(2.5)
            proxy_scope.cancel()

        rig.mp.nursery.start_soon(serve_until_stopped)
        rig.mp.nursery.start_soon(stop_at_2_5s)
        client = Client(client_end)
        await client.send("GET", "/events")
        got = await client.response()
        assert (got.status, got.ending, got.ended_at) == (200, "end", 2.5)
        assert got.body == b"".join(origin.encode_event(n) for n in (1, 2, 3))
