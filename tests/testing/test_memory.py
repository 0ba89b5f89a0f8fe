"""`memory_proxy`: client <-> proxy <-> server on memory streams, in virtual time."""

from __future__ import annotations

import time

import h11
import pytest
import trio

from sseproxy.link import CHUNK, MAX_IN_FLIGHT
from sseproxy.testing import OriginSettings, memory_proxy
from tests.testing.clients import get_events, reconnecting_client

LIFETIME_60S = "[[faults]]\ntype = 'lifetime'\nlimit = '60s'\n"


async def test_a_ten_minute_scenario_runs_in_virtual_time(autojump_clock: object) -> None:
    wall, start = time.monotonic(), trio.current_time()
    origin = OriginSettings(interval=1, heartbeat=0, count=600)
    async with memory_proxy(origin, LIFETIME_60S) as proxy:
        ids = await reconnecting_client(proxy.connect, want=600, retry=0.5)
        closed = await proxy.wait_for_closed(10)
    assert ids == list(range(1, 601))
    assert [record["duration"] for record in closed[:9]] == [60.0] * 9  # exact times
    assert trio.current_time() - start > 600
    assert time.monotonic() - wall < 5
    assert proxy.upstream_connections == 10  # 60 events each


async def test_your_own_server_as_a_handler(autojump_clock: object) -> None:
    async def server(stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER)
        while type(conn.next_event()) is not h11.Request:
            conn.receive_data(bytes(await stream.receive_some()))
        head = h11.Response(status_code=200, headers=[("content-type", "text/event-stream")])
        await stream.send_all(conn.send(head) or b"")
        for n in range(1, 4):
            await trio.sleep(10)
            await stream.send_all(conn.send(h11.Data(data=f"id: {n}\ndata: x\n\n".encode())))
        await stream.send_all(conn.send(h11.EndOfMessage()) or b"")

    async with memory_proxy(
        server, "[[faults]]\ntype = 'slicer'\nsize = '3B'\nvariation = '0B'\n"
    ) as proxy:
        got = await get_events(await proxy.connect())
    assert [event.id for event in got.events] == ["1", "2", "3"]
    assert len(got.chunks) > 6  # sliced
    assert trio.current_time() >= 30


async def test_a_client_that_stops_reading_pushes_back(autojump_clock: object) -> None:
    sent = 0

    async def firehose(stream: trio.abc.Stream) -> None:
        nonlocal sent
        await stream.receive_some()
        head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n"
        await stream.send_all(head)
        while True:
            await stream.send_all(b"data: " + b"x" * 1000 + b"\n\n")
            sent += 1008

    scenario = "[[faults]]\ntype = 'send-timeout'\ntimeout = '5s'\n"
    async with memory_proxy(firehose, scenario, buffer=16 * 1024) as proxy:
        client = await proxy.connect()
        await client.send_all(b"GET /events HTTP/1.1\r\nhost: x\r\n\r\n")
        [closed] = await proxy.wait_for_closed(1)  # the client never reads
    assert sent < MAX_IN_FLIGHT + CHUNK + 64 * 1024  # bounded: the proxy's limit, buffers
    assert closed["by"] == "proxy" and trio.current_time() >= 5
    assert [r["fault"] for r in proxy.of_kind("fault")] == ["send-timeout"]


async def test_set_scenario_and_waits_work_in_memory(autojump_clock: object) -> None:
    origin = OriginSettings(interval=0, heartbeat=0, count=5)
    async with memory_proxy(origin) as proxy:
        assert len((await get_events(await proxy.connect())).events) == 5
        proxy.set_scenario("[[faults]]\ntype = 'cut'\nevents = 1\n")
        assert len((await get_events(await proxy.connect())).events) == 1
        assert len(await proxy.wait_for_connections(2)) == 2


async def test_origin_fields_adjust_the_builtin_server() -> None:
    async with memory_proxy(interval=0, heartbeat=0, count=2) as proxy:
        assert [e.id for e in (await get_events(await proxy.connect())).events] == ["1", "2"]


async def test_bad_arguments() -> None:
    async def handler(stream: trio.abc.Stream) -> None:
        pass

    with pytest.raises(TypeError, match="origin fields"):
        async with memory_proxy(handler, count=3):
            pass
    with pytest.raises(ValueError, match="mode must be"):
        async with memory_proxy(mode="udp"):
            pass
