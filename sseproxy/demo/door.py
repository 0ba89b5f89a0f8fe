"""The demo's one address: the page, the control API and the proxied streams, one origin.

A browser may only read a response from another origin when it answers CORS, and the
control API never does (docs/control.md); so the page, the API and the page's event
streams must share one host and port. The door reads the head of the first request on a
connection and hands the whole connection to whoever serves that path:

- `/events...` (a stream, e.g. from curl) and `/client/N/events...` (client N of the page)
  go to the proxy: `proxy.handle`, exactly as if the proxy had accepted the socket, so
  every fault, close and reset reaches the browser first hand. The page's client number
  becomes the header `X-Demo-Client: client-N`, a session key of the demo's proxy, so the
  journal's `request` records say which client sent them (the built-in server answers an
  unknown query parameter with 400, so the number cannot ride in the query);
- `/api/...` goes to the control API with the prefix taken off (its own rules stand:
  loopback, `Host` check, JSON bodies);
- anything else goes to the page.

Each connection carries one request (`Connection: close` is put on it): a browser reuses
idle connections for any request to the same origin, and a connection that began as a
stream must not later carry an API call to the proxy.

A browser opens at most six HTTP/1.1 connections to one host and port, and an
EventSource holds one for good: six clients on the page's own address would leave none
for the journal and the API calls. So the page's clients use a second door on another
port that serves streams only. It is another origin, so the browser reads what it says
only with CORS; the built-in server answers CORS itself (`sseproxy.cors`: every answer
carries `Access-Control-Allow-Origin: *`), and the door adds nothing to those. It adds
the same header to the answers the proxy makes itself (a `status` fault's 503, a 502,
a 504), which carry none, as a real proxy's would not: the page then meets the status a
page on the stream's own origin would meet, not a CORS error. And it answers a preflight
itself, as the built-in server would: a browser's permission check is no stream, so it
must not meet the faults nor take a place in the journal (Chromium sends none for an
EventSource; other browsers may, when a reconnect sends `Last-Event-ID`).
"""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Awaitable, Callable
from typing import Final

import trio

from sseproxy.cors import ALLOW_ANY_ORIGIN, preflight_headers
from sseproxy.server import peer

__all__ = ["CLIENT_HEADER", "Door", "Routes", "allow_any_origin", "headers_of", "rewrite_head"]

CLIENT_HEADER: Final = "X-Demo-Client"
MAX_HEAD: Final = 16 * 1024
HEAD_TIMEOUT: Final = 30.0
_CLIENT_PATH: Final = re.compile(r"^/client/([1-9][0-9]?)(/events.*)$")

Handler = Callable[[trio.abc.Stream, str], Awaitable[None]]


class Replayed(trio.abc.HalfCloseableStream):
    """A socket stream whose first bytes are given back: the head the door already read
    (rewritten). `socket` is the real one, so a fault's reset still sends an RST."""

    def __init__(self, inner: trio.SocketStream, first: bytes, *, cors: bool = False) -> None:
        self.inner = inner
        self.socket = inner.socket
        self._first = first
        self._cors = cors
        """Put `Access-Control-Allow-Origin: *` on the response head (the first bytes sent)
        when it has none."""

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._first:
            size = len(self._first) if max_bytes is None else max_bytes
            data, self._first = self._first[:size], self._first[size:]
            return data
        return bytes(await self.inner.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._cors:
            data, self._cors = allow_any_origin(bytes(data)), False
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        await self.inner.aclose()


def rewrite_head(head: bytes) -> tuple[str, bytes]:
    """(who serves it: "proxy", "api" or "page"; the head to give them).

    The head is the request line and header lines up to the blank line. Every route gets
    `Connection: close`; `/api` loses its prefix; `/client/N/events` becomes `/events`
    with `X-Demo-Client: client-N`.
    """
    lines = head.split(b"\r\n")
    method, _, rest = lines[0].partition(b" ")
    target, _, version = rest.partition(b" ")
    path = target.split(b"?", 1)[0]
    kept = [
        line
        for line in lines[1:]
        if line
        and line.split(b":", 1)[0].strip().lower()
        not in (b"connection", CLIENT_HEADER.lower().encode())
    ]
    added = [b"Connection: close"]
    if path == b"/api" or path.startswith(b"/api/"):
        route, target = "api", target[4:] or b"/"
        if target.startswith(b"?"):
            target = b"/" + target
    elif client := _CLIENT_PATH.match(target.decode("latin-1")):
        route, target = "proxy", client.group(2).encode("latin-1")
        added.append(f"{CLIENT_HEADER}: client-{client.group(1)}".encode())
    elif path == b"/events" or path.startswith(b"/events/"):
        route = "proxy"
    else:
        route = "page"
    first = b" ".join((method, target, version)) if version else b" ".join((method, target))
    return route, b"\r\n".join([first, *kept, *added, b"", b""])


def headers_of(head: bytes) -> dict[bytes, bytes]:
    """A request head's headers by lower-case name (the first of each name)."""
    found: dict[bytes, bytes] = {}
    for line in head.split(b"\r\n")[1:]:
        key, colon, value = line.partition(b":")
        if colon:
            found.setdefault(key.strip().lower(), value.strip())
    return found


def allow_any_origin(data: bytes) -> bytes:
    """`data` (a response head, maybe with body bytes after it) with
    `Access-Control-Allow-Origin: *` after its status line, unless it has one."""
    head = data.split(b"\r\n\r\n", 1)[0].lower()
    if not data.startswith(b"HTTP/") or b"\r\naccess-control-allow-origin:" in head:
        return data
    status, _, rest = data.partition(b"\r\n")
    name, value = ALLOW_ANY_ORIGIN
    return status + f"\r\n{name}: {value}\r\n".encode() + rest


class Door:
    """Accepts on one of the demo's addresses and routes each connection (see the module
    doc). With `streams_only`, it is the streams door: streams, with CORS, and nothing else."""

    def __init__(self, routes: dict[str, Handler], *, streams_only: bool = False) -> None:
        self.routes = routes
        self.streams_only = streams_only

    async def handle(self, stream: trio.SocketStream) -> None:
        try:
            with contextlib.suppress(OSError):
                stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            client = peer(stream)
            with trio.move_on_after(HEAD_TIMEOUT):
                data = await _read_head(stream)
            if not data or b"\r\n\r\n" not in data:
                if data and len(data) > MAX_HEAD:
                    await stream.send_all(_TOO_LARGE)
                await trio.aclose_forcefully(stream)
                return
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await trio.aclose_forcefully(stream)
            return
        head, _, body = data.partition(b"\r\n\r\n")
        route, rewritten = rewrite_head(head + b"\r\n\r\n")
        if not self.streams_only:
            await self.routes[route](Replayed(stream, rewritten + body), client)
        elif route != "proxy":
            await _answer(stream, _NOT_HERE)
        elif head.startswith(b"OPTIONS "):
            await _answer(stream, _preflight(head))
        else:
            await self.routes[route](Replayed(stream, rewritten + body, cors=True), client)


Routes = dict[str, Handler]

_NOT_HERE: Final = (
    b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 22\r\n"
    b"Connection: close\r\n\r\nonly streams are here\n"
)
_TOO_LARGE: Final = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
    b"Connection: close\r\n\r\n"
)


def _preflight(head: bytes) -> bytes:
    """The built-in server's answer to a preflight for a stream (`sseproxy.cors`)."""
    lines = [b"HTTP/1.1 204 No Content"]
    for name, value in preflight_headers(headers_of(head), ("GET",)):
        lines.append(f"{name}: {value}".encode("latin-1"))
    return b"\r\n".join([*lines, b"Connection: close", b"", b""])


async def _answer(stream: trio.SocketStream, answer: bytes) -> None:
    """The streams door's own answer (a 404, a preflight's 204); then it closes."""
    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
        await stream.send_all(answer)
    await trio.aclose_forcefully(stream)


async def _read_head(stream: trio.SocketStream) -> bytes:
    """Bytes up to and past the end of the first request head; b"" if the client left."""
    data = b""
    while b"\r\n\r\n" not in data and len(data) <= MAX_HEAD:
        chunk = await stream.receive_some(MAX_HEAD)
        if not chunk:
            return data
        data += chunk
    return data
