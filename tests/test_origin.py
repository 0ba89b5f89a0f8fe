"""The built-in SSE origin, over memory streams in virtual time (and once on a real socket)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import fields

import h11
import pytest
import trio
import trio.testing
from trio.testing import MockClock

from sseproxy.errors import UnitError
from sseproxy.origin import (
    SETTING_DOCS,
    OriginSettings,
    encode_event,
    encode_heartbeat,
    handle_connection,
    parse_setting,
    serve,
)


class Client:
    """Sends raw HTTP bytes; parses what comes back with an h11 client connection."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)
        self.buffer = b""

    async def send(self, raw: bytes, method: str = "GET") -> h11.Response:
        """Send `raw` as one request (h11 is told only its method) and return the response head."""
        if self.conn.our_state is h11.DONE:
            self.conn.start_next_cycle()
        self.conn.send(h11.Request(method=method, target="/", headers=[("Host", "t")]))
        self.conn.send(h11.EndOfMessage())
        await self.stream.send_all(raw)
        while not isinstance(event := await self.next_event(), h11.Response):
            assert isinstance(event, h11.InformationalResponse)
        return event

    async def get(self, target: str, *headers: str) -> h11.Response:
        lines = "".join(f"{header}\r\n" for header in headers)
        return await self.send(f"GET {target} HTTP/1.1\r\nHost: t\r\n{lines}\r\n".encode())

    async def next_event(self) -> h11.Event:
        while not isinstance(event := self.conn.next_event(), h11.Event):
            self.conn.receive_data(bytes(await self.stream.receive_some(65536)))
        return event

    async def body(self) -> bytes:
        data = self.buffer
        while isinstance(event := await self.next_event(), h11.Data):
            data += event.data
        assert isinstance(event, h11.EndOfMessage)
        self.buffer = b""
        return data

    async def message(self) -> tuple[float, bytes] | None:
        """The next SSE message and the virtual time it was complete; None at the end."""
        while b"\n\n" not in self.buffer:
            event = await self.next_event()
            if isinstance(event, h11.EndOfMessage):
                assert self.buffer == b""
                return None
            assert isinstance(event, h11.Data)
            self.buffer += event.data
        message, self.buffer = self.buffer.split(b"\n\n", 1)
        return trio.current_time(), message + b"\n\n"

    async def messages(self, until: float = float("inf")) -> list[tuple[float, bytes]]:
        """Messages complete at or before virtual time `until` (or the end of the stream)."""
        found = []
        with trio.move_on_at(until + 0.001):
            while (item := await self.message()) is not None:
                found.append(item)
        return [(t, m) for t, m in found if t <= until]


Connect = Callable[..., Client]


@pytest.fixture
async def connect(nursery: trio.Nursery) -> Connect:
    def connect(settings: OriginSettings | None = None) -> Client:
        client, server = trio.testing.memory_stream_pair()
        nursery.start_soon(handle_connection, server, settings or OriginSettings())
        return Client(client)

    return connect


def ids(messages: list[tuple[float, bytes]]) -> list[int]:
    return [int(m.split(b"\n")[0].removeprefix(b"id: ")) for _, m in messages if m[:3] == b"id:"]


# -- events and heartbeats


async def test_events_every_interval_from_stream_start(
    connect: Connect, autojump_clock: MockClock
) -> None:
    client = connect()
    response = await client.get("/events")
    assert response.status_code == 200
    headers = dict(response.headers)
    assert headers[b"content-type"] == b"text/event-stream"
    assert headers[b"cache-control"] == b"no-cache"
    assert headers[b"x-accel-buffering"] == b"no"
    assert headers[b"transfer-encoding"] == b"chunked"
    assert await client.messages(until=2) == [
        (0.0, b'id: 1\ndata: {"n": 1}\n\n'),
        (1.0, b'id: 2\ndata: {"n": 2}\n\n'),
        (2.0, b'id: 3\ndata: {"n": 3}\n\n'),
    ]


async def test_comment_heartbeats_keep_their_own_schedule(
    connect: Connect, autojump_clock: MockClock
) -> None:
    client = connect()
    await client.get("/events")
    got = await client.messages(until=31)
    beats = [t for t, m in got if m == b": heartbeat\n\n"]
    assert beats == [15.0, 30.0]
    events = [(t, m) for t, m in got if m != b": heartbeat\n\n"]
    assert events == [(float(k), encode_event(k + 1)) for k in range(32)]  # nothing shifted
    # At t=15 the event due then comes first, then the heartbeat.
    at_15 = [m for t, m in got if t == 15]
    assert at_15 == [encode_event(16), b": heartbeat\n\n"]


async def test_heartbeats_between_sparse_events(
    connect: Connect, autojump_clock: MockClock
) -> None:
    client = connect()
    await client.get("/events?interval=4&heartbeat=6s")
    got = await client.messages(until=12)
    kinds = [(t, "hb" if m.startswith(b":") else "ev") for t, m in got]
    assert kinds == [(0, "ev"), (4, "ev"), (6, "hb"), (8, "ev"), (12, "ev"), (12, "hb")]


async def test_event_heartbeats(connect: Connect, autojump_clock: MockClock) -> None:
    client = connect()
    await client.get("/events?heartbeat=250ms&hb=event&interval=1")
    got = await client.messages(until=0.5)
    assert got == [
        (0.0, b'id: 1\ndata: {"n": 1}\n\n'),
        (0.25, b'event: heartbeat\ndata: {"t": 0.250}\n\n'),
        (0.5, b'event: heartbeat\ndata: {"t": 0.500}\n\n'),
    ]
    assert json.loads(got[1][1].split(b"data: ")[1]) == {"t": 0.25}


async def test_no_heartbeats_when_zero(connect: Connect, autojump_clock: MockClock) -> None:
    client = connect(OriginSettings(interval=10, heartbeat=0))
    await client.get("/events")
    assert [t for t, _ in await client.messages(until=60)] == [0, 10, 20, 30, 40, 50, 60]


@pytest.mark.parametrize("size", [100, 4096])
async def test_size_pads_each_event_exactly(
    connect: Connect, autojump_clock: MockClock, size: int
) -> None:
    client = connect()
    await client.get(f"/events?size={size}&count=12&interval=0")
    got = await client.messages()
    assert ids(got) == list(range(1, 13))
    for _, message in got:
        assert len(message) == size
        data = json.loads(message.split(b"\n")[1].removeprefix(b"data: "))
        assert set(data["pad"]) == {"x"}


async def test_size_with_units(connect: Connect, autojump_clock: MockClock) -> None:
    client = connect()
    await client.get("/events?size=1KiB&count=1")
    assert [len(m) for _, m in await client.messages()] == [1024]


def test_encode_event_is_exact_for_every_size_above_natural() -> None:
    natural = len(encode_event(7))
    assert encode_event(7, size=natural - 5) == encode_event(7) == b'id: 7\ndata: {"n": 7}\n\n'
    for size in range(natural, natural + 40):
        encoded = encode_event(7, size)
        assert len(encoded) == size
        assert json.loads(encoded.split(b"\n")[1].removeprefix(b"data: "))["n"] == 7


def test_encode_heartbeat() -> None:
    assert encode_heartbeat("comment", 3.0) == b": heartbeat\n\n"
    assert encode_heartbeat("event", 1.23456) == b'event: heartbeat\ndata: {"t": 1.235}\n\n'


async def test_count_ends_the_stream_at_the_last_event(
    connect: Connect, autojump_clock: MockClock
) -> None:
    client = connect()
    await client.get("/events?count=3")
    got = await client.messages()
    assert [(t, i) for (t, _), i in zip(got, ids(got), strict=True)] == [(0, 1), (1, 2), (2, 3)]
    assert trio.current_time() == 2.0  # the EndOfMessage came with the last event
    assert client.conn.their_state is h11.DONE


async def test_interval_zero_sends_as_fast_as_read(
    connect: Connect, autojump_clock: MockClock
) -> None:
    client = connect()
    await client.get("/events?count=1000&interval=0")
    got = await client.messages()
    assert ids(got) == list(range(1, 1001))
    assert trio.current_time() == 0


# -- resuming


async def test_resume_after_last_event_id(connect: Connect, autojump_clock: MockClock) -> None:
    client = connect()
    await client.get("/events", "Last-Event-ID: 5")
    got = await client.messages(until=1)
    assert got == [(0, encode_event(6)), (1, encode_event(7))]


async def test_invalid_last_event_id_starts_at_one(
    connect: Connect, autojump_clock: MockClock
) -> None:
    client = connect()
    await client.get("/events?count=1", "Last-Event-ID: -3")
    assert ids(await client.messages()) == [1]


async def test_count_is_the_whole_logical_stream(
    connect: Connect, autojump_clock: MockClock
) -> None:
    client = connect()
    await client.get("/events?count=5", "Last-Event-ID: 3")
    assert ids(await client.messages()) == [4, 5]
    assert trio.current_time() == 1


@pytest.mark.parametrize("last", ["5", "9"])
async def test_resume_at_or_past_count_ends_at_once(
    connect: Connect, autojump_clock: MockClock, last: str
) -> None:
    client = connect()
    response = await client.get("/events?count=5", f"Last-Event-ID: {last}")
    assert response.status_code == 200
    assert await client.body() == b""
    assert trio.current_time() == 0


async def test_retry_line_at_stream_start(connect: Connect, autojump_clock: MockClock) -> None:
    client = connect(OriginSettings(retry=3000))
    await client.get("/events?count=1")
    assert await client.messages() == [(0, b"retry: 3000\n\n"), (0, encode_event(1))]


# -- query parameters


@pytest.mark.parametrize(
    ("query", "name", "value"),
    [
        ("interval=abc", "interval", "abc"),
        ("interval=-1", "interval", "-1"),
        ("heartbeat=1e999", "heartbeat", "1e999"),
        ("hb=loud", "hb", "loud"),
        ("size=4XB", "size", "4XB"),
        ("size=1e999", "size", "1e999"),
        ("size=1GiB", "size", "1GiB"),
        ("count=1.5", "count", "1.5"),
        ("count=", "count", ""),
        ("retry=soon", "retry", "soon"),
    ],
)
async def test_bad_query_value_is_400(
    connect: Connect, autojump_clock: MockClock, query: str, name: str, value: str
) -> None:
    client = connect()
    response = await client.get(f"/events?{query}")
    assert response.status_code == 400
    assert dict(response.headers)[b"content-type"].startswith(b"text/plain")
    body = (await client.body()).decode()
    assert body.count("\n") == 1 and body.endswith("\n")
    assert f"{name}={value!r}" in body
    assert "expected" in body


@pytest.mark.parametrize("query", ["intervl=1", "count=3&Count=4", "n=1", "interval=0&x"])
async def test_unknown_query_parameter_is_400_naming_the_known_ones(
    connect: Connect, autojump_clock: MockClock, query: str
) -> None:
    client = connect()
    response = await client.get(f"/events?{query}")
    assert response.status_code == 400
    body = (await client.body()).decode()
    assert body.count("\n") == 1
    assert "unknown query parameter" in body
    assert "known are interval, heartbeat, hb, size, count, retry" in body


def test_parse_setting_and_docs() -> None:
    assert list(SETTING_DOCS) == [f.name for f in fields(OriginSettings)]
    assert parse_setting("interval", "250ms") == 0.25
    assert parse_setting("heartbeat", "2") == 2.0
    assert parse_setting("size", "4KiB") == 4096
    assert parse_setting("count", "10") == 10
    with pytest.raises(UnitError, match="retry='x'"):
        parse_setting("retry", "x")
    with pytest.raises(ValueError, match="interval"):
        OriginSettings(interval=-1)
    with pytest.raises(ValueError, match="hb"):
        OriginSettings(hb="loud")  # type: ignore[arg-type]


# -- the other endpoints


async def test_status_endpoint(connect: Connect, autojump_clock: MockClock) -> None:
    client = connect()
    response = await client.get("/status/503")
    assert (response.status_code, response.reason) == (503, b"Service Unavailable")
    assert await client.body() == b"status 503\n"
    response = await client.get("/status/204")
    assert response.status_code == 204
    assert b"content-length" not in dict(response.headers)
    assert await client.body() == b""
    response = await client.send(b"HEAD /status/200 HTTP/1.1\r\nHost: t\r\n\r\n", "HEAD")
    assert (response.status_code, dict(response.headers)[b"content-length"]) == (200, b"11")
    assert await client.body() == b""
    response = await client.get("/status/599")
    assert (response.status_code, await client.body()) == (599, b"status 599\n")


@pytest.mark.parametrize("code", ["abc", "101", "600", "99", "2000", ""])
async def test_status_invalid_code_is_400(
    connect: Connect, autojump_clock: MockClock, code: str
) -> None:
    client = connect()
    response = await client.get(f"/status/{code}")
    assert response.status_code == 400
    assert repr(code) in (await client.body()).decode()


@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_echo(connect: Connect, autojump_clock: MockClock, method: str) -> None:
    client = connect()
    body = b'{"hello": "w\xc3\xb6rld"}\n' * 1000
    head = f"{method} /echo HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
    response = await client.send(head.encode() + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert response.status_code == 200
    assert dict(response.headers)[b"content-type"] == b"application/json"
    assert await client.body() == body


async def test_echo_chunked_with_expect_100_continue(
    connect: Connect, autojump_clock: MockClock
) -> None:
    client = connect()
    head = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
    await client.stream.send_all(head + b"Expect: 100-continue\r\n\r\n")
    client.conn.send(h11.Request(method="POST", target="/", headers=[("Host", "t")]))
    client.conn.send(h11.EndOfMessage())
    assert isinstance(event := await client.next_event(), h11.InformationalResponse)
    assert event.status_code == 100
    await client.stream.send_all(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    assert isinstance(response := await client.next_event(), h11.Response)
    assert response.status_code == 200
    assert await client.body() == b"abcde"


async def test_index(connect: Connect, autojump_clock: MockClock) -> None:
    client = connect()
    response = await client.get("/")
    assert response.status_code == 200
    text = (await client.body()).decode()
    for word in ["/events", "/status/{code}", "/echo", "Last-Event-ID", *SETTING_DOCS]:
        assert word in text


async def test_unknown_path_is_404(connect: Connect, autojump_clock: MockClock) -> None:
    client = connect()
    assert (await client.get("/nope")).status_code == 404
    assert b"/nope" in await client.body()


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [("POST", "/events", b"GET"), ("DELETE", "/echo", b"POST, PUT"), ("PUT", "/", b"GET, HEAD")],
)
async def test_wrong_method_is_405(
    connect: Connect, autojump_clock: MockClock, method: str, path: str, allow: bytes
) -> None:
    client = connect()
    raw = f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc".encode()
    response = await client.send(raw, method)
    assert response.status_code == 405
    assert dict(response.headers)[b"allow"] == allow
    await client.body()
    assert (await client.get("/status/200")).status_code == 200  # still usable


# -- the connection


async def test_keep_alive_serves_requests_in_turn(
    connect: Connect, autojump_clock: MockClock
) -> None:
    client = connect()
    assert (await client.get("/status/200")).status_code == 200
    assert await client.body() == b"status 200\n"
    await client.get("/events?count=2")
    assert ids(await client.messages()) == [1, 2]
    await client.get("/events?count=1", "Last-Event-ID: 0")
    assert ids(await client.messages()) == [1]
    assert (await client.get("/nope")).status_code == 404


async def test_malformed_request_is_400_then_close(
    connect: Connect, autojump_clock: MockClock
) -> None:
    client = connect()
    response = await client.send(b"NOT HTTP AT ALL\r\n\r\n")
    assert response.status_code == 400
    assert dict(response.headers)[b"connection"] == b"close"
    assert (await client.body()).startswith(b"bad request: ")
    assert isinstance(await client.next_event(), h11.ConnectionClosed)


async def test_http10_client_gets_a_close_delimited_stream(
    connect: Connect, autojump_clock: MockClock
) -> None:
    client = connect()
    await client.send(b"GET /events?count=2&interval=0 HTTP/1.0\r\n\r\n")
    assert ids(await client.messages()) == [1, 2]
    assert isinstance(await client.next_event(), h11.ConnectionClosed)


async def test_client_going_away_mid_stream_is_quiet(autojump_clock: MockClock) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(handle_connection, server_stream, OriginSettings())
        client = Client(client_stream)
        await client.get("/events")
        await client.message()
        await client_stream.aclose()
    assert trio.current_time() == 1  # noticed at the next event; no traceback


async def test_client_closing_between_requests(autojump_clock: MockClock) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    await client_stream.send_all(b"GET /status/200 HTTP/1.1\r\nHost: t\r\n\r\n")
    await client_stream.send_eof()
    await handle_connection(server_stream, OriginSettings())  # returns: EOF after the request
    assert b"status 200\n" in await client_stream.receive_some(65536)


# -- a real socket


async def test_serve_on_a_real_socket() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve, "127.0.0.1", 0, OriginSettings())
        assert isinstance(port, int) and port > 0
        client = Client(await trio.open_tcp_stream("127.0.0.1", port))
        response = await client.get("/events?count=3&interval=0")
        assert response.status_code == 200
        assert [m for _, m in await client.messages()] == [encode_event(n) for n in (1, 2, 3)]
        await client.stream.aclose()
        nursery.cancel_scope.cancel()
