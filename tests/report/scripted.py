"""Scripted runs for the report's tests: a real proxy on memory streams, real journals.

`scripted_proxy` is `tests.harness.memory_proxy` with two more knobs: any upstream
handler (the built-in origin, or a small SSE server written for a test, such as one that
skips ids on resume), and the client address of each connection, so that several
clients can be told apart as they are in production. `sse_client` is an EventSource-like
client: it reads a stream until the connection ends, then reconnects, sending
`Last-Event-ID` or not, and returns the ids it actually received: the ground truth the
report's lost and replayed counts are checked against.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TextIO

import h11
import trio
import trio.testing

from sseproxy import origin
from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.scenario import Scenario, parse_scenario
from sseproxy.sse import Framer
from tests.harness import Client

Handler = Callable[[trio.abc.Stream], Awaitable[None]]


def origin_upstream(settings: origin.OriginSettings | None = None) -> Handler:
    chosen = settings or origin.OriginSettings()

    async def handle(stream: trio.abc.Stream) -> None:
        await origin.handle_connection(stream, chosen)

    return handle


async def read_request(stream: trio.abc.Stream) -> tuple[h11.Connection, h11.Request] | None:
    conn = h11.Connection(h11.SERVER)
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(bytes(data))
            continue
        if isinstance(event, h11.Request):
            while not isinstance(body := conn.next_event(), h11.EndOfMessage):  # skip the body
                if body is h11.NEED_DATA:
                    conn.receive_data(bytes(await stream.receive_some(65536)))
            return conn, event
        return None


def skipping_upstream(skip: int, interval: float = 1.0) -> Handler:
    """An SSE server with a resume bug: after Last-Event-ID n it starts at n + 1 + skip."""

    async def handle(stream: trio.abc.Stream) -> None:
        try:
            got = await read_request(stream)
            if got is None:
                return
            conn, request = got
            last = dict(request.headers).get(b"last-event-id")
            n = int(last) + 1 + skip if last and last.isdigit() else 1
            head = h11.Response(status_code=200, headers=[("content-type", "text/event-stream")])
            await stream.send_all(conn.send(head) or b"")
            while True:
                await stream.send_all(conn.send(h11.Data(data=origin.encode_event(n))) or b"")
                n += 1
                await trio.sleep(interval)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    return handle


@dataclass
class ScriptedProxy:
    proxy: Proxy
    nursery: trio.Nursery

    @property
    def journal(self) -> Journal:
        return self.proxy.journal

    def client(self, address: str = "127.0.0.1:50000") -> Client:
        client_end, proxy_end = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self.proxy.handle, proxy_end, address)
        return Client(client_end)


@asynccontextmanager
async def scripted_proxy(
    scenario: Scenario | str,
    upstream: Handler,
    *,
    stream: TextIO | None = None,
    seed: int = 1,
) -> AsyncIterator[ScriptedProxy]:
    if isinstance(scenario, str):
        scenario = parse_scenario(scenario, file="scripted.toml")
    async with trio.open_nursery() as nursery:

        async def connect() -> trio.abc.Stream:
            proxy_end, upstream_end = trio.testing.memory_stream_pair()
            nursery.start_soon(upstream, upstream_end)
            return proxy_end

        proxy = Proxy(
            ProxySettings(Upstream("127.0.0.1", 9)),
            scenario,
            Journal(stream, keep=True),
            seed=seed,
            connector=connect,
        )
        yield ScriptedProxy(proxy, nursery)
        nursery.cancel_scope.cancel()
    await proxy.journal.aclose()  # every line is in `stream` now


def event_ids(body: bytes) -> list[str]:
    return [block.event.id for block in Framer().feed(body) if block.event is not None]


async def sse_client(
    sp: ScriptedProxy,
    address: str,
    user_agent: str,
    *,
    connections: int,
    resume: bool,
    pause: float = 1.0,
    target: str = "/events",
) -> list[list[str]]:
    """Connect `connections` times, each until the stream ends; the ids seen on each."""
    seen: list[list[str]] = []
    last: str | None = None
    for number in range(connections):
        if number:
            await trio.sleep(pause)
        headers = [("user-agent", user_agent), ("accept", "text/event-stream")]
        if resume and last is not None:
            headers.append(("last-event-id", last))
        client = sp.client(address)
        got = await client.get(target, headers)
        await client.stream.aclose()
        ids = event_ids(got.body)
        seen.append(ids)
        if ids:
            last = ids[-1]
    return seen


def truth(seen: list[list[str]]) -> tuple[int, int]:
    """(lost, replayed) as the client experienced them across its reconnects."""
    lost = replayed = 0
    last: int | None = None
    for ids in seen:
        if not ids:
            continue
        first = int(ids[0])
        if last is not None:
            if first > last + 1:
                lost += first - last - 1
            elif first <= last:
                replayed += sum(1 for i in ids if int(i) <= last)
        last = int(ids[-1])
    return lost, replayed
