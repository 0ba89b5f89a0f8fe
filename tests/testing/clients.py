"""SSE clients on trio streams for the examples: a correct one, a naive one, a buggy one.

They stand for "your client": each takes a `connect()` that opens a stream to the proxy
(`MemoryProxy.connect`, or `trio.open_tcp_stream` to a `SocketProxy`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import h11
import trio

from sseproxy.sse import Event, Framer

Connect = Callable[[], Awaitable[trio.abc.Stream]]
_BROKEN = (h11.RemoteProtocolError, trio.BrokenResourceError, trio.ClosedResourceError)


@dataclass
class Response:
    """What one request got: status, raw body chunks as read, and the events."""

    status: int = 0
    content_type: str = ""
    chunks: list[bytes] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    last_event_id: str = ""

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


async def get_events(
    stream: trio.abc.Stream,
    path: str = "/events",
    last_event_id: str | None = None,
    *,
    read_timeout: float = 30.0,
    read_size: int = 65536,
    on_chunk: Callable[[bytes], None] | None = None,
    into: Response | None = None,
) -> Response:
    """One GET on `stream`; parses the body as the spec says until it ends or breaks.

    `into` is filled as data arrives (what was read so far survives a cancellation).
    """
    conn = h11.Connection(h11.CLIENT)
    headers = [("Host", "test"), ("Accept", "text/event-stream")]
    if last_event_id:
        headers.append(("Last-Event-ID", last_event_id))
    got, framer = into or Response(), Framer()
    try:
        request = conn.send(h11.Request(method="GET", target=path, headers=headers))
        await stream.send_all((request or b"") + (conn.send(h11.EndOfMessage()) or b""))
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                with trio.move_on_after(read_timeout):
                    conn.receive_data(bytes(await stream.receive_some(read_size)))
                    continue
                break  # read timeout: give up on this connection
            if isinstance(event, h11.Response):
                got.status = event.status_code
                got.content_type = dict(event.headers).get(b"content-type", b"").decode()
            elif isinstance(event, h11.Data):
                data = bytes(event.data)
                got.chunks.append(data)
                if on_chunk is not None:
                    on_chunk(data)
                if got.status == 200:
                    for block in framer.feed(data):
                        got.last_event_id = block.last_event_id
                        if block.event is not None:
                            got.events.append(block.event)
            else:
                break  # EndOfMessage, ConnectionClosed
    except _BROKEN:
        pass
    finally:
        await trio.aclose_forcefully(stream)
    return got


async def reconnecting_client(
    connect: Connect,
    *,
    want: int,
    resume: bool = True,
    attempts: int = 20,
    retry: float = 1.0,
) -> list[int]:
    """Read until `want` events arrived, reconnecting after `retry` seconds.

    `resume=True` is a correct client (it sends Last-Event-ID); `resume=False` is the
    naive one that reconnects but forgets it. Returns the ids in arrival order.
    """
    ids: list[int] = []
    last_id = ""
    for _ in range(attempts):
        got = await get_events(await connect(), last_event_id=last_id if resume else None)
        ids += [int(event.id) for event in got.events]
        if got.status == 200:
            last_id = got.last_event_id or last_id
        if len(ids) >= want:
            break
        await trio.sleep(retry)
    return ids


def parse_whole_chunk(chunk: bytes) -> list[str]:
    """The bug: treat every read as whole events. Data of complete-looking events only."""
    found = []
    for block in chunk.split(b"\n\n"):
        lines = block.split(b"\n")
        if lines and lines[0].startswith(b"id: ") and any(x.startswith(b"data: ") for x in lines):
            found += [x[6:].decode() for x in lines if x.startswith(b"data: ")]
    return found
