"""TCP mode: exact bytes both ways, half-close in each direction, resets, refusals, journal.

Each relay test runs twice: on memory streams (`Proxy(connector=...)`) and on loopback
sockets (`serve_proxy` in front of a real listener), with the same scripted upstream.
"""

from __future__ import annotations

import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pytest
import trio
import trio.testing

from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.server import listen, serve_proxy
from sseproxy.transport import UpstreamError
from tests.harness import scenario_of

Record = dict[str, Any]
Handler = Callable[[trio.abc.Stream], Awaitable[None]]

BOUND = 10.0  # seconds any test here may take before it is a failure
MEMORY_UPSTREAM = Upstream("127.0.0.1", 9)
RESET_AFTER_5_BYTES = '[[faults]]\ntype = "reset"\nbytes = "5B"\n'


@dataclass
class TcpRig:
    proxy: Proxy
    connect: Callable[[], Awaitable[trio.abc.HalfCloseableStream]]

    @property
    def journal(self) -> Journal:
        return self.proxy.journal

    async def closed(self) -> Record:
        (closed,) = await self.journal.wait_for("closed")
        return closed


@asynccontextmanager
async def memory_rig(upstream: Handler, scenario: str = "") -> AsyncIterator[TcpRig]:
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:

            async def connector() -> trio.abc.Stream:
                proxy_end, upstream_end = trio.testing.memory_stream_pair()
                nursery.start_soon(upstream, upstream_end)
                return proxy_end

            proxy = Proxy(
                ProxySettings(MEMORY_UPSTREAM, mode="tcp"),
                scenario_of(scenario),
                Journal(keep=True),
                seed=1,
                connector=connector,
            )

            async def connect() -> trio.abc.HalfCloseableStream:
                client_end, proxy_end = trio.testing.memory_stream_pair()
                nursery.start_soon(proxy.handle, proxy_end, "127.0.0.1:50000")
                return client_end

            yield TcpRig(proxy, connect)
            nursery.cancel_scope.cancel()


@asynccontextmanager
async def socket_rig(
    upstream: Handler, scenario: str = "", *, port: int | None = None
) -> AsyncIterator[TcpRig]:
    """The proxy on loopback before `upstream` on its own listener (or before `port`)."""
    with trio.fail_after(BOUND):
        async with trio.open_nursery() as nursery:
            if port is None:
                serve = functools.partial(trio.serve_tcp, upstream, 0, host="127.0.0.1")
                listeners = await nursery.start(serve)
                port = listeners[0].socket.getsockname()[1]
            proxy = Proxy(
                ProxySettings(Upstream("127.0.0.1", port), mode="tcp"),
                scenario_of(scenario),
                Journal(keep=True),
                seed=1,
            )
            listener = await listen("127.0.0.1", 0)
            proxy_port = listener.socket.getsockname()[1]
            await nursery.start(serve_proxy, proxy, listener)

            async def connect() -> trio.abc.HalfCloseableStream:
                return await trio.open_tcp_stream("127.0.0.1", proxy_port)

            yield TcpRig(proxy, connect)
            nursery.cancel_scope.cancel()


RigFactory = Callable[[Handler], AbstractAsyncContextManager[TcpRig]]
RIGS: dict[str, RigFactory] = {"memory": memory_rig, "socket": socket_rig}
where = pytest.mark.parametrize("rig_of", RIGS.values(), ids=RIGS.keys())


async def read_to_eof(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    while more := await stream.receive_some(65536):
        data += more
    return data


# -- scripted upstreams ------------------------------------------------------------------


async def echo(stream: trio.abc.Stream) -> None:
    """Send every byte back; pass the client's FIN back as ours."""
    while data := await stream.receive_some(65536):
        await stream.send_all(data)
    assert isinstance(stream, trio.abc.HalfCloseableStream)
    await stream.send_eof()
    await read_to_eof(stream)


async def answer_after_eof(stream: trio.abc.Stream) -> None:
    """Count what came until the client's FIN, then answer: possible only on a half-close."""
    received = await read_to_eof(stream)
    await stream.send_all(f"got {len(received)} bytes: ".encode())
    await stream.send_all(received[::-1])
    await stream.aclose()


@dataclass
class Banner:
    """Sends a banner and its FIN at once, then keeps listening to the client."""

    banner: bytes = b"banner, then FIN"
    heard: bytes = b""
    done: trio.Event = field(default_factory=trio.Event)

    async def __call__(self, stream: trio.abc.Stream) -> None:
        assert isinstance(stream, trio.abc.HalfCloseableStream)
        await stream.send_all(self.banner)
        await stream.send_eof()
        self.heard = await read_to_eof(stream)
        self.done.set()


async def hello_then_wait(stream: trio.abc.Stream) -> None:
    await stream.send_all(b"hello world")
    with suppress(trio.BrokenResourceError):
        await read_to_eof(stream)


# -- relaying ---------------------------------------------------------------------------


@where
async def test_bytes_cross_exactly_both_ways(rig_of: RigFactory) -> None:
    payload = os.urandom(300_000) + b"\r\n\r\n\x00\xff"
    async with rig_of(echo) as rig:
        client = await rig.connect()
        received = b""

        async def send() -> None:
            for start in range(0, len(payload), 7_000):
                await client.send_all(payload[start : start + 7_000])
            await client.send_eof()

        async def receive() -> None:
            nonlocal received
            received = await read_to_eof(client)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send)
            nursery.start_soon(receive)
        assert received == payload
        closed = await rig.closed()
    assert (closed["by"], closed["reason"]) == ("client", "client-closed")
    assert (closed["bytes_up"], closed["bytes_down"]) == (len(payload), len(payload))
    assert "events_down" not in closed  # raw bytes: no SSE framing in TCP mode
    (opened,) = rig.journal.of_kind("opened")
    assert opened["mode"] == "tcp"


@where
async def test_client_half_close_reaches_the_upstream_which_can_still_answer(
    rig_of: RigFactory,
) -> None:
    async with rig_of(answer_after_eof) as rig:
        client = await rig.connect()
        await client.send_all(b"abc")
        await client.send_all(b"def")
        await client.send_eof()
        assert await read_to_eof(client) == b"got 6 bytes: fedcba"
        closed = await rig.closed()
    assert (closed["by"], closed["reason"]) == ("client", "client-closed")
    assert (closed["bytes_up"], closed["bytes_down"]) == (6, len(b"got 6 bytes: fedcba"))


@where
async def test_upstream_half_close_reaches_the_client_which_can_still_send(
    rig_of: RigFactory,
) -> None:
    upstream = Banner()
    async with rig_of(upstream) as rig:
        client = await rig.connect()
        assert await read_to_eof(client) == upstream.banner  # the upstream's FIN came through
        await client.send_all(b"still talking after your FIN")
        await client.send_eof()
        await upstream.done.wait()
        assert upstream.heard == b"still talking after your FIN"
        closed = await rig.closed()
    assert (closed["by"], closed["reason"]) == ("upstream", "upstream-closed")
    assert closed["bytes_down"] == len(upstream.banner)
    assert closed["bytes_up"] == len(b"still talking after your FIN")


# -- resets and refusals -------------------------------------------------------------------


async def read_until_broken(stream: trio.abc.ReceiveStream) -> tuple[bytes, BaseException]:
    data = b""
    try:
        while more := await stream.receive_some(65536):
            data += more
    except trio.BrokenResourceError as error:
        return data, error
    raise AssertionError(f"a clean EOF after {data!r}, not a reset")


async def test_reset_fault_gives_the_client_econnreset() -> None:
    async with socket_rig(hello_then_wait, RESET_AFTER_5_BYTES) as rig:
        client = await rig.connect()
        data, error = await read_until_broken(client)
        assert data == b"hello"  # exactly `bytes` reach the client before the RST
        assert isinstance(error.__cause__, ConnectionResetError)
        closed = await rig.closed()
        (fault,) = rig.journal.of_kind("fault")
    assert (fault["fault"], fault["action"], fault["direction"]) == ("reset", "reset", "down")
    assert closed["bytes_down"] == 5


async def test_reset_fault_is_journaled_as_the_proxys_doing() -> None:
    async with socket_rig(hello_then_wait, RESET_AFTER_5_BYTES) as rig:
        client = await rig.connect()
        await read_until_broken(client)
        closed = await rig.closed()
    assert (closed["by"], closed["reason"]) == ("proxy", "reset")


async def test_upstream_refused_on_memory_streams_closes_the_client() -> None:
    message = "cannot connect to upstream 127.0.0.1:9: Connection refused"

    async def refused(stream: trio.abc.Stream) -> None:
        raise AssertionError("never connected")

    async with memory_rig(refused) as rig:

        async def refuse() -> trio.abc.Stream:
            raise UpstreamError("refused", message)

        rig.proxy.connector = refuse
        client = await rig.connect()
        assert await read_to_eof(client) == b""
        closed = await rig.closed()
    assert (closed["by"], closed["reason"], closed["detail"]) == (
        "upstream",
        "upstream-refused",
        message,
    )
    assert (closed["bytes_up"], closed["bytes_down"]) == (0, 0)


async def test_upstream_refused_on_a_closed_port_closes_the_client() -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # bound, never listening: connects are refused
        async with socket_rig(echo, port=closed_port) as rig:
            client = await rig.connect()
            assert await read_to_eof(client) == b""
            closed = await rig.closed()
    assert (closed["by"], closed["reason"]) == ("upstream", "upstream-refused")
    assert closed["detail"].startswith(f"cannot connect to upstream 127.0.0.1:{closed_port}: ")
    assert [r["kind"] for r in rig.journal.records] == ["opened", "closed"]
