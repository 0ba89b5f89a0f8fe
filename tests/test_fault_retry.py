"""retry: byte-exact rewrites in pure code, then what a client receives through the proxy."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from sseproxy import origin
from sseproxy.errors import ScenarioError
from sseproxy.faults.base import Deliver, Piece
from sseproxy.faults.retry import Retry
from sseproxy.sse import Framer
from sseproxy.testing import memory_proxy as upstream_proxy
from tests.harness import memory_proxy, scenario_of
from tests.testing.clients import get_events


def blocks(raw: bytes) -> list[Piece]:
    """The pieces a framed fault sees: each block, then an unfinished last one unframed."""
    framer = Framer()
    pieces = [Piece(block.raw, True, block.event) for block in framer.feed(raw)]
    rest = framer.close()
    return [*pieces, Piece(rest)] if rest else pieces


def rewrite(raw: bytes, **settings: Any) -> bytes:
    """Run a whole stream through a fresh fault; check what it says to the framer too."""
    fault = Retry({"set": None, "add": False, "strip": False, **settings}, random.Random(0))
    assert fault.needs_events()
    out = []
    for piece in blocks(raw):
        (action,) = fault.on_piece(piece, 1.0)
        assert isinstance(action, Deliver) and action.at == 1.0
        assert action.piece.framed == piece.framed and action.piece.event == piece.event
        if action.piece.data == piece.data:
            assert action.piece is piece
        out.append(action.piece.data)
    return b"".join(out)


def retries(raw: bytes) -> list[int | None]:
    return [block.retry for block in Framer().feed(raw)]


STREAM = b"retry: 5000\n\n" + origin.encode_event(1) + b"retry:200\r\ndata: x\r\nretry\r\n\r\n"


def test_set_replaces_every_retry_value_and_nothing_else() -> None:
    out = rewrite(STREAM, set=1000)
    expected = b"retry: 1000\n\n" + origin.encode_event(1)
    assert out == expected + b"retry:1000\r\ndata: x\r\nretry: 1000\r\n\r\n"
    assert retries(out) == [1000, None, 1000]


def test_strip_removes_retry_lines_keeping_the_blocks() -> None:
    out = rewrite(STREAM, strip=True)
    assert out == b"\n" + origin.encode_event(1) + b"data: x\r\n\r\n"
    assert retries(out) == [None, None, None]


def test_add_puts_one_into_the_first_block_only() -> None:
    stream = origin.encode_event(1) + origin.encode_event(2)
    out = rewrite(stream, set=250, add=True)
    assert out == origin.encode_event(1)[:-1] + b"retry: 250\n\n" + origin.encode_event(2)
    assert retries(out) == [250, None]
    assert rewrite(b"\xef\xbb\xbf: hi\r\r", set=0, add=True) == b"\xef\xbb\xbf: hi\rretry: 0\r\r"
    assert rewrite(b"\n", set=3, add=True) == b"retry: 3\n\n"
    # A first block that has one gets it replaced, not a second one.
    assert rewrite(STREAM, set=5000, add=True) == rewrite(STREAM, set=5000)


def test_bom_and_comments_are_not_retry_lines() -> None:
    raw = b"\xef\xbb\xbfretry: 9\n: retry: 9\nretry-x: 9\n\n"
    assert rewrite(raw, set=1) == b"\xef\xbb\xbfretry: 1\n: retry: 9\nretry-x: 9\n\n"


def test_trailing_incomplete_line_passes() -> None:
    """A line whose ending never came never takes effect: nothing to rewrite."""
    fault = Retry({"set": 1, "add": False, "strip": False}, random.Random(0))
    rest = Piece(b"retry: 5")
    assert fault.on_piece(rest, 2.0) == [Deliver(rest, 2.0)]


def reconnection_time(raw: bytes) -> int | None:
    """What a client's reconnection time is after reading `raw` (the spec: per line)."""
    framer = Framer()
    framer.feed(raw)
    return framer.retry


@pytest.mark.parametrize(
    ("raw", "was", "rewritten"),
    [
        (b"retry: 0\n", 0, b"retry: 1000\n"),  # no blank line follows, and it counts
        (b"retry: 1000\ndata: a\n\nretry:0500\n", 500, b"retry: 1000\ndata: a\n\nretry:1000\n"),
        (b"\xef\xbb\xbfretry: 0\r\n", 0, b"\xef\xbb\xbfretry: 1000\r\n"),
    ],
)
def test_retry_lines_of_an_unfinished_last_block_are_rewritten(
    raw: bytes, was: int, rewritten: bytes
) -> None:
    assert reconnection_time(raw) == was
    assert rewrite(raw, set=1000) == rewritten
    assert reconnection_time(rewritten) == 1000
    assert reconnection_time(rewrite(raw, strip=True)) is None


def test_a_piece_that_continues_a_cut_line_is_not_rewritten() -> None:
    """An event that outgrew the framing bound arrives in unframed pieces cut anywhere:
    a piece that starts inside a line holds no line start to rewrite."""
    fault = Retry({"set": 1, "add": False, "strip": False}, random.Random(0))
    head, tail = Piece(b"data: x"), Piece(b"retry: 5\n\n")
    assert fault.on_piece(head, 1.0) == [Deliver(head, 1.0)]
    assert fault.on_piece(tail, 1.0) == [Deliver(tail, 1.0)]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ("", "field 'set': give exactly one of `set` and `strip = true`"),
        ("set = 1\nstrip = true", "field 'set': give exactly one of `set` and `strip = true`"),
        ("strip = true\nadd = true", "field 'add': `add` needs `set`: the value to add"),
        ("set = -1", "field 'set': -1 is below the minimum"),
    ],
)
def test_refused_settings(fields: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_of(f'[[faults]]\ntype = "retry"\n{fields}\n')


async def test_reconnect_storm_retry_zero(autojump_clock: MockClock) -> None:
    scenario = '[[faults]]\ntype = "retry"\nset = 0\n'
    settings = origin.OriginSettings(interval=10, heartbeat=0, count=2, retry=5000)
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events")
        assert got.body == b"retry: 0\n\n" + origin.encode_event(1) + origin.encode_event(2)
        assert (got.ending, got.ended_at) == ("end", 10.0)


async def test_added_retry_reaches_the_client_on_time(autojump_clock: MockClock) -> None:
    scenario = '[[faults]]\ntype = "retry"\nset = 100\nadd = true\n'
    settings = origin.OriginSettings(interval=10, heartbeat=0, count=2)
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events")
        first = origin.encode_event(1)[:-1] + b"retry: 100\n\n"
        assert got.chunks == [(0.0, first), (10.0, origin.encode_event(2))]


async def test_a_retry_line_at_the_end_of_the_body_is_rewritten(autojump_clock: MockClock) -> None:
    """The upstream ends with `retry: 0\n` and no blank line: the client still takes it."""
    import trio
    import trio.testing

    async def serve(stream: trio.abc.Stream) -> None:
        await stream.receive_some()
        body = b"data: a\n\nretry: 0\n"
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        chunked = b"transfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        await stream.send_all(head + chunked)
        await trio.sleep_forever()

    async def upstream() -> trio.abc.Stream:
        proxy_end, upstream_end = trio.testing.memory_stream_pair()
        mp.nursery.start_soon(serve, upstream_end)
        return proxy_end

    async with memory_proxy('[[faults]]\ntype = "retry"\nset = 3000\n') as mp:
        mp.proxy.connector = upstream
        got = await mp.client().get("/events")
        assert (got.status, got.body) == (200, b"data: a\n\nretry: 3000\n")
        assert reconnection_time(got.body) == 3000


@pytest.mark.parametrize("value", [5, 123456789])  # shorter and longer than the 1000 sent
async def test_a_content_length_body_is_reframed_when_retry_changes_its_length(
    autojump_clock: object, value: int
) -> None:
    body = b"retry: 1000\ndata: a\n\n" * 3

    async def server(stream: trio.abc.Stream) -> None:
        await stream.receive_some()
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
        await stream.send_all(head + b"content-length: %d\r\n\r\n" % len(body) + body)

    scenario = f"[[faults]]\ntype = 'retry'\nset = {value}\n"
    async with upstream_proxy(server, scenario) as proxy:
        got = await get_events(await proxy.connect())
        (ended,) = await proxy.wait_for("ended")
    assert got.body == (b"retry: %d\ndata: a\n\n" % value) * 3
    assert ended["reason"] == "upstream-end"
