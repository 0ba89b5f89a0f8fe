"""An idle stream keeps little (issue 10: at most 16 KiB per idle stream at 5,000 streams).

What an idle stream holds is mostly trio's: tasks, nurseries, cancel scopes, and the frames
of every coroutine above the read that waits. These tests pin down how many of each a
stream keeps, and that it keeps neither the client's request nor the upstream's h11
connection, so that a change that brings one back fails here rather than only in
`benchmarks/run.py --workloads memory`.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from types import FrameType

import h11
import trio
import trio.testing

from sseproxy.connection import Connection
from sseproxy.http import HttpConnection, UpstreamCall
from sseproxy.origin import OriginSettings
from sseproxy.tcp import TcpConnection
from tests.harness import Client, MemoryProxy, memory_proxy

IDLE = OriginSettings(interval=3600, heartbeat=3600)


async def open_idle(mp: MemoryProxy, streams: int) -> list[Client]:
    """`streams` SSE streams, each past its first event and then idle."""
    clients = [mp.client() for _ in range(streams)]
    for client in clients:
        assert (await client.get("/events", limit=1)).status == 200
    await trio.testing.wait_all_tasks_blocked()
    return clients


def tasks_below(task: trio.lowlevel.Task) -> Iterator[trio.lowlevel.Task]:
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            yield child
            yield from tasks_below(child)


def nurseries_below(task: trio.lowlevel.Task) -> Iterator[trio.Nursery]:
    for nursery in task.child_nurseries:
        yield nursery
        for child in nursery.child_tasks:
            yield from nurseries_below(child)


def connection_tasks() -> dict[Connection, trio.lowlevel.Task]:
    """Each connection's own task (`Proxy.handle`), by connection."""
    root = trio.lowlevel.current_root_task()
    assert root is not None
    found = {}
    for task in tasks_below(root):
        if task.coro.cr_code.co_qualname == "Proxy.handle":
            for frame in frames(task):
                if frame.f_code.co_qualname == "Connection.run":
                    found[frame.f_locals["self"]] = task
    return found


def frames(task: trio.lowlevel.Task) -> list[FrameType]:
    """The frames of a waiting task, outermost first."""
    stack = []
    awaited: object = task.coro
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        stack.append(frame)
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return stack


def ours(task: trio.lowlevel.Task) -> list[str]:
    return [f.f_code.co_qualname for f in frames(task) if "/sseproxy/" in f.f_code.co_filename]


def holds_a_request(task: trio.lowlevel.Task) -> bool:
    return any(isinstance(v, h11.Request) for f in frames(task) for v in f.f_locals.values())


async def test_an_idle_http_stream_keeps_two_tasks_one_nursery_and_few_frames(
    autojump_clock: object,
) -> None:
    async with memory_proxy(settings=IDLE) as mp:
        await open_idle(mp, 3)
        found = connection_tasks()
        assert len(found) == 3
        for conn, task in found.items():
            assert isinstance(conn, HttpConnection)
            children = list(tasks_below(task))
            assert [t.name for t in children] == ["sseproxy.http.HttpConnection._watch_client"]
            assert len(list(nurseries_below(task))) == 1
            stack = ours(task)
            # Proxy.handle, Connection.run, HttpConnection.serve, HttpConnection.exchange,
            # run_link, pump, ChunkedBody.read: nothing that only passes a read through
            assert len(stack) <= 7, stack
            assert "UpstreamCall.receive_some" not in stack
            assert not any(holds_a_request(t) for t in [task, *children])
            assert not conn.links  # faults cannot change live: no sets to join


async def test_an_upstream_call_lets_go_of_the_request_and_of_h11_for_a_chunked_body(
    autojump_clock: object,
) -> None:
    async with memory_proxy(settings=IDLE) as mp:
        await open_idle(mp, 2)
        gc.collect()
        calls = [o for o in gc.get_objects() if type(o) is UpstreamCall]
        calls = [call for call in calls if call.client.proxy is mp.proxy]
        assert len(calls) == 2
        for call in calls:
            assert call.body is not None  # chunked: read without h11
            assert (call.conn, call.request) == (None, None)
            assert call.method == b"GET"


async def test_an_idle_tcp_stream_runs_down_in_the_connections_task(
    autojump_clock: object,
) -> None:
    async with memory_proxy(settings=IDLE, mode="tcp") as mp:
        await open_idle(mp, 2)
        found = connection_tasks()
        assert len(found) == 2
        for conn, task in found.items():
            assert isinstance(conn, TcpConnection)
            (nursery,) = nurseries_below(task)
            assert conn.scope is nursery.cancel_scope  # no cancel scope of its own
            assert [t.name for t in tasks_below(task)] == ["sseproxy.tcp.TcpConnection._direction"]
            stack = ours(task)
            # Proxy.handle, Connection.run, TcpConnection.serve, TcpConnection._direction,
            # run_link, pump
            assert len(stack) <= 6, stack
            assert "TcpConnection._direction" in stack


async def test_a_tcp_connection_killed_ends_both_directions(autojump_clock: object) -> None:
    async with memory_proxy(settings=IDLE, mode="tcp") as mp:
        (client,) = await open_idle(mp, 1)
        mp.proxy.live["c1"].kill()
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["reason"]) == ("proxy", "killed")
        assert await client.stream.receive_some() == b""
        await trio.testing.wait_all_tasks_blocked()
        assert not connection_tasks()


async def test_a_tcp_connection_killed_as_it_opens_ends_at_once(autojump_clock: object) -> None:
    """Killed from a journal subscriber on its `opened` record: before `serve` made the
    nursery whose cancel scope `kill` cancels (the kill still ends it at once)."""
    async with memory_proxy(settings=IDLE, mode="tcp") as mp:

        def kill_on_open(record: dict[str, object]) -> None:
            if record["kind"] == "opened":
                mp.proxy.live[str(record["conn"])].kill()

        mp.journal.subscribe(kill_on_open)
        client = mp.client()
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["reason"], closed["duration"]) == ("proxy", "killed", 0)
        assert await client.stream.receive_some() == b""
