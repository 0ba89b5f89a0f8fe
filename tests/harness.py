"""Test harness: a proxy on memory streams in front of the built-in origin, and a client.

Everything here runs on `trio.testing.memory_stream_pair`, so tests under an autojump
`MockClock` see exact virtual times and take no wall time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import h11
import trio
import trio.testing

from sseproxy import origin
from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.scenario import Scenario, parse_scenario


def scenario_of(toml: str) -> Scenario:
    return parse_scenario(toml, file="test.toml")


@dataclass
class Received:
    """What a client saw of one response: head, body, how the body ended, and when."""

    status: int
    headers: dict[bytes, bytes]
    body: bytes = b""
    ending: str = ""  # "end" (clean), "closed" (cut short)
    ended_at: float = 0.0
    chunks: list[tuple[float, bytes]] = field(default_factory=list)


class Client:
    """A minimal HTTP/1.1 client on any trio stream, recording arrival times."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def send(
        self, method: str, target: str, headers: list[tuple[str, str]] = (), body: bytes = b""
    ) -> None:  # type: ignore[assignment]
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        all_headers = [("host", "test"), *headers]
        if body:
            all_headers.append(("content-length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=target, headers=all_headers))
        if body:
            data += self.conn.send(h11.Data(data=body))
        data += self.conn.send(h11.EndOfMessage())
        await self.stream.send_all(data)

    async def _event(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await self.stream.receive_some(65536))

    async def response(self, *, limit: int | None = None) -> Received:
        """Read one response; stop early after `limit` body bytes."""
        try:
            head = await self._event()
        except h11.RemoteProtocolError:
            return Received(0, {}, ending="closed", ended_at=trio.current_time())
        assert isinstance(head, h11.Response), head
        got = Received(head.status_code, dict(head.headers))
        while limit is None or len(got.body) < limit:
            try:
                event = await self._event()
            except (h11.RemoteProtocolError, trio.BrokenResourceError):
                got.ending, got.ended_at = "closed", trio.current_time()
                return got
            if isinstance(event, h11.Data):
                got.body += event.data
                got.chunks.append((trio.current_time(), bytes(event.data)))
            elif isinstance(event, h11.EndOfMessage):
                got.ending, got.ended_at = "end", trio.current_time()
                return got
            else:
                got.ending, got.ended_at = "closed", trio.current_time()
                return got
        return got

    async def get(
        self,
        target: str,
        headers: list[tuple[str, str]] = (),  # type: ignore[assignment]
        *,
        limit: int | None = None,
    ) -> Received:
        await self.send("GET", target, headers)
        return await self.response(limit=limit)


@dataclass
class MemoryProxy:
    proxy: Proxy
    nursery: trio.Nursery

    @property
    def journal(self) -> Journal:
        return self.proxy.journal

    def client(self) -> Client:
        client_end, proxy_end = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self.proxy.handle, proxy_end, "127.0.0.1:50000")
        return Client(client_end)


@asynccontextmanager
async def memory_proxy(
    scenario: Scenario | str = "",
    settings: origin.OriginSettings | None = None,
    *,
    mode: str = "http",
    seed: int = 1,
) -> AsyncIterator[MemoryProxy]:
    """A proxy whose upstream is the built-in origin, all on memory streams."""
    if isinstance(scenario, str):
        scenario = scenario_of(scenario)
    origin_settings = settings or origin.OriginSettings()

    with trio.fail_after(50_000):  # virtual seconds: a test that waits forever fails
        async with _memory_proxy(scenario, origin_settings, mode, seed) as mp:
            yield mp


@asynccontextmanager
async def _memory_proxy(
    scenario: Scenario, origin_settings: origin.OriginSettings, mode: str, seed: int
) -> AsyncIterator[MemoryProxy]:
    async with trio.open_nursery() as nursery:

        async def connect() -> trio.abc.Stream:
            proxy_end, origin_end = trio.testing.memory_stream_pair()
            nursery.start_soon(origin.handle_connection, origin_end, origin_settings)
            return proxy_end

        proxy = Proxy(
            ProxySettings(Upstream("127.0.0.1", 9), mode),  # type: ignore[arg-type]
            scenario,
            Journal(keep=True),
            seed=seed,
            connector=connect,
        )
        yield MemoryProxy(proxy, nursery)
        nursery.cancel_scope.cancel()
