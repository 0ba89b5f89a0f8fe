"""The built-in server's MCP-style endpoints and instances (`sseproxy.origin_mcp`), over
memory streams in virtual time; instances on real ports; `serve --instances`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import h11
import httpx
import pytest
import trio
import trio.testing

from sseproxy.mcp_rpc import answer
from sseproxy.origin import OriginSettings
from sseproxy.origin_mcp import Instance, _loopback, serve_instances
from sseproxy.testing import parse_sse
from tests.subprocesses import Lines

JSON_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def rpc(method: str, ident: int | None = 1, **params: Any) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if ident is not None:
        message["id"] = ident
    if params:
        message["params"] = params
    return json.dumps(message).encode()


class Conn:
    """One client connection to an instance over a memory stream, spoken with h11."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def request(
        self, method: str, target: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> h11.Response:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        head = [("Host", "t"), ("Content-Length", str(len(body)))]
        head += list((headers or {}).items())
        data = self.conn.send(h11.Request(method=method, target=target, headers=head)) or b""
        data += self.conn.send(h11.Data(data=body)) if body else b""
        data += self.conn.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(data)
        response = await self.next_event()
        assert isinstance(response, h11.Response)
        return response

    async def next_event(self) -> h11.Event:
        while not isinstance(event := self.conn.next_event(), h11.Event):
            self.conn.receive_data(bytes(await self.stream.receive_some(65536)))
        return event

    async def body(self) -> bytes:
        data = b""
        while isinstance(event := await self.next_event(), h11.Data):
            data += event.data
        assert isinstance(event, h11.EndOfMessage)
        return data

    async def chunk(self) -> bytes:
        """The next piece of a streaming body; b"" when the connection ended without the
        end of the body (a close, as a restarted process leaves it)."""
        try:
            event = await self.next_event()
        except h11.RemoteProtocolError:
            return b""
        assert isinstance(event, h11.Data), event
        return bytes(event.data)


@asynccontextmanager
async def instance_rig(
    settings: OriginSettings | None = None,
) -> AsyncIterator[tuple[Instance, Any]]:
    instance = Instance("i1", settings or OriginSettings(interval=1, heartbeat=0))
    async with trio.open_nursery() as nursery:

        def connect() -> Conn:
            client, server = trio.testing.memory_stream_pair()
            nursery.start_soon(instance.handle_connection, server)
            return Conn(client)

        yield instance, connect
        nursery.cancel_scope.cancel()


def header(response: h11.Response, name: str) -> str:
    return dict(response.headers)[name.lower().encode()].decode()


# -- legacy HTTP+SSE ---------------------------------------------------------------------


async def test_legacy_sse_endpoint_event_then_responses_on_the_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with instance_rig() as (instance, connect):
        stream = connect()
        head = await stream.request("GET", "/sse")
        assert head.status_code == 200
        assert header(head, "content-type").startswith("text/event-stream")
        [endpoint] = parse_sse(await stream.chunk())
        assert endpoint.type == "endpoint"
        assert re.fullmatch(r"/messages/\?session_id=[0-9a-f]{32}", endpoint.data)
        posts = connect()
        accepted = await posts.request("POST", endpoint.data, rpc("initialize"), JSON_HEADERS)
        assert (accepted.status_code, await posts.body()) == (202, b"Accepted")
        [message] = parse_sse(await stream.chunk())
        assert message.type == "message"
        result = json.loads(message.data)["result"]
        assert result["serverInfo"]["name"] == "sseproxy-origin i1"
        assert result["protocolVersion"] == "2025-11-25"
        call = rpc("tools/call", 2, name="echo", arguments={"text": "hi"})
        assert (await posts.request("POST", endpoint.data, call)).status_code == 202
        await posts.body()
        [message] = parse_sse(await stream.chunk())
        assert json.loads(message.data) == {
            "jsonrpc": "2.0",
            "id": 2,
            "result": {"content": [{"type": "text", "text": "hi"}], "isError": False},
        }
        notification = rpc("notifications/initialized", None)
        assert (await posts.request("POST", endpoint.data, notification)).status_code == 202
        assert instance.sessions == 1


@pytest.mark.parametrize(
    ("target", "body", "status", "text"),
    [
        ("/messages/?session_id=" + "0" * 32, rpc("ping"), 404, b"Could not find session"),
        ("/messages/", rpc("ping"), 400, b"session_id is required"),
        ("/messages/?session_id=xyz", rpc("ping"), 400, b"Invalid session ID"),
    ],
)
async def test_legacy_posts_without_a_known_session(
    autojump_clock: trio.testing.MockClock, target: str, body: bytes, status: int, text: bytes
) -> None:
    async with instance_rig() as (_, connect):
        posts = connect()
        response = await posts.request("POST", target, body)
        assert (response.status_code, await posts.body()) == (status, text)


async def test_a_legacy_session_ends_with_its_stream(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with instance_rig() as (instance, connect):
        stream = connect()
        await stream.request("GET", "/sse")
        [endpoint] = parse_sse(await stream.chunk())
        await stream.stream.aclose()
        await trio.sleep(0.1)
        assert instance.sessions == 0
        posts = connect()
        response = await posts.request("POST", endpoint.data, rpc("ping"))
        assert response.status_code == 404


async def test_restart_forgets_sessions_and_drops_streams_without_their_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with instance_rig() as (_, connect):
        stream = connect()
        await stream.request("GET", "/sse")
        [endpoint] = parse_sse(await stream.chunk())
        admin = connect()
        response = await admin.request("POST", "/_restart")
        assert (response.status_code, await admin.body()) == (
            200,
            b"restarted i1: forgot 1 session\n",
        )
        assert await stream.chunk() == b""  # closed, no terminating chunk
        posts = connect()
        assert (await posts.request("POST", endpoint.data, rpc("ping"))).status_code == 404
        about = connect()
        await about.request("GET", "/_instance")
        assert json.loads(await about.body()) == {
            "name": "i1",
            "port": 0,
            "sessions": 0,
            "restarts": 1,
        }


def test_restart_is_for_loopback_clients_only() -> None:
    class Peer:
        def __init__(self, address: str) -> None:
            self.socket = self
            self.address = address

        def getpeername(self) -> tuple[str, int]:
            return (self.address, 1234)

    assert _loopback(Peer("127.0.0.1"))  # type: ignore[arg-type]
    assert _loopback(Peer("::1"))  # type: ignore[arg-type]
    assert not _loopback(Peer("10.1.2.3"))  # type: ignore[arg-type]


# -- Streamable HTTP ---------------------------------------------------------------------


async def initialize(connect: Any) -> tuple[Conn, str]:
    posts = connect()
    response = await posts.request("POST", "/mcp", rpc("initialize"), JSON_HEADERS)
    assert response.status_code == 200
    assert json.loads(await posts.body())["result"]["capabilities"]["tools"]
    return posts, header(response, "mcp-session-id")


async def test_streamable_sessions(autojump_clock: trio.testing.MockClock) -> None:
    async with instance_rig() as (instance, connect):
        posts, session = await initialize(connect)
        assert re.fullmatch(r"[0-9a-f]{32}", session)
        with_id = {**JSON_HEADERS, "mcp-session-id": session}
        response = await posts.request(
            "POST", "/mcp", rpc("tools/call", 2, name="instance"), with_id
        )
        assert header(response, "mcp-session-id") == session
        reply = json.loads(await posts.body())
        assert reply["result"]["content"][0]["text"] == "i1"
        note = rpc("notifications/initialized", None)
        assert (await posts.request("POST", "/mcp", note, with_id)).status_code == 202
        await posts.body()
        unknown = await posts.request(
            "POST", "/mcp", rpc("ping", 3), {**with_id, "mcp-session-id": "x"}
        )
        assert unknown.status_code == 404
        assert json.loads(await posts.body()) == {
            "jsonrpc": "2.0",
            "id": None,
            "error": {"code": -32600, "message": "Session not found"},
        }
        missing = await posts.request("POST", "/mcp", rpc("ping", 4), JSON_HEADERS)
        assert missing.status_code == 400
        assert b"Missing session ID" in await posts.body()
        assert (await posts.request("DELETE", "/mcp", b"", with_id)).status_code == 200
        await posts.body()
        assert (await posts.request("POST", "/mcp", rpc("ping", 5), with_id)).status_code == 404
        await posts.body()
        assert instance.sessions == 0


async def test_streamable_get_resumes_after_last_event_id(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with instance_rig() as (_, connect):
        start = trio.current_time()
        _, session = await initialize(connect)
        sse = {"accept": "text/event-stream", "mcp-session-id": session}
        first = connect()
        assert (await first.request("GET", "/mcp", b"", sse)).status_code == 200
        got = []
        for _ in range(2):
            [event] = parse_sse(await first.chunk())
            got.append((event.id, round(trio.current_time() - start, 3)))
            assert json.loads(event.data)["method"] == "notifications/message"
        assert got == [("1", 1.0), ("2", 2.0)]
        second = connect()
        conflict = await second.request("GET", "/mcp", b"", sse)
        assert conflict.status_code == 409
        await second.body()
        await first.stream.aclose()
        await trio.sleep_until(start + 4.5)
        resumed = connect()
        head = await resumed.request("GET", "/mcp", b"", {**sse, "last-event-id": "2"})
        assert head.status_code == 200
        got = []
        while len(got) < 3:
            for event in parse_sse(await resumed.chunk()):
                got.append((event.id, round(trio.current_time() - start, 3)))
        assert got == [("3", 4.5), ("4", 4.5), ("5", 5.0)]


async def test_streamable_after_restart_is_session_not_found(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with instance_rig() as (instance, connect):
        posts, session = await initialize(connect)
        instance.restart()
        posts = connect()
        with_id = {**JSON_HEADERS, "mcp-session-id": session}
        response = await posts.request("POST", "/mcp", rpc("ping", 2), with_id)
        assert response.status_code == 404
        assert json.loads(await posts.body())["error"]["code"] == -32600


# -- instances on real ports ---------------------------------------------------------------


async def test_instances_have_their_own_ports_and_sessions() -> None:
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            settings = OriginSettings(heartbeat=0)
            instances = await nursery.start(serve_instances, "127.0.0.1", 0, 3, settings)
            assert [i.name for i in instances] == ["i1", "i2", "i3"]
            assert len({i.port for i in instances}) == 3
            one, two = (f"http://127.0.0.1:{i.port}/mcp" for i in instances[:2])

            def calls() -> tuple[int, int]:
                with httpx.Client(timeout=5, headers=JSON_HEADERS) as client:
                    opened = client.post(one, content=rpc("initialize"))
                    ids = {"mcp-session-id": opened.headers["mcp-session-id"]}
                    there = client.post(two, content=rpc("ping", 2), headers=ids)
                    here = client.post(one, content=rpc("ping", 2), headers=ids)
                    return there.status_code, here.status_code

            assert await trio.to_thread.run_sync(calls) == (404, 200)
            nursery.cancel_scope.cancel()


def test_serve_instances_prints_each_instance() -> None:
    command = [sys.executable, "-m", "sseproxy", "serve", "--listen", "127.0.0.1:0"]
    with subprocess.Popen([*command, "--instances", "2"], stdout=subprocess.PIPE, text=True) as p:
        try:
            assert p.stdout is not None
            lines = Lines(p.stdout)
            ports = [
                lines.wait_for(
                    rf"^serving SSE on http://127\.0\.0\.1:(\d+)/events \(instance {n}\)$"
                )[1]
                for n in ("i1", "i2")
            ]
            lines.wait_for(r"^MCP: GET /sse")
            assert len(set(ports)) == 2
            restarted = httpx.post(f"http://127.0.0.1:{ports[1]}/_restart", timeout=5)
            assert restarted.text == "restarted i2: forgot 0 sessions\n"
        finally:
            p.terminate()
            p.wait(timeout=10)


async def test_streamable_get_with_interval_0_sends_no_notifications(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with instance_rig(OriginSettings(interval=0, heartbeat=0)) as (_, connect):
        _, session = await initialize(connect)
        stream = connect()
        sse = {"accept": "text/event-stream", "mcp-session-id": session}
        assert (await stream.request("GET", "/mcp", b"", sse)).status_code == 200
        with trio.move_on_after(3600) as waited:
            await stream.chunk()
        assert waited.cancelled_caught


# -- the JSON-RPC answers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"method": "ping", "id": 7}, {"result": {}}),
        (
            {"method": "resources/list", "id": 7},
            {"error": {"code": -32601, "message": "Method not found"}},
        ),
        (
            {"method": "tools/call", "id": 7, "params": {"name": "nope"}},
            {"error": {"code": -32602, "message": "Unknown tool: nope"}},
        ),
        ({"method": "notifications/initialized"}, None),
        ({"id": 7, "result": {}}, None),  # a client's response to a server request
    ],
)
def test_answers(message: dict[str, Any], expected: dict[str, Any] | None) -> None:
    reply = answer({"jsonrpc": "2.0", **message}, "i1")
    assert reply == (None if expected is None else {"jsonrpc": "2.0", "id": 7, **expected})


def test_initialize_keeps_a_handshake_version_and_counters_others() -> None:
    def version(asked: str) -> str:
        reply = answer(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"protocolVersion": asked},
            },
            "i1",
        )
        assert reply is not None
        return str(reply["result"]["protocolVersion"])

    assert version("2025-03-26") == "2025-03-26"
    assert version("2026-07-28") == "2025-11-25"
