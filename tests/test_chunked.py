"""The fast chunked reader (`sseproxy.chunked`) against h11, byte for byte.

Both readers get the same wire bytes (a response head, then a chunked body, well formed
or broken) cut into the same reads, one byte at a time too; they must hand on the same
bytes per read and end the same way (the end, `Truncated` or `Garbled`). Then the same
through a memory proxy (the fast path and the fault chain) and through `sseproxy run`
with curl on real sockets.
"""

from __future__ import annotations

import itertools
import shutil
import socket
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from unittest import mock

import h11
import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sseproxy.chunked import ChunkedBody, ChunkError, Dechunker, is_chunked
from sseproxy.connection import Garbled, Truncated
from sseproxy.http import _next_event, _read_body
from sseproxy.testing import memory_proxy
from tests.harness import Client
from tests.test_e2e import CURL_MAX_TIME, proxy_port, sseproxy

T = TypeVar("T")

HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
LIMIT = 200
"""max_incomplete_event_size for both readers: small, so that long lines hit it."""


# -- running both readers on the same reads ----------------------------------------------


class Reads(trio.abc.ReceiveStream):
    """A stream that returns the given reads, then b"" (the upstream's close)."""

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = list(reads)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return self.reads.pop(0) if self.reads else b""

    async def aclose(self) -> None:
        pass


def finish(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never blocks (it reads from `Reads`) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the reader blocked")


def upstream_conn() -> h11.Connection:
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=LIMIT)
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "t")]))
    conn.send(h11.EndOfMessage())
    return conn


def relay(reads: list[bytes], fast: bool) -> tuple[list[bytes], str]:
    """What one reader hands on per call, and how the body ended."""
    stream = Reads(reads)
    conn = upstream_conn()
    response = finish(_next_event(conn, stream))
    assert type(response) is h11.Response
    assert is_chunked(b"GET", response)
    if fast:
        body = ChunkedBody(stream, *conn.trailing_data, LIMIT)

        def read() -> Coroutine[Any, Any, bytes]:
            return body.read()
    else:

        def read() -> Coroutine[Any, Any, bytes]:
            return _read_body(conn, stream)

    out: list[bytes] = []
    for _ in range(100_000):
        try:
            data = finish(read())
        except Truncated:
            return out, "truncated"
        except Garbled:
            return out, "garbled"
        if not data:
            return out, "end"
        out.append(data)
    raise AssertionError("no end")


def both(reads: list[bytes]) -> tuple[list[bytes], str]:
    fast = relay(reads, fast=True)
    assert fast == relay(reads, fast=False)
    return fast


# -- generating bodies ------------------------------------------------------------------

EXTENSIONS = [b"", b";", b";a=b", b';name="v; x"', b"; x", b";a\rb", b";\t"]
TRAILERS = [b"", b"x-sum: abc\r\n", b"a: 1\r\nb:\r\n  folded\r\n", b"k: v\n"]
AFTER = [b"", b"GET /smuggled HTTP/1.1\r\nhost: t\r\n\r\n", b"5\r\nextra\r\n0\r\n\r\n"]


@st.composite
def size_lines(draw: st.DrawFn, size: int) -> bytes:
    digits = format(size, draw(st.sampled_from(["x", "X"])))
    digits = digits.rjust(draw(st.integers(len(digits), 20)), "0")
    anything = st.binary(max_size=40).map(lambda b: b";" + b.replace(b"\n", b""))
    extension = draw(st.sampled_from(EXTENSIONS) | anything)
    spaces = draw(st.sampled_from([b"", b" ", b"\t \t"]))
    return digits.encode() + extension + spaces + b"\r\n"


@st.composite
def bodies(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """(the wire bytes of a chunked body, its payload)."""
    chunks = draw(st.lists(st.binary(min_size=1, max_size=300), max_size=8))
    wire = [draw(size_lines(len(data))) + data + b"\r\n" for data in chunks]
    wire.append(draw(size_lines(0)))
    wire.append(draw(st.sampled_from(TRAILERS)) + draw(st.sampled_from([b"\r\n", b"\n"])))
    wire.append(draw(st.sampled_from(AFTER)))
    return b"".join(wire), b"".join(chunks)


@st.composite
def splits(draw: st.DrawFn, data: bytes, bytewise: bool = True) -> list[bytes]:
    """`data` cut into reads: at random points, or one byte at a time."""
    if bytewise and draw(st.booleans()):
        return [data[i : i + 1] for i in range(len(data))]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=40)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


@st.composite
def broken(draw: st.DrawFn) -> bytes:
    """A body damaged at one place: a byte changed, inserted or removed, or cut short."""
    wire, _ = draw(bodies())
    at = draw(st.integers(0, len(wire)))
    how = draw(st.sampled_from(["change", "insert", "delete", "cut", "long-line", "zeros"]))
    byte = bytes([draw(st.sampled_from(b"\r\n0;9aZ \t\x00") | st.integers(0, 255))])
    if how == "change":
        return wire[:at] + byte + wire[at + 1 :]
    if how == "insert":
        return wire[:at] + byte + wire[at:]
    if how == "delete":
        return wire[:at] + wire[at + 1 :]
    if how == "zeros":  # a chunk size of more than 20 digits, or just 20
        return wire[:at] + b"0" * draw(st.integers(19, 21)) + wire[at:]
    if how == "long-line":
        return wire[:at] + b"1;" + b"x" * draw(st.integers(LIMIT - 10, LIMIT + 10)) + wire[at:]
    return wire[:at]


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.data())
def test_well_formed_bodies_come_out_the_same_from_both_readers(data: st.DataObject) -> None:
    wire, payload = data.draw(bodies())
    out, ending = both(data.draw(splits(HEAD + wire)))
    assert ending == "end"
    assert b"".join(out) == payload


@FUZZ
@given(st.data())
def test_broken_bodies_are_refused_the_same_way_by_both_readers(data: st.DataObject) -> None:
    wire = data.draw(broken())
    both(data.draw(splits(HEAD + wire)))


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_arbitrary_bytes_after_the_head_are_read_the_same_way(data: st.DataObject) -> None:
    wire = data.draw(
        st.binary(max_size=60)
        | st.lists(
            st.sampled_from(
                [b"1", b"0", b"a", b";", b"\r\n", b"\r", b"\n", b"x", b" ", b"z: 1", b"f" * 21]
            )
        ).map(b"".join)
    )
    both(data.draw(splits(HEAD + wire)))


# -- what h11 does that the fast reader relies on (fails loudly if an upgrade changes it) -


@pytest.mark.parametrize("closed", [False, True])
def test_h11_keeps_the_bytes_after_a_response_head_as_its_trailing_data(closed: bool) -> None:
    body = b"5\r\nhello\r\n0\r\n\r\n"
    conn = upstream_conn()
    conn.receive_data(HEAD + body)
    if closed:
        conn.receive_data(b"")
    assert type(conn.next_event()) is h11.Response
    assert conn.trailing_data == (body, closed)
    stream = Reads([])
    assert finish(ChunkedBody(stream, *conn.trailing_data, LIMIT).read()) == b"hello"


@pytest.mark.parametrize("method", [b"GET", b"HEAD", b"POST", b"CONNECT"])
@pytest.mark.parametrize("status", [200, 201, 204, 304, 404])
@pytest.mark.parametrize("framing", ["chunked", "length", "close"])
def test_is_chunked_agrees_with_h11(method: bytes, status: int, framing: str) -> None:
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method=method, target="/", headers=[("host", "t")]))
    conn.send(h11.EndOfMessage())
    headers = {
        "chunked": b"transfer-encoding: chunked\r\n",
        "length": b"content-length: 5\r\n",
        "close": b"",
    }[framing]
    conn.receive_data(b"HTTP/1.1 %d X\r\n%s\r\n" % (status, headers))
    response = conn.next_event()
    assert type(response) is h11.Response
    h11_reads_chunks = type(conn._reader).__name__ == "ChunkedReader"
    assert is_chunked(method, response) == h11_reads_chunks


# -- the sans-I/O decoder -----------------------------------------------------------------


def test_a_read_of_many_chunks_is_one_bytes_object() -> None:
    dechunker = Dechunker(LIMIT)
    wire = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in [b"data: a\n\n"] * 100)
    assert dechunker.feed(wire) == b"data: a\n\n" * 100
    assert dechunker.feed(b"0\r\n\r\nGET / HTTP/1.1\r\n\r\n") == b""
    assert dechunker.done
    assert dechunker.feed(b"more") == b""
    dechunker.eof()


def test_the_data_before_a_fault_goes_on_and_the_fault_is_raised_next() -> None:
    dechunker = Dechunker(LIMIT)
    assert dechunker.feed(b"2\r\nok\r\nzz\r\n") == b"ok"
    with pytest.raises(ChunkError, match="illegal chunk header"):
        dechunker.feed(b"")
    with pytest.raises(ChunkError, match="illegal chunk header"):
        dechunker.eof()


@pytest.mark.parametrize(
    "wire",
    [
        b"+1\r\na\r\n",
        b"0x1\r\na\r\n",
        b"1_0\r\n",
        b" 1\r\n",
        b"1 ;a\r\n",
        b"1;a\nb\r\n",
        b"f" * 21 + b"\r\n",
        b"1\r\nab\r\n",
        b"1\r\na\n\r\n",
        b"0\r\nno colon\r\n\r\n",
    ],
)
def test_malformed_framing_is_refused(wire: bytes) -> None:
    dechunker = Dechunker(LIMIT)
    with pytest.raises(ChunkError):
        dechunker.feed(wire)  # with a chunk's data first: it is handed on, then the error
        dechunker.feed(b"")


def test_a_chunk_size_line_may_not_grow_past_the_limit() -> None:
    dechunker = Dechunker(LIMIT)
    assert dechunker.feed(b"1;" + b"x" * (LIMIT - 2)) == b""
    with pytest.raises(ChunkError, match="too long"):
        dechunker.feed(b"x")


# -- through the proxy -------------------------------------------------------------------

EVENTS = [b"id: %d\ndata: %s\n\n" % (n, b"x" * (n % 90)) for n in range(300)]
WIRE = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in EVENTS) + b"0\r\n\r\n"


def serving(reads: list[bytes]) -> Any:
    async def serve(stream: trio.abc.Stream) -> None:
        seen = b""
        while b"\r\n\r\n" not in seen:
            seen += await stream.receive_some(65536)
        for read in reads:
            await stream.send_all(read)
            await trio.lowlevel.checkpoint()

    return serve


SCENARIOS: dict[str, tuple[str | None, bool]] = {
    "fast path": (None, False),
    "live link": (None, True),
    "fault chain": (
        '[[faults]]\ntype = "idle-timeout"\ntimeout = "1h"\ncounts = "events"\n',
        False,
    ),
}


@pytest.mark.parametrize("path", sorted(SCENARIOS))
@settings(max_examples=10, deadline=None)
@given(reads=splits(HEAD + WIRE + AFTER[1], bytewise=False))
def test_the_proxy_relays_a_chunked_body_exactly(path: str, reads: list[bytes]) -> None:
    scenario, live = SCENARIOS[path]

    async def main() -> None:
        spy = mock.patch.object(Dechunker, "feed", autospec=True, side_effect=Dechunker.feed)
        with spy as feed:
            await relayed()
        assert feed.call_count > 0  # the fast reader, not h11, read the body

    async def relayed() -> None:
        async with memory_proxy(serving(reads), scenario, live=live) as mp:
            client = Client(await mp.connect())
            got = await client.get("/events")
            assert (got.status, got.ending) == (200, "end")
            assert got.body == b"".join(EVENTS)
            (ended,) = await mp.wait_for("ended")
            assert (ended["by"], ended["reason"]) == ("upstream", "upstream-end")

    trio.run(main)


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        (b"5\r\nhello\r\nzz\r\n", "upstream-protocol-error"),
        (b"5\r\nhello\r\n3\r\nab", "upstream-closed"),
        (b"5\r\nhello\r\n0\r\nbad trailer\r\n\r\n", "upstream-protocol-error"),
    ],
)
@pytest.mark.parametrize("live", [False, True])
async def test_a_broken_body_is_cut_and_blamed_on_the_upstream(
    autojump_clock: trio.testing.MockClock, tail: bytes, reason: str, live: bool
) -> None:
    async with memory_proxy(serving([HEAD + tail]), live=live) as mp:
        client = Client(await mp.connect())
        got = await client.get("/events")
        assert got.status == 200
        assert got.ending == "closed"
        assert got.body.startswith(b"hello") and b"zz" not in got.body
        (ended,) = await mp.wait_for("ended")
        assert (ended["by"], ended["reason"]) == ("upstream", reason)


# -- real sockets, curl --------------------------------------------------------------------


@contextmanager
def raw_upstream(response: bytes) -> Iterator[int]:
    """A socket server that answers every request with `response`, then closes."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)

    def serve() -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        with conn:
            seen = b""
            while b"\r\n\r\n" not in seen:
                part = conn.recv(65536)
                if not part:
                    return
                seen += part
            conn.sendall(response)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(timeout=20)


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_gets_the_exact_bytes_over_real_sockets() -> None:
    with (
        raw_upstream(HEAD + WIRE + AFTER[1]) as upstream,
        sseproxy(
            "run", "--listen", "127.0.0.1:0", "--upstream", f"http://127.0.0.1:{upstream}"
        ) as proxy,
    ):
        port = proxy_port(proxy)
        curl = subprocess.run(
            ["curl", "-sN", "--max-time", CURL_MAX_TIME, f"http://127.0.0.1:{port}/events"],
            capture_output=True,
            timeout=30,
        )
    assert curl.returncode == 0, curl.stderr
    assert curl.stdout == b"".join(EVENTS)
