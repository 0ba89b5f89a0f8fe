"""Issue 13's measured failures, with the real `mcp` SDK (PyPI) client and server behind
sseproxy's pool: three SDK server instances (a, b, c), the presets `mcp-ip-hash-failover`
and `mcp-hash-by-session` at time scale 0.4, and one member restarted live (the restart
fault's `on_restart` restarts that SDK server: it forgets its sessions).

- ip_hash, legacy SSE: the restart breaks the stream, later calls fail at once
  ("Connection closed"); a new session opened while the member is down lands on another
  one; once `fail_timeout` is over the POSTs go back to the restarted member, which
  answers 404 (the SDK only logs it: the call times out). `report` names it.
- ip_hash, Streamable HTTP (stateful): -32600 "Session not found" on every call.
- hash on the session id: the first request has no id, so the session is born on the
  member the empty key hashes to (b) and its first request with the id goes elsewhere:
  legacy `initialize` times out, Streamable gets -32600 on the first call.
- stateless mode (the SDK's `stateless_http=True`) carries on through the restart.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import anyio
import pytest
import trio

from sseproxy.balance import Ring
from sseproxy.report import analyse
from sseproxy.report.reader import build
from sseproxy.report.sessions import BORN_ELSEWHERE, MOVED
from sseproxy.scenario import load_scenario
from sseproxy.testing import ThreadedProxy, run_proxy

mcp = pytest.importorskip("mcp")
pytest.importorskip("uvicorn")

from mcp import Client, MCPError  # noqa: E402
from mcp.client.session import ClientSession  # noqa: E402
from mcp.client.sse import sse_client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp.shared._httpx_utils import create_mcp_http_client  # noqa: E402

from tests.mcp_rig import SdkServer, Transport  # noqa: E402

SCALE = 0.4
"""The presets' times (fail_timeout 5s, downtime 2s) at 0.4: 2 s and 0.8 s."""
TO_C = {"X-Forwarded-For": "10.0.2.1"}
"""ip_hash (nginx's arithmetic) sends 10.0.2.x to member c of a, b, c."""


@pytest.fixture(autouse=True)
def quiet_servers() -> Iterator[None]:
    """uvicorn and the SDK log a traceback per stream cut by a restart: expected here."""
    names = ("uvicorn.error", "mcp", "sse_starlette", "httpx2")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def preset_text(name: str, servers: dict[str, SdkServer], restart_at: str) -> str:
    """The preset, its members on the SDK servers, its restart at `restart_at`."""
    path = load_scenario(name).path
    assert path is not None
    with open(path, encoding="utf-8") as file:
        text = file.read()
    text = re.sub(r'restart_url = ".*"\n', "", text)  # on_restart restarts them here
    for k, member in enumerate("abc"):
        text = text.replace(f'"http://127.0.0.1:900{k + 1}"', f'"{servers[member].url}"')
    return text.replace('window = { from = "20s" }', f'window = {{ from = "{restart_at}" }}')


@contextmanager
def sdk_pool(transport: Transport, preset: str) -> Iterator[tuple[ThreadedProxy, Restarter]]:
    """Three SDK servers a, b, c behind the preset's pool (its restart not yet due)."""
    with ExitStack() as stack:
        servers = {m: stack.enter_context(SdkServer(transport, m)) for m in "abc"}

        async def on_restart(member: str) -> None:
            await trio.to_thread.run_sync(servers[member].restart)

        proxy = stack.enter_context(
            run_proxy(
                scenario=preset_text(preset, servers, "100000s"),
                client_ip_from="X-Forwarded-For",
                on_restart=on_restart,
                time_scale=SCALE,
            )
        )
        yield proxy, Restarter(proxy, preset, servers)


class Restarter:
    def __init__(self, proxy: ThreadedProxy, preset: str, servers: dict[str, SdkServer]) -> None:
        self.proxy, self.preset, self.servers = proxy, preset, servers

    def now(self) -> None:
        """The preset's restart, due now (scenario time, as written: unscaled)."""
        proxy = self.proxy.handle.proxy
        at = self.proxy.loop.run_sync(lambda: trio.current_time() - proxy.plan.started)
        self.proxy.set_scenario(preset_text(self.preset, self.servers, f"{at / SCALE:.3f}s"))


def run(test: Callable[..., Awaitable[None]], *args: Any) -> None:
    anyio.run(test, *args, backend="asyncio")


async def call(session: ClientSession | Client, tool: str = "echo") -> str:
    result = await session.call_tool(tool, {"text": "hi"} if tool == "echo" else {})
    return str(result.content[0].text)  # type: ignore[union-attr]


def session_losses(proxy: ThreadedProxy) -> list[tuple[str, str]]:
    """`report`'s SESSIONS LOST rows: (cause, 'lived -> unknown' moves)."""
    journals = build([("mem", [json.dumps(record) for record in proxy.records])])
    return [(row.cause, row.top_moves) for row in analyse(journals).sessions_lost]


def lost_404s(proxy: ThreadedProxy) -> list[tuple[str, str]]:
    """(member, path) of every request answered 404."""
    paths: dict[str, str] = {}
    members: dict[str, str] = {}
    lost = []
    for record in proxy.records:
        conn = str(record.get("conn"))
        if record["kind"] == "request":
            paths[conn], members[conn] = record["path"], "?"
        elif record["kind"] == "upstream":
            members[conn] = str(record.get("member"))
        elif record["kind"] == "response" and record.get("status") == 404:
            lost.append((members[conn], paths[conn]))
    return lost


def test_legacy_sse_behind_ip_hash_one_restart_costs_two_sessions() -> None:
    async def client(proxy: ThreadedProxy, restart: Restarter) -> None:
        url = f"{proxy.url}/sse"
        async with (
            sse_client(url, headers=TO_C) as (read, write),
            ClientSession(read, write, read_timeout_seconds=5) as session,
        ):
            await session.initialize()
            assert await call(session, "instance") == "c"
            restart.now()  # c's stream breaks mid-body; c is down for 0.8 s
            for _ in range(2):  # the client never reconnects: every call fails at once
                with pytest.raises(MCPError, match="Connection closed"):
                    await call(session)
        async with (
            sse_client(url, headers=TO_C) as (read, write),
            ClientSession(read, write, read_timeout_seconds=1) as session,
        ):
            await session.initialize()  # c refused: ip_hash re-hashed to another member
            moved = await call(session, "instance")
            assert moved != "c"
            assert {r["member"] for r in proxy.of_kind("upstream-failed")} == {"c"}
            # c is skipped for fail_timeout (2 s here) after it failed, then tried again
            pool = proxy.handle.proxy.balancer.pool
            assert pool.members[2].fail_timeout == 5 * SCALE
            for _ in range(3):  # a connect that waited on the restart may fail later
                back = proxy.loop.run_sync(lambda: pool.state("c").checked - trio.current_time())
                if back + 5 * SCALE < 0:
                    break
                await anyio.sleep(back + 5 * SCALE + 0.05)
            with pytest.raises(MCPError, match="Request 'tools/call' timed out"):
                await call(session)  # the POST went to c: 404, which the SDK only logs

    with sdk_pool("sse", "mcp-ip-hash-failover") as (proxy, restart):
        run(client, proxy, restart)
        assert [r["member"] for r in proxy.of_kind("member-restarted")] == ["c"]
        [cut] = [r for r in proxy.of_kind("ended") if r["conn"] == "c1"]  # the first GET /sse
        assert (cut["by"], cut["reason"]) == ("proxy", "instance-restart")
        assert ("c", "/messages/") in lost_404s(proxy)
        [(cause, moves)] = session_losses(proxy)
        assert cause == MOVED == "stream resumed on another upstream; session unknown there"
        assert "-> c" in moves


def test_streamable_stateful_behind_ip_hash_gets_session_not_found() -> None:
    async def client(proxy: ThreadedProxy, restart: Restarter) -> None:
        async with (
            create_mcp_http_client(headers=TO_C) as http,
            streamable_http_client(
                f"{proxy.url}/mcp", http_client=http, terminate_on_close=False
            ) as (read, write),
            ClientSession(read, write, read_timeout_seconds=5) as session,
        ):
            await session.initialize()
            assert await call(session, "instance") == "c"
            restart.now()
            for _ in range(2):  # the client never re-initializes
                with pytest.raises(MCPError) as error:
                    await call(session)
                assert (error.value.error.code, error.value.error.message) == (
                    -32600,
                    "Session not found",
                )

    with sdk_pool("streamable", "mcp-ip-hash-failover") as (proxy, restart):
        run(client, proxy, restart)
        assert all(path == "/mcp" for _, path in lost_404s(proxy))
        [(cause, moves)] = session_losses(proxy)
        assert cause == MOVED and moves.startswith("c -> ")


def first_member(session_id: str) -> str:
    """Where `hash ... consistent` sends a request that carries `session_id`."""
    return "abc"[Ring(list("abc"), [1, 1, 1]).walk(session_id)[0]]


def test_hash_by_session_legacy_initialize_times_out() -> None:
    async def client(proxy: ThreadedProxy) -> None:
        for _ in range(12):  # a session whose id hashes to b (1 in 3) works: another one
            sessions: list[str] = []
            async with (
                sse_client(f"{proxy.url}/sse", on_session_created=sessions.append) as (r, w),
                ClientSession(r, w, read_timeout_seconds=1) as session,
            ):
                [opened] = sessions  # GET /sse had no session id: it hashed "" to b
                if first_member(opened) == "b":
                    continue
                with pytest.raises(MCPError, match="Request 'initialize' timed out"):
                    await session.initialize()
                return
        pytest.fail("no session id hashed away from b")

    with sdk_pool("sse", "mcp-hash-by-session") as (proxy, _):
        run(client, proxy)
        assert ("b", "/sse") not in lost_404s(proxy)
        [(cause, moves)] = session_losses(proxy)
        assert cause == BORN_ELSEWHERE and moves.startswith("b -> ")


def test_hash_by_session_streamable_fails_on_the_first_call() -> None:
    async def client(proxy: ThreadedProxy) -> None:
        for _ in range(12):
            async with (
                streamable_http_client(f"{proxy.url}/mcp", terminate_on_close=False) as (r, w),
                ClientSession(r, w, read_timeout_seconds=5) as session,
            ):
                await session.initialize()  # no Mcp-Session-Id yet: hashed "" to b
                try:
                    assert await call(session, "instance") == "b"  # its id hashed to b too
                except MCPError as error:
                    assert (error.error.code, error.error.message) == (-32600, "Session not found")
                    return
        pytest.fail("no session id hashed away from b")

    with sdk_pool("streamable", "mcp-hash-by-session") as (proxy, _):
        run(client, proxy)
        [(cause, moves)] = session_losses(proxy)
        assert cause == BORN_ELSEWHERE and moves.startswith("b -> ")


@pytest.mark.parametrize(
    ("transport", "mode"),
    [
        ("stateless", "legacy"),  # the server keeps no session: any instance answers
        ("streamable", "auto"),  # SDK 2.x's default Client(url): per-request, no session
    ],
)
def test_stateless_mode_behind_ip_hash_survives_the_restart(
    transport: Transport, mode: str
) -> None:
    async def client(proxy: ThreadedProxy, restart: Restarter) -> None:
        async with Client(f"{proxy.url}/mcp", mode=mode, read_timeout_seconds=5) as session:
            assert await call(session, "instance") == "c"  # 127.0.0.1: ip_hash sends it to c
            restart.now()
            for _ in range(3):  # while c is down, and after
                assert await call(session) == "hi"

    with sdk_pool(transport, "mcp-ip-hash-failover") as (proxy, restart):
        run(client, proxy, restart)
        assert [r["member"] for r in proxy.of_kind("member-restarted")] == ["c"]
        assert session_losses(proxy) == []
