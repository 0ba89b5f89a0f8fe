"""reset: decisions in pure code, virtual time through the proxy, real RSTs on loopback."""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio

from sseproxy import origin
from sseproxy.faults.base import Deliver, Piece, Reset
from sseproxy.faults.reset import ResetFault
from sseproxy.journal import Journal
from sseproxy.params import ParamError
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.server import listen, serve_proxy
from sseproxy.sse import Event
from tests.harness import memory_proxy, scenario_of


def make(bytes: int | None = None, events: int | None = None) -> ResetFault:
    return ResetFault({"bytes": bytes, "events": events}, random.Random(0))


def event(n: int) -> Piece:
    data = origin.encode_event(n)
    return Piece(data, True, Event("message", f'{{"n": {n}}}', str(n)))


# -- decisions -----------------------------------------------------------------------------


def test_resets_at_start_when_neither_count_is_given() -> None:
    fault = make()
    assert not fault.needs_events()
    assert fault.start(5.0) == [Reset("reset")]


@pytest.mark.parametrize(
    ("given", "detail"), [({"bytes": 0}, "after 0B"), ({"events": 0}, "after 0 events")]
)
def test_a_zero_count_resets_at_start(given: dict[str, int], detail: str) -> None:
    assert make(**given).start(0.0) == [Reset(detail)]


def test_bytes_splits_the_piece_that_crosses_the_count() -> None:
    fault = make(bytes=10)
    assert not fault.needs_events()
    assert fault.start(0.0) == []
    first, second = Piece(b"0123"), Piece(b"4567")
    assert fault.on_piece(first, 1.0) == [Deliver(first, 1.0)]
    assert fault.on_piece(second, 2.0) == [Deliver(second, 2.0)]
    assert fault.on_piece(Piece(b"89abcdef"), 3.0) == [
        Deliver(Piece(b"89"), 3.0),
        Reset("after 10B"),
    ]


def test_bytes_resets_right_after_a_piece_that_ends_on_the_count() -> None:
    fault = make(bytes=8)
    fault.on_piece(Piece(b"0123"), 0.0)
    exact = Piece(b"4567")
    assert fault.on_piece(exact, 1.0) == [Deliver(exact, 1.0), Reset("after 8B")]


def test_bytes_in_one_big_piece() -> None:
    assert make(bytes=4096).on_piece(Piece(b"x" * 10_000), 0.0) == [
        Deliver(Piece(b"x" * 4096), 0.0),
        Reset("after 4KiB"),
    ]


def test_events_counts_only_dispatched_events() -> None:
    fault = make(events=2)
    assert fault.needs_events()
    assert fault.start(0.0) == []
    comment = Piece(b": heartbeat\n\n", True, None)
    id_only = Piece(b"id: 9\n\n", True, None)
    raw_tail = Piece(b"data: unfinished")
    for piece in (comment, event(1), id_only, raw_tail, comment):
        assert fault.on_piece(piece, 1.0) == [Deliver(piece, 1.0)]
    assert fault.on_piece(event(2), 2.0) == [Deliver(event(2), 2.0), Reset("after 2 events")]


def test_check_refuses_bytes_and_events_together() -> None:
    with pytest.raises(ParamError) as caught:
        ResetFault.check({"bytes": 10, "events": 1})
    assert caught.value.field == "events"
    ResetFault.check({"bytes": 10, "events": None})
    ResetFault.check({"bytes": None, "events": 1})


def test_a_scenario_with_both_counts_is_refused() -> None:
    from sseproxy.errors import ScenarioError

    with pytest.raises(ScenarioError, match="`bytes` or `events`, not both"):
        scenario_of('[[faults]]\ntype = "reset"\nbytes = "1KiB"\nevents = 2\n')


# -- through the proxy, in virtual time ----------------------------------------------------

STEADY = origin.OriginSettings(interval=1.0, heartbeat=0)


async def test_after_cuts_the_client_at_exactly_that_time(autojump_clock: Any) -> None:
    async with memory_proxy('[[faults]]\ntype = "reset"\nafter = "5s"\n', STEADY) as mp:
        got = await mp.client().get("/events")
        assert got.status == 200
        assert (got.ending, got.ended_at) == ("closed", 5.0)
        # events 1..5 were due at 0..4; event 6 (due at 5) never made it
        assert got.body == b"".join(origin.encode_event(n) for n in range(1, 6))
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["reason"], closed["t"]) == ("proxy", "reset", 5.0)
        assert closed["detail"] == "reset"
        (fault,) = mp.journal.of_kind("fault")
        assert (fault["fault"], fault["action"], fault["t"]) == ("reset", "reset", 5.0)


async def test_events_lets_exactly_that_many_events_through(autojump_clock: Any) -> None:
    settings = origin.OriginSettings(interval=1.0, heartbeat=0.75, count=10)
    async with memory_proxy('[[faults]]\ntype = "reset"\nevents = 3\n', settings) as mp:
        got = await mp.client().get("/events")
        assert got.ending == "closed"
        assert got.ended_at == 2.0  # event 3 was sent at t=2
        heartbeat = origin.encode_heartbeat("comment", 0)  # at 0.75 and 1.5
        assert got.body == (
            origin.encode_event(1)
            + heartbeat
            + origin.encode_event(2)
            + heartbeat
            + origin.encode_event(3)
        )
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["reason"], closed["detail"]) == (
            "proxy",
            "reset",
            "after 3 events",
        )
        assert (closed["events_down"], closed["last_id"]) == (3, "3")


async def test_bytes_lets_exactly_that_many_bytes_through(autojump_clock: Any) -> None:
    async with memory_proxy('[[faults]]\ntype = "reset"\nbytes = "100B"\n', STEADY) as mp:
        got = await mp.client().get("/events")
        expected = b"".join(origin.encode_event(n) for n in range(1, 20))[:100]
        assert (got.body, got.ending) == (expected, "closed")
        (closed,) = await mp.journal.wait_for("closed")
        assert closed["bytes_down"] == 100


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
        proxy = Proxy(
            ProxySettings(Upstream("127.0.0.1", origin_port)),
            scenario_of(toml),
            Journal(keep=True),
        )
        await nursery.start(serve_proxy, proxy, listener)
        yield port
        nursery.cancel_scope.cancel()


async def read_until_the_end(port: int) -> tuple[bytes, str]:
    """GET /events on a plain socket; read until EOF ("eof") or ECONNRESET ("reset")."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        await sock.connect(("127.0.0.1", port))
        await sock.send(REQUEST)
        received = b""
        while True:
            try:
                data = await sock.recv(65536)
            except ConnectionResetError as error:
                assert error.errno == errno.ECONNRESET
                return received, "reset"
            if not data:
                return received, "eof"
            received += data


async def test_reset_sends_a_real_rst() -> None:
    with trio.fail_after(5):
        async with loopback_proxy('[[faults]]\ntype = "reset"\nevents = 1\n', QUIET) as port:
            received, ending = await read_until_the_end(port)
    assert ending == "reset"
    assert received.startswith(b"HTTP/1.1 200 ")


async def test_idle_timeout_with_reset_sends_a_real_rst() -> None:
    toml = '[[faults]]\ntype = "idle-timeout"\ntimeout = "200ms"\naction = "reset"\n'
    with trio.fail_after(5):
        async with loopback_proxy(toml, QUIET) as port:
            started = trio.current_time()
            _, ending = await read_until_the_end(port)
            waited = trio.current_time() - started
    assert ending == "reset"
    assert waited >= 0.2


async def test_idle_timeout_with_close_sends_a_fin_not_an_rst() -> None:
    toml = '[[faults]]\ntype = "idle-timeout"\ntimeout = "200ms"\naction = "close"\n'
    with trio.fail_after(5):
        async with loopback_proxy(toml, QUIET) as port:
            received, ending = await read_until_the_end(port)
    assert ending == "eof"
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"transfer-encoding: chunked" in head.lower()
    # the first event went through as one chunk, and no terminating chunk followed
    assert body == b"%x\r\n%s\r\n" % (len(origin.encode_event(1)), origin.encode_event(1))


def test_one_event_is_said_in_the_singular() -> None:
    fault = ResetFault({"bytes": None, "events": 1}, random.Random(0))
    assert fault.detail == "after 1 event"
