"""A chunked response body de-chunked fast: every chunk of a read in one tight loop.

h11 makes a `Data` event per HTTP chunk, 2-5 µs each, and a server that flushes every
100-byte event sends one chunk per event: h11 would then cost more than the rest of the
relay. `Dechunker` scans a whole read with `bytes.find` and `int(size, 16)` (a regular
expression only for a line with an extension), and hands back the payload of everything
the read brought as one bytes object (one write downstream).

It refuses exactly what h11 0.16 refuses, with the same split into "cut short" and
"malformed" (tests/test_chunked.py compares both, byte for byte, on random and broken
bodies split at random): a chunk-size line is 1 to 20 hex digits, then optionally `;` and
anything but LF (extensions are ignored), optional spaces or tabs, then CRLF; a partial
line held back may not grow past `limit` bytes; each chunk's data must be followed by
CRLF; and the trailer section after the `0` chunk goes through h11 itself (a rare path,
so its header rules stay h11's). Nothing after the end of the body is ever returned.
"""

from __future__ import annotations

import re

import h11
import trio

from sseproxy.connection import Garbled, Truncated
from sseproxy.link import CHUNK
from sseproxy.transport import receive

__all__ = ["ChunkError", "ChunkedBody", "Dechunker", "is_chunked"]

_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;[^\n]*)?[ \t]*")
"""h11's `chunk_header` without its CRLF (its `.` is anything but LF)."""
_HEX = b"0123456789abcdefABCDEF"


class ChunkError(ValueError):
    """The body's framing is malformed, or it ended (`eof`) before its last chunk."""


class Dechunker:
    """A sans-I/O chunked-body decoder: `feed` it reads, `eof` at the upstream's close.

    `feed` returns the chunk data the bytes completed (a chunk's data may come in parts,
    as it arrives). At malformed framing it raises `ChunkError`, but when payload came
    before the fault in the same read it returns that first and keeps the error in
    `failure`, raised by the next call: what was well framed still goes on, as with h11.
    """

    __slots__ = ("_crlf", "_held", "_left", "_trailer", "done", "failure", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        """The longest partial line held back (h11's `max_incomplete_event_size`)."""
        self.done = False
        """The last chunk and the trailer section have been read: the body is complete."""
        self.failure: ChunkError | None = None
        self._left = 0  # data bytes of the current chunk still to come
        self._crlf = False  # the CRLF after a chunk's data is still to come
        self._held = b""  # an incomplete line (or the CR of a CRLF) waiting for more
        self._trailer: h11.Connection | None = None  # after the `0` chunk

    def feed(self, data: bytes) -> bytes:
        """The payload of the chunks in `data` (after what earlier calls held back)."""
        if self.failure is not None:
            raise self.failure
        if self.done:
            return b""  # after the body: never forwarded
        if self._trailer is not None:
            self._feed_trailer(data)
            return b""
        if self._held:
            data = self._held + data
            self._held = b""
        out: list[bytes] = []
        try:
            self._scan(data, out)
        except ChunkError as error:
            if not out:
                raise
            self.failure = error
        return b"".join(out)

    def eof(self) -> None:
        """The upstream closed: fine after the body's end, else a `ChunkError`."""
        if self.done:
            return
        if self.failure is not None:
            raise self.failure
        if self._trailer is not None:
            self._feed_trailer(b"", eof=True)  # h11 says how the trailer was cut short
        raise ChunkError(
            "peer closed connection without sending complete message body (incomplete chunked read)"
        )

    def _scan(self, data: bytes, out: list[bytes]) -> None:
        """The tight loop: chunk data into `out`, state into the attributes."""
        pos = 0
        end = len(data)
        left = self._left
        crlf = self._crlf
        find = data.find
        size_line = _SIZE_LINE.fullmatch
        append = out.append
        try:
            while pos < end:
                if left:  # inside a chunk's data
                    stop = pos + left
                    if stop > end:
                        append(data[pos:])
                        left = stop - end
                        return
                    append(data[pos:stop])
                    pos = stop
                    left = 0
                    crlf = True
                elif crlf:  # the CRLF after a chunk's data
                    footer = data[pos : pos + 2]
                    if footer != b"\r\n":
                        if footer == b"\r":  # the LF may be in the next read
                            self._held = footer
                            return
                        raise ChunkError(f"malformed chunk footer: {footer!r} (expected b'\\r\\n')")
                    pos += 2
                    crlf = False
                else:  # a chunk-size line
                    eol = find(b"\r\n", pos)
                    if eol < 0:
                        self._held = held = data[pos:]
                        if len(held) > self.limit:
                            raise ChunkError("Receive buffer too long")
                        return
                    digits = data[pos:eol]
                    if not digits or len(digits) > 20 or digits.strip(_HEX):  # not hex alone
                        match = size_line(data, pos, eol)
                        if match is None:
                            raise ChunkError(f"illegal chunk header: {data[pos : eol + 2]!r}")
                        digits = match[1]
                    left = int(digits, 16)
                    pos = eol + 2
                    if not left:
                        self._last_chunk(data[pos:])
                        return
                    stop = pos + left
                    if data[stop : stop + 2] == b"\r\n":  # the whole chunk is here: most are
                        append(data[pos:stop])
                        pos = stop + 2
                        left = 0
        finally:
            self._left = left
            self._crlf = crlf

    def _last_chunk(self, rest: bytes) -> None:
        """After the `0` line: the trailer section, almost always empty."""
        if rest[:2] == b"\r\n" or rest[:1] == b"\n":  # no trailer (h11 takes a bare LF too)
            self.done = True
            return
        self._trailer = _trailer_reader(self.limit)
        self._feed_trailer(rest)

    def _feed_trailer(self, data: bytes, eof: bool = False) -> None:
        trailer = self._trailer
        assert trailer is not None
        if data or eof:  # h11 takes b"" for the close
            trailer.receive_data(data)
        try:
            event = trailer.next_event()
        except h11.RemoteProtocolError as error:
            raise ChunkError(str(error)) from error
        if event is not h11.NEED_DATA:
            assert type(event) is h11.EndOfMessage, event
            self.done = True
            self._trailer = None


def _trailer_reader(limit: int) -> h11.Connection:
    """An h11 connection that has just read a `0` chunk: it parses a trailer section
    exactly as the upstream's own connection would have."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=limit)
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "-")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(b"HTTP/1.1 200 \r\ntransfer-encoding: chunked\r\n\r\n0\r\n")
    assert type(conn.next_event()) is h11.Response
    return conn


def is_chunked(method: bytes, response: h11.Response) -> bool:
    """Whether h11 reads this response's body as chunked (`_body_framing` in h11: no body
    for HEAD, 204, 304 or a CONNECT's 2xx; h11 itself refused any coding but chunked)."""
    if not _has_body(method, response.status_code):
        return False
    return any(name == b"transfer-encoding" for name, _ in response.headers)


def _has_body(method: bytes, status: int) -> bool:
    """h11's `_body_framing`: no body for HEAD, 204, 304 or a CONNECT's 2xx."""
    return not (
        method == b"HEAD" or status in (204, 304) or (method == b"CONNECT" and status < 300)
    )


class ChunkedBody:
    """The body of a chunked response as `_read_body` in `sseproxy.http` reads it from h11
    (the same contract: one read's payload per call, b"" at the end, `Truncated` for an
    upstream that closed early, `Garbled` for broken framing), but without h11.

    `unread` and `closed` are h11's `trailing_data` once it has parsed the response head:
    what the upstream had already sent past the head, which is where the body starts.
    """

    __slots__ = ("dechunker", "queued", "stream")  # one per idle stream, for its whole life

    def __init__(self, stream: trio.abc.ReceiveStream, unread: bytes, closed: bool, limit: int):
        self.stream = stream
        self.dechunker = Dechunker(limit)
        self.queued = ([unread] if unread else []) + ([b""] if closed else [])

    async def read(self) -> bytes:
        dechunker = self.dechunker
        while not dechunker.done:
            if dechunker.failure is not None:
                raise Garbled(str(dechunker.failure))
            queued = self.queued
            data = queued.pop(0) if queued else bytes(await receive(self.stream, CHUNK))
            try:
                if not data:
                    dechunker.eof()  # raises: the body is not done
                payload = dechunker.feed(data)
            except ChunkError as error:
                raise (Garbled if data else Truncated)(str(error)) from error
            if payload:
                return payload
        return b""


class LengthBody:
    """A response body with a Content-Length, read without h11 (its `ContentLengthReader`
    copies every read through its receive buffer), with the contract of `ChunkedBody`.
    Bytes past the length are ignored, as h11 leaves them unread: the upstream connection
    is not reused."""

    __slots__ = ("left", "length", "queued", "stream")  # as ChunkedBody's

    def __init__(self, stream: trio.abc.ReceiveStream, length: int, unread: bytes, closed: bool):
        self.stream = stream
        self.length = length
        self.left = length
        self.queued = ([unread] if unread else []) + ([b""] if closed else [])

    async def read(self) -> bytes:
        while self.left:
            queued = self.queued
            data = queued.pop(0) if queued else bytes(await receive(self.stream, CHUNK))
            if not data:
                raise Truncated(
                    "peer closed connection without sending complete message body: received "
                    f"{self.length - self.left} bytes, expected {self.length}"
                )
            if len(data) > self.left:
                data = data[: self.left]
            self.left -= len(data)
            return data
        return b""


def fast_body(
    method: bytes,
    response: h11.Response,
    stream: trio.abc.ReceiveStream,
    trailing: tuple[bytes, bool],
    limit: int,
) -> ChunkedBody | LengthBody | None:
    """A reader for this response's body that needs no h11 (chunked, or a Content-Length),
    or None (no body, or one that ends with the connection: h11 reads those).

    `trailing` is h11's `trailing_data` once it parsed the head: what the upstream had
    already sent past it, which is where the body starts."""
    unread, closed = trailing
    if is_chunked(method, response):
        return ChunkedBody(stream, unread, closed, limit)
    if not _has_body(method, response.status_code):
        return None
    for name, value in response.headers:
        if name == b"content-length":
            return LengthBody(stream, int(value), unread, closed)  # h11 checked the value
    return None
