"""The Content-Length body reader (`sseproxy.chunked.LengthBody`) against h11: the same
bytes per read and the same end (the end, or `Truncated` for an upstream that closed
early), for any body, any length header and any cut into reads."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sseproxy.chunked import LengthBody, fast_body
from sseproxy.connection import Truncated
from sseproxy.http import _next_event, _read_body
from tests.test_chunked import Reads, finish, splits, upstream_conn


def relay(reads: list[bytes], fast: bool) -> tuple[list[bytes], str]:
    stream = Reads(reads)
    conn = upstream_conn()
    response = finish(_next_event(conn, stream))
    assert type(response) is h11.Response
    body = fast_body(b"GET", response, stream, conn.trailing_data, 200)
    assert isinstance(body, LengthBody)

    def read() -> Coroutine[Any, Any, bytes]:
        return body.read() if fast else _read_body(conn, stream)

    out: list[bytes] = []
    for _ in range(100_000):
        try:
            data = finish(read())
        except Truncated:
            return out, "truncated"
        if not data:
            return out, "end"
        out.append(data)
    raise AssertionError("no end")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_length_bodies_come_out_the_same_from_both_readers(data: st.DataObject) -> None:
    payload = data.draw(st.binary(max_size=600))
    length = data.draw(st.integers(0, len(payload) + 20))  # more than sent: cut short
    head = f"HTTP/1.1 200 OK\r\ncontent-length: {length}\r\n\r\n".encode()
    reads = data.draw(splits(head + payload))
    fast = relay(reads, fast=True)
    assert fast == relay(reads, fast=False)
    got, end = fast
    assert b"".join(got) == payload[:length]
    assert end == ("end" if length <= len(payload) else "truncated")


def test_no_body_readers_for_what_h11_reads_itself() -> None:
    conn = upstream_conn()
    stream = Reads([b"HTTP/1.1 200 OK\r\n\r\nuntil the close"])
    response = finish(_next_event(conn, stream))
    assert type(response) is h11.Response
    assert fast_body(b"GET", response, stream, conn.trailing_data, 200) is None  # close-delimited
    conn = upstream_conn()
    stream = Reads([b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n"])
    response = finish(_next_event(conn, stream))
    assert type(response) is h11.Response
    assert fast_body(b"GET", response, stream, conn.trailing_data, 200) is None
