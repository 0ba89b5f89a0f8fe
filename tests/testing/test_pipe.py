"""`pipe_pair`: a socket-like memory stream pair with bounded buffers."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from sseproxy.testing import pipe_pair


async def test_it_behaves_like_a_half_closeable_stream() -> None:
    async def make() -> tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]:
        return pipe_pair(100)

    async def clogged() -> tuple[trio.abc.HalfCloseableStream, trio.abc.HalfCloseableStream]:
        left, right = pipe_pair(1)
        await left.send_all(b"x")
        await right.send_all(b"x")
        return left, right

    await trio.testing.check_half_closeable_stream(make, clogged)


async def test_a_writer_waits_while_the_buffer_is_full(autojump_clock: object) -> None:
    left, right = pipe_pair(4)
    with trio.move_on_after(1) as scope:
        await left.send_all(b"0123456789")
    assert scope.cancelled_caught
    assert await right.receive_some() == b"0123"


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        pipe_pair(0)
