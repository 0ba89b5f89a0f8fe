"""TCP mode with no fault, in bulk: bytes move socket → pipe → socket inside the kernel.

`pump` copies every byte twice through Python (read into a bytes object, write it out);
that copying is most of the CPU a bulk transfer costs. Linux's splice(2) moves the pages
through a pipe instead. A pipe is two more descriptors, so a direction takes one only once
a read shows a bulk transfer (`BULK` bytes at once); idle and chatty streams never do.
Anything unexpected (no splice, no descriptors left) keeps the plain path.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable

import trio

from sseproxy.transport import stream_error

__all__ = ["BULK", "SpliceFailed", "close_pipe", "open_pipe", "splice"]

BULK = 128 * 1024
"""A read this big says bulk: from then on the direction splices."""
PIPE_SIZE = 1024 * 1024
"""Asked of the kernel per pipe (`F_SETPIPE_SZ`); it may give less (64 KiB by default)."""
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


class SpliceFailed(Exception):
    """The sink failed (`error`): what was in flight is lost, as with a failed write."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def open_pipe() -> tuple[int, int, int] | None:
    """(read end, write end, capacity), or None where splice cannot be used."""
    if not hasattr(os, "splice"):
        return None
    try:
        read_end, write_end = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None  # out of descriptors: the plain path needs none
    capacity = 64 * 1024
    with contextlib.suppress(OSError):
        capacity = fcntl.fcntl(write_end, _F_SETPIPE_SZ, PIPE_SIZE)
    return read_end, write_end, capacity


async def splice(
    source: trio.SocketStream,
    sink: trio.SocketStream,
    pipe: tuple[int, int, int],
    counted: Callable[[int], None],
) -> None:
    """Move bytes until the source's end (returns); a source failure raises its
    `trio.BrokenResourceError`/`ClosedResourceError`, a sink failure `SpliceFailed`.
    Each batch is `counted` once the sink has taken all of it."""
    read_end, write_end, capacity = pipe
    inbound, outbound = source.socket, sink.socket
    while True:
        if inbound.fileno() < 0:
            raise trio.ClosedResourceError("this socket was already closed")
        await trio.lowlevel.wait_readable(inbound)
        try:
            moved = os.splice(inbound.fileno(), write_end, capacity, flags=_FLAGS)
        except BlockingIOError:
            continue
        except OSError as error:
            raise stream_error(error) from error
        if not moved:
            return
        left = moved
        while left:
            try:
                left -= os.splice(read_end, outbound.fileno(), left, flags=_FLAGS)
            except BlockingIOError:
                try:
                    if outbound.fileno() < 0:
                        raise trio.ClosedResourceError("this socket was already closed")
                    await trio.lowlevel.wait_writable(outbound)
                except trio.ClosedResourceError as error:
                    raise SpliceFailed(error) from error
            except OSError as error:
                raise SpliceFailed(stream_error(error)) from error
        counted(moved)


def close_pipe(pipe: tuple[int, int, int]) -> None:
    for fd in pipe[:2]:
        with contextlib.suppress(OSError):
            os.close(fd)
