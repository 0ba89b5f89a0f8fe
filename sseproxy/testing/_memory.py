"""A proxy with no sockets: client stream <-> proxy <-> server handler, all in memory.

Nothing here reads the wall clock, so under `trio.testing.MockClock(autojump_threshold=0)`
a scenario of ten minutes runs in milliseconds, with exact times in the journal.

    async with memory_proxy(OriginSettings(interval=1, count=600), scenario) as mp:
        stream = await mp.connect()   # a trio.abc.Stream to the proxy
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from sseproxy import origin
from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.testing._pipe import pipe_pair
from sseproxy.testing._proxy import (
    ProxyHandle,
    ScenarioLike,
    as_scenario,
    background,
    origin_settings,
)

__all__ = ["Handler", "MemoryProxy", "memory_proxy"]

Handler = Callable[[trio.abc.Stream], Awaitable[None]]
"""A server: serves one connection on the stream it is given (then it is closed; a
Broken/ClosedResourceError when the proxy hung up is not reported)."""


class MemoryProxy(ProxyHandle):
    """A proxy on memory streams: `connect()` opens a client connection to it."""

    def __init__(self, proxy: Proxy, nursery: trio.Nursery, buffer: int) -> None:
        super().__init__(proxy)
        self._nursery = nursery
        self._buffer = buffer
        self.clients = 0
        """Client connections opened with `connect()`."""
        self.upstream_connections = 0
        """Connections the proxy opened to the server handler."""

    async def connect(self) -> trio.abc.Stream:
        """A new client connection: the proxy serves it in the background."""
        client_end, proxy_end = pipe_pair(self._buffer)
        self.clients += 1
        self._nursery.start_soon(self.proxy.handle, proxy_end, f"memory:{self.clients}")
        await trio.lowlevel.checkpoint()
        return client_end


async def _serve(handler: Handler, stream: trio.abc.Stream) -> None:
    """Run the server on one connection; the proxy going away is not its error."""
    try:
        await handler(stream)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


@asynccontextmanager
async def memory_proxy(
    upstream: origin.OriginSettings | Handler | None = None,
    scenario: ScenarioLike = None,
    *,
    mode: str = "http",
    seed: int | None = None,
    buffer: int = 64 * 1024,
    live: bool = True,
    **fields: Any,
) -> AsyncIterator[MemoryProxy]:
    """A proxy in front of `upstream`, every connection on in-memory streams.

    `upstream`: `OriginSettings` for the built-in server (None: its defaults; `fields`
    such as `interval=0.5, count=20` adjust them), or your own server as an async
    function serving one connection on a `trio.abc.Stream`. Each direction of each
    connection buffers up to `buffer` bytes, then the writer waits (like a socket).
    `live`: as for `open_proxy`.
    """
    if mode not in ("http", "tcp"):
        raise ValueError(f"mode must be 'http' or 'tcp', not {mode!r}")
    if callable(upstream):
        if fields:
            raise TypeError(f"origin fields {sorted(fields)} given with a handler")
        handler: Handler = upstream
    else:
        chosen = origin_settings(upstream, fields)

        async def handler(stream: trio.abc.Stream) -> None:
            await origin.handle_connection(stream, chosen)

    async with background() as nursery:
        handle: MemoryProxy | None = None

        async def connect() -> trio.abc.Stream:
            proxy_end, server_end = pipe_pair(buffer)
            if handle is not None:
                handle.upstream_connections += 1
            nursery.start_soon(_serve, handler, server_end)
            return proxy_end

        settings = ProxySettings(
            Upstream("memory", 80), "tcp" if mode == "tcp" else "http", live=live
        )
        proxy = Proxy(settings, as_scenario(scenario), Journal(keep=True), seed=seed)
        proxy.connector = connect
        handle = MemoryProxy(proxy, nursery, buffer)
        yield handle
