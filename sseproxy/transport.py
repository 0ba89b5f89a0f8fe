"""The socket edge: the one place that knows about TCP, RSTs and connect errors.

Everything above it works on `trio.abc.Stream`; here a stream that happens to be a
socket learns to reset, and OS errors become words a journal can use.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
from dataclasses import dataclass
from typing import Literal, Protocol

import trio

__all__ = [
    "Sink",
    "StreamSink",
    "UpstreamError",
    "abort",
    "connect",
    "failure_reason",
]

_LINGER_ZERO = struct.pack("ii", 1, 0)


class Sink(Protocol):
    """Where a link writes: a stream that can also end cleanly, close, or reset."""

    async def send_all(self, data: bytes) -> None: ...

    async def end(self) -> None:
        """Clean end of this direction (HTTP: terminating chunk; TCP: FIN)."""

    async def close(self) -> None:
        """Close without a clean end."""

    async def reset(self) -> None:
        """Abort with a TCP RST where the transport has one."""


def _socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    sock = getattr(stream, "socket", None)
    return sock if isinstance(sock, trio.socket.SocketType) else None


async def abort(stream: trio.abc.Stream) -> None:
    """Close so that the peer sees ECONNRESET: SO_LINGER with a zero timeout, then close."""
    sock = _socket_of(stream)
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    await trio.aclose_forcefully(stream)


class StreamSink:
    """A `Sink` over a plain trio stream (TCP mode, tests)."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def send_all(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def end(self) -> None:
        if isinstance(self.stream, trio.abc.HalfCloseableStream):
            await self.stream.send_eof()
        else:
            await self.stream.aclose()

    async def close(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def reset(self) -> None:
        await abort(self.stream)


@dataclass
class UpstreamError(Exception):
    """Could not reach the upstream; `kind` picks the status a real proxy would answer."""

    kind: Literal["refused", "timeout", "unreachable"]
    message: str

    @property
    def status(self) -> int:
        return 504 if self.kind == "timeout" else 502

    def __str__(self) -> str:
        return self.message


async def connect(host: str, port: int, timeout: float) -> trio.SocketStream:
    """Open a TCP connection to the upstream or raise UpstreamError naming it."""
    where = f"{host}:{port}"
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(host, port)
    except trio.TooSlowError:
        message = f"upstream {where} did not accept within {timeout:g}s"
        raise UpstreamError("timeout", message) from None
    except OSError as error:
        kind: Literal["refused", "unreachable"] = (
            "refused" if _errno_of(error) == errno.ECONNREFUSED else "unreachable"
        )
        detail = error.strerror or str(error)
        raise UpstreamError(kind, f"cannot connect to upstream {where}: {detail}") from None
    stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
    return stream


def _errno_of(error: BaseException) -> int | None:
    if isinstance(error, OSError) and error.errno is not None:
        return error.errno
    for inner in getattr(error, "exceptions", ()):  # trio's happy eyeballs groups errors
        found = _errno_of(inner)
        if found is not None:
            return found
    cause = error.__cause__
    return _errno_of(cause) if cause is not None else None


def failure_reason(error: BaseException, side: str) -> str:
    """'upstream-reset' / 'client-closed' ... from a Broken/Closed resource error."""
    code = _errno_of(error)
    if code == errno.ECONNRESET:
        return f"{side}-reset"
    return f"{side}-closed"
