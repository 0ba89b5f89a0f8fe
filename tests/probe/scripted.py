"""A scripted SSE server on memory streams: each connect gets the next script.

A script is an async function given the server end of the stream and the request head
(once it has been read); it writes raw bytes (the test controls every byte and instant) and returns
or closes. `REFUSED` in place of a script makes that connect fail as a refused one.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

import trio
import trio.testing

from sseproxy.probe.client import Hooks
from sseproxy.probe.runner import Probe, ProbeSettings
from sseproxy.probe.target import Target
from sseproxy.transport import UpstreamError

Script = Callable[[trio.abc.Stream, bytes], Awaitable[None]]
REFUSED = object()

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def events(*ids: int) -> bytes:
    return b"".join(b"id: %d\ndata: e%d\n\n" % (n, n) for n in ids)


@dataclass
class Server:
    """Hands out the scripts in order; keeps each request head it read."""

    scripts: list[object]
    requests: list[bytes] = field(default_factory=list)
    connects: list[float] = field(default_factory=list)
    nursery: trio.Nursery | None = None

    async def connect(self) -> trio.abc.Stream:
        assert self.nursery is not None
        self.connects.append(trio.current_time())
        script = self.scripts.pop(0) if self.scripts else None
        if script is REFUSED:
            raise UpstreamError("refused", "cannot connect to upstream x:1: Connection refused")
        client, server = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self._serve, server, script)
        return client

    async def _serve(self, stream: trio.abc.Stream, script: object) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some()
            if not data:
                return
            head += data
        self.requests.append(head)
        if script is None:
            await trio.sleep_forever()
        assert callable(script)
        try:
            await script(stream, head)
        except trio.BrokenResourceError:
            pass
        finally:
            await trio.aclose_forcefully(stream)


def settings(**kw: object) -> ProbeSettings:
    values: dict[str, object] = {
        "target": Target.parse("http://example.test/events"),
        "clients": 1,
        "duration": 100.0,
    }
    values.update(kw)
    return ProbeSettings(**values)  # type: ignore[arg-type]


async def run_probe(
    scripts: Iterable[object], hooks: Hooks | None = None, **kw: object
) -> tuple[Probe, Server]:
    """One probe against the scripts; returns when its duration is over."""
    server = Server(list(scripts))
    async with trio.open_nursery() as nursery:
        server.nursery = nursery
        probe = Probe(settings(**kw), server.connect, hooks)
        await probe.run()
        nursery.cancel_scope.cancel()
    return probe, server


def stream_of(*parts: bytes | float, end: bytes | None = None, close: bool = False) -> Script:
    """A script: the head, then each bytes part as a chunk or each float as a sleep, then
    `end` (the terminating chunk, say); then the stream stays open, unless `close`: then
    it closes (without the terminating chunk, unless `end` was it)."""

    async def script(stream: trio.abc.Stream, head: bytes) -> None:
        await stream.send_all(HEAD)
        for part in parts:
            if isinstance(part, float | int):
                await trio.sleep(part)
            else:
                await stream.send_all(chunk(part))
        if end is not None:
            await stream.send_all(end)
        if not close:
            await trio.sleep_forever()

    return script


def resuming(silence: float, count: int = 1) -> Script:
    """A server that resumes after the request's Last-Event-ID: `count` events, then
    `silence` seconds, then a close without the terminating chunk (an idle timeout)."""

    async def script(stream: trio.abc.Stream, head: bytes) -> None:
        found = re.search(rb"\r\nLast-Event-ID: (\d+)\r\n", head)
        after = int(found.group(1)) if found else 0
        await stream.send_all(HEAD + chunk(events(*range(after + 1, after + 1 + count))))
        await trio.sleep(silence)

    return script
