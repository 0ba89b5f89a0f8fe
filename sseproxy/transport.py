"""The socket edge: the one place that knows about TCP, RSTs and connect errors.

Everything above it works on `trio.abc.Stream`; here a stream that happens to be a
socket learns to reset, and OS errors become words a journal can use.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import struct
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal, Protocol

import trio

from sseproxy.faults.base import Piece

__all__ = [
    "Sink",
    "StopKind",
    "StreamSink",
    "UpstreamError",
    "abort",
    "connect",
    "failure_reason",
    "receive",
    "send_all",
    "stream_error",
    "upstream_error",
    "write_nowait",
    "writes_nowait",
]

_LINGER_ZERO = struct.pack("ii", 1, 0)


StopKind = Literal["end", "close", "reset"]


class Sink(Protocol):
    """Where a link writes pieces, and how it finishes: end cleanly, close, or reset."""

    async def send(self, piece: Piece) -> None: ...

    @property
    def nowait(self) -> bool:
        """Whether `send_nowait` can write (a plain socket; not TLS, not memory streams)."""

    def send_nowait(self, piece: Piece) -> bytes | memoryview:
        """Write a data piece as far as the peer takes it without waiting, and return
        what is still to go, as it goes on the wire (for `send_rest`)."""

    async def send_rest(self, rest: bytes | memoryview) -> None:
        """Write what `send_nowait` left, as is (waiting for the socket first: it just
        took all it could)."""

    async def stop(self, kind: StopKind, status: int | None, detail: str) -> None:
        """Finish: "end" cleanly (HTTP: terminating chunk; TCP: FIN), "close" without a
        clean end, or "reset" with an RST. An HTTP sink whose response has not started
        answers `status` instead (when given)."""


def receive(stream: trio.abc.ReceiveStream, max_bytes: int) -> Awaitable[bytes | bytearray]:
    """`stream.receive_some(max_bytes)`, with one trip through the scheduler, not two.

    On a plain socket stream it waits for data on the socket itself and then reads it
    at once. Through `trio.SocketStream.receive_some` the read would checkpoint again
    after the data came (a second scheduler round per event), and a waiting read would
    hold about 1.5 KiB of frames and context managers, which every idle stream pays.
    Not under TLS, where the socket can be quiet while decrypted data waits.

    Not `async` itself: any other stream's own `receive_some` coroutine is handed back
    as it is, without a frame of ours around it while it waits (an HTTP response body
    waits through `sseproxy.http.UpstreamCall`).
    """
    if type(stream) is trio.SocketStream and stream.socket.fileno() >= 0:
        return _receive_socket(stream, max_bytes)
    return stream.receive_some(max_bytes)


async def _receive_socket(stream: trio.SocketStream, max_bytes: int) -> bytes | bytearray:
    sock = stream.socket
    await trio.lowlevel.wait_readable(sock)
    try:
        return os.read(sock.fileno(), max_bytes)
    except BlockingIOError:
        pass  # woken with nothing to read after all: wait the usual way
    except OSError as error:
        raise stream_error(error) from error
    return await stream.receive_some(max_bytes)


async def send_all(stream: trio.abc.SendStream, data: bytes | memoryview) -> None:
    """`stream.send_all(data)`, without a trip through the scheduler when the socket
    takes all of it at once (the common case for an event): the link's next read is the
    checkpoint. Only one task may write to a stream, as with trio's own `send_all`."""
    if data:
        data = write_nowait(stream, data)
        if not data:
            return
    await stream.send_all(data)


def write_nowait(stream: trio.abc.SendStream, data: bytes | memoryview) -> bytes | memoryview:
    """Write what a plain socket takes at once, without waiting; returns the rest (all of
    `data` for any other stream, or a closed or shut one: `send_all` then says why)."""
    if type(stream) is trio.SocketStream:
        sock = stream.socket
        if not sock.did_shutdown_SHUT_WR and sock.fileno() >= 0:
            try:
                sent = os.write(sock.fileno(), data)
            except BlockingIOError:
                return data
            except OSError as error:
                raise stream_error(error) from error
            return b"" if sent == len(data) else memoryview(data)[sent:]
    return data


def writes_nowait(stream: trio.abc.SendStream) -> bool:
    """Whether `write_nowait` can write to `stream` at all (a plain socket)."""
    return type(stream) is trio.SocketStream


def stream_error(error: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    """What `trio.SocketStream` would raise for `error`, caused by it (the journal reads
    the errno from the cause: a reset is not a close)."""
    failure: trio.BrokenResourceError | trio.ClosedResourceError
    if error.errno in (errno.EBADF, errno.ENOTSOCK):
        failure = trio.ClosedResourceError("this socket was already closed")
    else:
        failure = trio.BrokenResourceError(f"socket connection broken: {error}")
    failure.__cause__ = error
    return failure


def _socket_of(stream: trio.abc.Stream) -> trio.socket.SocketType | None:
    """The socket under a stream, seen through TLS (`trio.SSLStream.transport_stream`)."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
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
    """A `Sink` over a plain trio stream (TCP mode, tests); statuses do not apply."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream

    async def send(self, piece: Piece) -> None:
        if piece.data:
            await send_all(self.stream, piece.data)

    @property
    def nowait(self) -> bool:
        return writes_nowait(self.stream)

    def send_nowait(self, piece: Piece) -> bytes | memoryview:
        return write_nowait(self.stream, piece.data)

    async def send_rest(self, rest: bytes | memoryview) -> None:
        await self.stream.send_all(rest)

    async def stop(self, kind: StopKind, status: int | None, detail: str) -> None:
        await {"end": self.end, "close": self.close, "reset": self.reset}[kind]()

    async def end(self) -> None:
        if isinstance(self.stream, trio.abc.HalfCloseableStream):
            await self.stream.send_eof()
        else:
            await self.stream.aclose()

    async def close(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def reset(self) -> None:
        await abort(self.stream)


_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
"""Connect errors that are the proxy's own shortage (as trio's serve_listeners sees them)."""


@dataclass
class UpstreamError(Exception):
    """Could not reach the upstream; `kind` picks the status a real proxy would answer.

    `overloaded`: the proxy itself ran out (of file descriptors, buffers): the upstream is
    not to blame, and the client gets 503 as from `--max-connections`. `tls-error`: the
    TLS handshake with an `https://` upstream failed (see `sseproxy.tls`).
    """

    kind: Literal["refused", "timeout", "unreachable", "overloaded", "tls-error"]
    message: str
    answer: int | None = None
    """The status to answer instead of the kind's (a `connect-retries` fault's 503)."""

    @property
    def status(self) -> int:
        if self.answer is not None:
            return self.answer
        return {"timeout": 504, "overloaded": 503}.get(self.kind, 502)

    @property
    def by(self) -> str:
        """Who the journal blames."""
        return "proxy" if self.kind == "overloaded" else "upstream"

    @property
    def reason(self) -> str:
        return f"{self.by}-{self.kind}"

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
        raise upstream_error(error, where) from None
    stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
    return stream


def upstream_error(error: OSError, where: str) -> UpstreamError:
    """What a failed connect means: refused, unreachable, or the proxy out of resources."""
    cause = _os_error_of(error) or error
    detail = os.strerror(cause.errno) if cause.errno else str(cause)
    if cause.errno in _OUT_OF_RESOURCES:
        return UpstreamError("overloaded", f"cannot connect to upstream {where}: {detail}")
    kind: Literal["refused", "unreachable"] = (
        "refused" if cause.errno == errno.ECONNREFUSED else "unreachable"
    )
    return UpstreamError(kind, f"cannot connect to upstream {where}: {detail}")


def _os_error_of(error: BaseException) -> OSError | None:
    """The OSError that says what happened (trio's happy eyeballs wraps them)."""
    if isinstance(error, OSError) and error.errno is not None:
        return error
    for inner in getattr(error, "exceptions", ()):
        found = _os_error_of(inner)
        if found is not None:
            return found
    cause = error.__cause__ or error.__context__
    return _os_error_of(cause) if cause is not None else None


def failure_reason(error: BaseException, side: str) -> str:
    """'upstream-reset' / 'client-closed' ... from a Broken/Closed resource error.

    EPIPE is a reset too: a write to a connection the peer reset, after an earlier call
    took the ECONNRESET (the other direction's read, say). Which call gets which is up to
    the scheduler, and the journal must not be."""
    cause = _os_error_of(error)
    if cause is not None and cause.errno in (errno.ECONNRESET, errno.EPIPE):
        return f"{side}-reset"
    return f"{side}-closed"
