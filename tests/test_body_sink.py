"""`BodySink` frames chunks itself once h11 showed the body is chunked: the bytes on the
wire must be exactly h11's, for every framing h11 may choose."""

from __future__ import annotations

import h11
import trio
import trio.testing
from hypothesis import given
from hypothesis import strategies as st

from sseproxy.faults.base import Piece
from sseproxy.http import BodySink

BODIES = st.lists(st.binary(max_size=300), max_size=12)


def server_after(version: bytes, response: h11.Response) -> tuple[h11.Connection, bytes]:
    """A server connection that read a GET in HTTP/`version` and sent `response`, and the
    head bytes it wrote."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(b"GET / HTTP/%b\r\nHost: x\r\n\r\n" % version)
    assert type(conn.next_event()) is h11.Request
    assert type(conn.next_event()) is h11.EndOfMessage
    return conn, conn.send(response) or b""


def wire(kind: str, pieces: list[bytes], mine: bool) -> bytes:
    """The response as h11 alone writes it (`mine` False) or through `BodySink`."""
    version = b"1.0" if kind == "http/1.0" else b"1.1"
    headers = [(b"content-type", b"text/event-stream")]
    if kind == "content-length":
        headers.append((b"content-length", b"%d" % sum(map(len, pieces))))
    conn, head = server_after(version, h11.Response(status_code=200, headers=headers))
    if not mine:
        body = b"".join(conn.send(h11.Data(data=p)) or b"" for p in pieces if p)
        return head + body + (conn.send(h11.EndOfMessage()) or b"")
    stream = trio.testing.MemorySendStream()
    sink = BodySink(conn, stream)

    async def send_all() -> None:
        for number, data in enumerate(pieces):
            if number % 2:
                await sink.send(Piece(data))
            else:
                await sink.send_rest(sink.send_nowait(Piece(data)))
        await sink.stop("end", None, "")

    trio.run(send_all)
    try:
        return head + bytes(stream.get_data_nowait())
    except trio.WouldBlock:  # nothing was written
        return head


@given(kind=st.sampled_from(["chunked", "content-length", "http/1.0"]), pieces=BODIES)
def test_the_body_on_the_wire_is_exactly_h11s(kind: str, pieces: list[bytes]) -> None:
    assert wire(kind, pieces, mine=True) == wire(kind, pieces, mine=False)


def test_a_chunked_body_is_framed_here_after_the_first_piece() -> None:
    conn, _ = server_after(b"1.1", h11.Response(status_code=200, headers=[]))
    sink = BodySink(conn, trio.testing.MemorySendStream())
    assert sink.frame(b"") == b"" and sink.chunked is None
    assert sink.frame(b"a" * 26) == b"1a\r\n" + b"a" * 26 + b"\r\n"
    assert sink.chunked is True
    assert sink.frame(b"xyz") == b"3\r\nxyz\r\n"
