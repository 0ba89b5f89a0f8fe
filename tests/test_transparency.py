"""Transparency: whatever the upstream sends, however it is cut, the client gets exactly that.

Properties over any body (SSE-shaped bytes, and arbitrary binary), any split on the
upstream side and any receive sizes on the client side, in HTTP and TCP modes, with and
without the link framing SSE blocks, and with a latency fault reordering nothing.
Each example is one `trio.run` in virtual time (an autojump `MockClock`).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import h11
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from sseproxy.faults.base import draws_for
from sseproxy.journal import Journal, Record
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.sse import Framer
from tests.harness import scenario_of

EXAMPLES = settings(max_examples=50, deadline=None)

# -- strategies ----------------------------------------------------------------------------

_TEXT = st.text(
    st.characters(blacklist_characters="\r\n", categories=("L", "N", "P", "S", "Zs", "Cc")),
    max_size=8,
)
_LINES = st.one_of(
    _TEXT.map(lambda text: f"data: {text}"),
    _TEXT.map(lambda text: f"data:{text}"),
    st.just("data"),
    st.integers(0, 99).map(lambda n: f"id: {n}"),
    _TEXT.map(lambda text: f"event: {text}"),
    _TEXT.map(lambda text: f":{text}"),
    st.sampled_from(["retry: 1000", "retry: x", "", "", ""]),
)
_ENDINGS = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def sse_bodies(draw: st.DrawFn) -> bytes:
    """Event-stream bytes: fields, comments and blank lines with mixed line endings."""
    lines = draw(st.lists(st.tuples(_LINES, _ENDINGS), max_size=20))
    body = "".join(line + ending for line, ending in lines)
    if draw(st.booleans()):
        body += draw(_TEXT)  # an unterminated last line
    bom = "\ufeff" if draw(st.booleans()) else ""
    return (bom + body).encode()


BODIES = st.one_of(sse_bodies(), st.binary(max_size=256))


@st.composite
def split(draw: st.DrawFn, body: bytes) -> list[bytes]:
    """`body` cut at arbitrary places into non-empty pieces."""
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, len(body) - 1)), max_size=12))))
    edges = [0, *(cut for cut in cuts if 0 < cut < len(body)), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges) if b > a]


@st.composite
def split_bodies(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    body = draw(BODIES)
    return body, draw(split(body))


RECEIVE_SIZES = st.lists(st.integers(1, 64), min_size=1, max_size=8)


# -- running a proxy in virtual time -------------------------------------------------------

Upstreams = Callable[[trio.abc.Stream], Awaitable[None]]


def run_virtual(main: Callable[[], Awaitable[Any]]) -> Any:
    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


@dataclass
class Rig:
    proxy: Proxy
    client: trio.abc.Stream


async def with_proxy(
    toml: str,
    mode: str,
    upstream: Upstreams,
    journal: Journal,
    test: Callable[[Rig], Awaitable[Any]],
) -> Any:
    """Run `test` against a proxy whose upstream connections are served by `upstream`."""
    with trio.fail_after(3600):  # virtual: a hang fails at once instead of stalling
        async with trio.open_nursery() as nursery:

            async def connect() -> trio.abc.Stream:
                proxy_end, upstream_end = trio.testing.memory_stream_pair()
                nursery.start_soon(upstream, upstream_end)
                return proxy_end

            proxy = Proxy(
                ProxySettings(Upstream("127.0.0.1", 9), mode),  # type: ignore[arg-type]
                scenario_of(toml),
                journal,
                seed=7,
                connector=connect,
            )
            client_end, proxy_end = trio.testing.memory_stream_pair()
            nursery.start_soon(proxy.handle, proxy_end, "127.0.0.1:50000")
            result = await test(Rig(proxy, client_end))
            nursery.cancel_scope.cancel()
            return result


async def receive(stream: trio.abc.ReceiveStream, sizes: Sequence[int], turn: int) -> bytes:
    return bytes(await stream.receive_some(sizes[turn % len(sizes)]))


# -- HTTP mode -----------------------------------------------------------------------------


def chunked_upstream(pieces: Sequence[bytes]) -> Upstreams:
    """Answers one request with `Transfer-Encoding: chunked`, one chunk per piece."""

    async def serve(stream: trio.abc.Stream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some(65536)
            assert data, "the proxy closed before sending its request"
            head += data
        assert head.startswith(b"GET /stream HTTP/1.1\r\n")
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        for piece in pieces:
            await trio.sleep(0.25)  # each piece reaches the proxy in a read of its own
            await stream.send_all(b"%x\r\n%s\r\n" % (len(piece), piece))
        await stream.send_all(b"0\r\n\r\n")
        while await stream.receive_some(65536):  # until the proxy closes its end
            pass

    return serve


async def fetch(rig: Rig, sizes: Sequence[int]) -> bytes:
    """GET through the proxy, reading with the given receive sizes; the decoded body."""
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(method="GET", target="/stream", headers=[("host", "test")])
    await rig.client.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
    body, turn = b"", 0
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await receive(rig.client, sizes, turn))
            turn += 1
        elif isinstance(event, h11.Response):
            assert event.status_code == 200
        elif isinstance(event, h11.Data):
            body += event.data
        else:
            assert isinstance(event, h11.EndOfMessage), event
            return body


def http_body_through_proxy(
    toml: str, pieces: list[bytes], sizes: list[int], *, keep: bool
) -> tuple[bytes, Record | None]:
    """The body the client decoded, and the journal's closed record (when `keep`)."""

    async def main() -> tuple[bytes, Record | None]:
        journal = Journal(keep=keep)  # keep=True also makes the tally frame SSE

        async def test(rig: Rig) -> tuple[bytes, Record | None]:
            body = await fetch(rig, sizes)
            await rig.client.aclose()
            if not journal.keep:
                return body, None
            (closed,) = await journal.wait_for("closed")
            return body, closed

        result: tuple[bytes, Record | None] = await with_proxy(
            toml, "http", chunked_upstream(pieces), journal, test
        )
        return result

    result: tuple[bytes, Record | None] = run_virtual(main)
    return result


@EXAMPLES
@given(split_bodies(), RECEIVE_SIZES)
def test_http_without_faults_relays_the_body_exactly(
    body_pieces: tuple[bytes, list[bytes]], sizes: list[int]
) -> None:
    body, pieces = body_pieces
    got, _ = http_body_through_proxy("", pieces, sizes, keep=False)
    assert got == body


FRAMING = '[[faults]]\ntype = "idle-timeout"\ntimeout = "1h"\ncounts = "events"\n'


@EXAMPLES
@given(split_bodies(), RECEIVE_SIZES)
def test_http_with_framing_relays_the_body_exactly(
    body_pieces: tuple[bytes, list[bytes]], sizes: list[int]
) -> None:
    body, pieces = body_pieces
    got, closed = http_body_through_proxy(FRAMING, pieces, sizes, keep=True)
    assert got == body
    # the journal's tally framed the same bytes, however they were cut
    framer = Framer()
    events = sum(1 for block in framer.feed(body) if block.event is not None)
    assert closed is not None
    assert closed["bytes_down"] == len(body)
    assert closed["events_down"] == events
    assert closed["reason"] == "client-closed"


def test_the_framing_scenario_does_frame() -> None:
    """The property above is about framing only if this fault makes the link frame."""
    (spec,) = scenario_of(FRAMING).faults
    fault = spec.fault_class(spec.settings, draws_for(spec.fault_class, "0"))
    assert fault.needs_events()


# -- TCP mode ------------------------------------------------------------------------------


def echo_upstream(sizes: Sequence[int], received: list[bytes]) -> Upstreams:
    """Reads to EOF (the client's half-close), echoes in pieces of `sizes`, then closes."""

    async def serve(stream: trio.abc.Stream) -> None:
        data = b""
        while chunk := await stream.receive_some(65536):
            data += chunk
        received.append(data)
        turn = 0
        while data:
            await trio.sleep(0.25)
            size = sizes[turn % len(sizes)]
            await stream.send_all(data[:size])
            data, turn = data[size:], turn + 1
        await stream.aclose()

    return serve


def tcp_round_trip(
    toml: str, pieces: list[bytes], upstream_sizes: list[int], sizes: list[int]
) -> tuple[bytes, bytes, Record]:
    """(what the upstream got, what the client got back, the journal's closed record).

    The closed record also carries `faults`: the fault names of each "faults" record.
    """
    received: list[bytes] = []

    async def main() -> tuple[bytes, Record]:
        journal = Journal(keep=True)

        async def test(rig: Rig) -> tuple[bytes, Record]:
            for piece in pieces:
                await rig.client.send_all(piece)
                await trio.sleep(0.25)
            assert isinstance(rig.client, trio.abc.HalfCloseableStream)
            await rig.client.send_eof()
            echoed, turn = b"", 0
            while chunk := await receive(rig.client, sizes, turn):
                echoed += chunk
                turn += 1
            (closed,) = await journal.wait_for("closed")
            faults = [r["faults"] for r in journal.of_kind("faults")]
            return echoed, {**closed, "faults": faults}

        result: tuple[bytes, Record] = await with_proxy(
            toml, "tcp", echo_upstream(upstream_sizes, received), journal, test
        )
        return result

    echoed, closed = run_virtual(main)
    (upstream_got,) = received
    return upstream_got, echoed, closed


@EXAMPLES
@given(split_bodies(), RECEIVE_SIZES, RECEIVE_SIZES)
def test_tcp_without_faults_is_byte_exact_both_ways(
    body_pieces: tuple[bytes, list[bytes]], upstream_sizes: list[int], sizes: list[int]
) -> None:
    body, pieces = body_pieces
    upstream_got, echoed, closed = tcp_round_trip("", pieces, upstream_sizes, sizes)
    assert upstream_got == body
    assert echoed == body
    assert (closed["bytes_up"], closed["bytes_down"]) == (len(body), len(body))
    assert closed["faults"] == []


# two latency faults in a row, jittered more than the pieces are apart: order is the link's
LATENCY_BOTH_WAYS = """
[[faults]]
type = "latency"
delay = "300ms"
jitter = "250ms"
direction = "both"

[[faults]]
type = "latency"
name = "more-latency"
delay = "100ms"
jitter = "100ms"
direction = "both"
"""


@EXAMPLES
@given(split_bodies(), RECEIVE_SIZES, RECEIVE_SIZES)
def test_tcp_with_latency_is_byte_exact_both_ways(
    body_pieces: tuple[bytes, list[bytes]], upstream_sizes: list[int], sizes: list[int]
) -> None:
    body, pieces = body_pieces
    upstream_got, echoed, closed = tcp_round_trip(LATENCY_BOTH_WAYS, pieces, upstream_sizes, sizes)
    assert upstream_got == body
    assert echoed == body
    assert (closed["bytes_up"], closed["bytes_down"]) == (len(body), len(body))
    assert closed["faults"] == [["latency", "more-latency"]]
