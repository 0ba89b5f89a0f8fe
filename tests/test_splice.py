"""TCP mode's bulk path (`sseproxy.splice`): once a direction sees a bulk read, bytes move
socket → pipe → socket in the kernel. Every byte must still arrive, in order, counted in
the journal; a peer that fails mid-transfer must be told apart as before; and without a
pipe the plain path carries on."""

from __future__ import annotations

import os
import random
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from sseproxy import splice
from sseproxy.testing import open_proxy

DATA = random.Random(7).randbytes(24 * 1024 * 1024)  # far past splice.BULK
Serve = Callable[[trio.SocketStream], Awaitable[None]]


@asynccontextmanager
async def upstream(serve: Serve) -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(trio.serve_tcp, serve, 0)
        yield listeners[0].socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def send_data_then_close(stream: trio.SocketStream) -> None:
    await stream.send_all(DATA)
    await stream.aclose()


async def read_all(port: int) -> bytes:
    client = await trio.open_tcp_stream("127.0.0.1", port)
    got = bytearray()
    while chunk := await client.receive_some(1 << 20):
        got += chunk
    await client.aclose()
    return bytes(got)


@pytest.mark.skipif(not hasattr(os, "splice"), reason="no splice(2) here")
async def test_a_bulk_transfer_arrives_whole_and_counted() -> None:
    pipes: list[object] = []
    opened = splice.open_pipe

    def counting_open_pipe() -> tuple[int, int, int] | None:
        pipe = opened()
        pipes.append(pipe)
        return pipe

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sseproxy.link.open_pipe", counting_open_pipe)
        async with (
            upstream(send_data_then_close) as port,
            open_proxy(f"127.0.0.1:{port}", mode="tcp", live=False) as proxy,
        ):
            got = await read_all(proxy.port)
            (closed,) = await proxy.wait_for_closed()
    assert got == DATA
    assert pipes and all(pipe is not None for pipe in pipes)  # the splice path was taken
    assert closed["bytes_down"] == len(DATA)


async def test_without_a_pipe_the_plain_path_carries_on() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sseproxy.link.open_pipe", lambda: None)
        async with (
            upstream(send_data_then_close) as port,
            open_proxy(f"127.0.0.1:{port}", mode="tcp", live=False) as proxy,
        ):
            got = await read_all(proxy.port)
            (closed,) = await proxy.wait_for_closed()
    assert got == DATA
    assert closed["bytes_down"] == len(DATA)


async def test_an_upstream_reset_mid_transfer_is_the_upstreams() -> None:
    async def send_then_reset(stream: trio.SocketStream) -> None:
        await stream.send_all(DATA[: 8 * 1024 * 1024])
        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await stream.aclose()

    async with (
        upstream(send_then_reset) as port,
        open_proxy(f"127.0.0.1:{port}", mode="tcp", live=False) as proxy,
    ):
        client = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        got = 0
        with pytest.raises(trio.BrokenResourceError):  # the reset passed on as a reset or
            while chunk := await client.receive_some(1 << 20):  # a close without the rest
                got += len(chunk)
            raise trio.BrokenResourceError("closed")
        await client.aclose()
        (closed,) = await proxy.wait_for_closed()
    assert closed["by"] == "upstream", closed
    assert got <= 8 * 1024 * 1024


async def test_a_client_that_resets_mid_transfer_is_the_clients() -> None:
    async def send_forever(stream: trio.SocketStream) -> None:
        try:
            while True:
                await stream.send_all(DATA)
        except trio.BrokenResourceError:
            pass

    async with (
        upstream(send_forever) as port,
        open_proxy(f"127.0.0.1:{port}", mode="tcp", live=False) as proxy,
    ):
        client = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        got = 0
        while got < 4 * 1024 * 1024:
            got += len(await client.receive_some(1 << 20))
        client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await client.aclose()
        (closed,) = await proxy.wait_for_closed()
    assert (closed["by"], closed["reason"]) == ("client", "client-reset"), closed
