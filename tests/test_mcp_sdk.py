"""The real `mcp` SDK (PyPI) behind sseproxy: its clients, unchanged, against its own server
and against the built-in server's instances (`sseproxy.origin_mcp`), through one proxy.

What issue 13 measured behind nginx, reproduced here: a legacy SSE stream that breaks
(a sseproxy fault, or the instance restarting) leaves the client's session dead, every
later call failing at once ("Connection closed"), and the restarted instance answers
404 for the session it forgot; a Streamable HTTP client gets -32600 "Session not found";
the SDK's stateless mode survives the restart.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import httpx
import pytest

from sseproxy.origin import OriginSettings
from sseproxy.origin_mcp import serve_instances
from sseproxy.testing import BackgroundTrio, ThreadedProxy, run_proxy

mcp = pytest.importorskip("mcp")
pytest.importorskip("uvicorn")

from mcp import Client, MCPError  # noqa: E402
from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.sse import sse_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from tests.mcp_rig import SdkServer, Transport  # noqa: E402

Upstream = tuple[str, Callable[[], None]]
"""An upstream's base URL and how to restart it."""


@pytest.fixture(autouse=True)
def quiet_servers() -> Iterator[None]:
    """uvicorn and the SDK log a traceback per stream cut by a restart: expected here."""
    names = ("uvicorn.error", "mcp", "sse_starlette")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@contextmanager
def upstream(kind: str, transport: Transport) -> Iterator[Upstream]:
    """The SDK's server ("sdk") or a built-in instance ("builtin"), restartable."""
    if kind == "sdk":
        with SdkServer(transport, "sdk-1") as server:
            yield server.url, server.restart
        return
    with BackgroundTrio() as loop:
        settings = OriginSettings(heartbeat=0)
        [instance] = loop.start(serve_instances, "127.0.0.1", 0, 1, settings)
        url = f"http://127.0.0.1:{instance.port}"

        def restart() -> None:
            assert httpx.post(f"{url}/_restart", timeout=5).status_code == 200

        yield url, restart


def run(test: Callable[..., Awaitable[None]], *args: Any) -> None:
    anyio.run(test, *args, backend="asyncio")


async def echo(session: ClientSession | Client, text: str = "hi") -> str:
    result = await session.call_tool("echo", {"text": text})
    return str(result.content[0].text)  # type: ignore[union-attr]


def closed_by(proxy: ThreadedProxy, path: str) -> tuple[str, str]:
    """Who ended the exchange on `path` and why, from the journal."""
    requests = {r["conn"]: r for r in proxy.records if r["kind"] == "request"}
    [ended] = [
        r for r in proxy.records if r["kind"] == "ended" and requests[r["conn"]]["path"] == path
    ]
    return ended["by"], ended["reason"]


SESSION_STREAM_RESET = '[[faults]]\ntype = "reset"\nmatch = { path = "/sse" }\n'


@pytest.mark.parametrize("kind", ["sdk", "builtin"])
def test_legacy_sse_stream_reset_by_a_fault_kills_the_session(kind: str) -> None:
    async def client(url: str, proxy: ThreadedProxy) -> None:
        async with (
            sse_client(f"{url}/sse") as (read, write),
            ClientSession(read, write, read_timeout_seconds=5) as session,
        ):
            await session.initialize()
            assert await echo(session) == "hi"
            proxy.set_scenario(SESSION_STREAM_RESET)  # resets the open stream now
            with pytest.raises(MCPError, match="Connection closed"):
                await echo(session)
            with pytest.raises(MCPError, match="Connection closed"):
                await echo(session)  # and every later call, at once

    with upstream(kind, "sse") as (url, _), run_proxy(url) as proxy:
        run(client, proxy.url, proxy)
        proxy.wait_for_closed(1)
        assert closed_by(proxy, "/sse") == ("proxy", "reset")


@pytest.mark.parametrize("kind", ["sdk", "builtin"])
def test_legacy_sse_restart_loses_the_session(kind: str) -> None:
    async def client(url: str, restart: Callable[[], None]) -> None:
        sessions: list[str] = []
        async with (
            sse_client(f"{url}/sse", on_session_created=sessions.append) as (read, write),
            ClientSession(read, write, read_timeout_seconds=5) as session,
        ):
            await session.initialize()
            assert await echo(session) == "hi"
            restart()
            with pytest.raises(MCPError, match="Connection closed"):
                await echo(session)
        [known] = sessions
        async with httpx.AsyncClient(timeout=5) as http:
            ping = {"jsonrpc": "2.0", "id": 9, "method": "ping"}
            lost = await http.post(f"{url}/messages/?session_id={known}", json=ping)
        assert (lost.status_code, lost.text) == (404, "Could not find session")

    with upstream(kind, "sse") as (url, restart), run_proxy(url) as proxy:
        run(client, proxy.url, restart)
        proxy.wait_for_closed(1)
        assert closed_by(proxy, "/sse") == ("upstream", "upstream-closed")


@pytest.mark.parametrize("kind", ["sdk", "builtin"])
def test_streamable_restart_is_session_not_found(kind: str) -> None:
    async def client(url: str, restart: Callable[[], None]) -> None:
        async with (
            streamable_http_client(f"{url}/mcp", terminate_on_close=False) as (read, write),
            ClientSession(read, write, read_timeout_seconds=5) as session,
        ):
            await session.initialize()
            assert await echo(session) == "hi"
            restart()
            for _ in range(2):  # the client never re-initializes
                with pytest.raises(MCPError) as error:
                    await echo(session)
                assert (error.value.error.code, error.value.error.message) == (
                    -32600,
                    "Session not found",
                )

    with upstream(kind, "streamable") as (url, restart), run_proxy(url) as proxy:
        run(client, proxy.url, restart)


@pytest.mark.parametrize(
    ("transport", "mode"),
    [
        ("stateless", "legacy"),  # the server keeps no session: any instance answers
        ("streamable", "auto"),  # SDK 2.x's default Client(url): per-request, no session
    ],
)
def test_stateless_mode_survives_a_restart(transport: Transport, mode: str) -> None:
    async def client(url: str, restart: Callable[[], None]) -> None:
        async with Client(f"{url}/mcp", mode=mode, read_timeout_seconds=5) as session:
            assert await echo(session) == "hi"
            restart()
            assert await echo(session, "still") == "still"

    with upstream("sdk", transport) as (url, restart), run_proxy(url) as proxy:
        run(client, proxy.url, restart)
