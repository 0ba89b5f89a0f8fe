"""Admission at accept: the connection cap, the proxy's own shortage of descriptors, and
`refuse` decided before a byte is read. Memory streams, virtual time."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest
import trio
import trio.testing

from sseproxy import origin, server
from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.report import reader
from sseproxy.report.causes import EXPLANATIONS, explain
from sseproxy.transport import UpstreamError, connect
from tests.harness import MemoryProxy, memory_proxy, scenario_of

STREAMING = origin.OriginSettings(interval=1, heartbeat=0)


@contextmanager
def counting_connects(proxy: Proxy) -> Iterator[list[float]]:
    """The times at which the proxy contacted its upstream."""
    calls: list[float] = []
    connect = proxy.connector
    assert connect is not None

    async def recording() -> trio.abc.Stream:
        calls.append(trio.current_time())
        return await connect()

    proxy.connector = recording
    yield calls


def closed_of(mp: MemoryProxy, conn: str) -> dict[str, object]:
    (closed,) = [r for r in mp.journal.of_kind("closed") if r["conn"] == conn]
    return closed


# -- the connection cap ----------------------------------------------------------------------


async def test_past_max_connections_http_gets_503_and_the_upstream_is_not_contacted(
    autojump_clock: object,
) -> None:
    async with memory_proxy(settings=STREAMING) as mp:
        mp.proxy.settings = replace(mp.proxy.settings, max_connections=2)
        with counting_connects(mp.proxy) as connects:
            first, second = mp.client(), mp.client()
            for client in (first, second):
                assert (await client.get("/events", limit=1)).status == 200
            third = await mp.client().get("/events")
            assert (third.status, third.ending) == (503, "end")
            assert b"2 connections open (--max-connections)" in third.body
            assert len(connects) == 2
            await mp.journal.wait_for("closed")
            closed = closed_of(mp, "c3")
            assert (closed["by"], closed["reason"]) == ("proxy", "proxy-overloaded")
            assert closed["bytes_down"] == 0
            responses = [r for r in mp.journal.of_kind("response") if r["conn"] == "c3"]
            assert [(r["status"], r["origin"]) for r in responses] == [(503, "proxy")]
            await first.stream.aclose()  # room again: the next client is served
            await mp.journal.wait_for("closed", 2)
            await trio.testing.wait_all_tasks_blocked()
            assert (await mp.client().get("/events", limit=1)).status == 200


async def test_the_503_waits_for_the_request_so_the_close_is_clean(autojump_clock: object) -> None:
    """A lingering close: the client's request is read (and dropped) after the answer."""
    async with memory_proxy(settings=STREAMING) as mp:
        mp.proxy.settings = replace(mp.proxy.settings, max_connections=1)
        assert (await mp.client().get("/events", limit=1)).status == 200
        late = mp.client()
        answer = await late.stream.receive_some()  # before sending anything
        assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        await late.stream.send_all(b"GET /events HTTP/1.1\r\nhost: test\r\n\r\n")
        while await late.stream.receive_some():  # then the end, within LINGER
            pass
        assert trio.current_time() <= 1.0


async def test_past_max_connections_tcp_closes_at_once(autojump_clock: object) -> None:
    async with memory_proxy(settings=STREAMING, mode="tcp") as mp:
        mp.proxy.settings = replace(mp.proxy.settings, max_connections=1)
        with counting_connects(mp.proxy) as connects:
            assert (await mp.client().get("/events", limit=1)).status == 200
            refused = mp.client()
            assert await refused.stream.receive_some() == b""
            assert trio.current_time() == 0.0
            await mp.journal.wait_for("closed")
            assert closed_of(mp, "c2")["reason"] == "proxy-overloaded"
            assert len(connects) == 1


async def test_over_sockets_every_client_past_the_cap_reads_its_whole_503() -> None:
    """The lingering close: a FIN after the answer, never an RST that could destroy it."""
    request = b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n"
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            origin_port = await nursery.start(origin.serve, "127.0.0.1", 0, STREAMING)
            listener = await server.listen("127.0.0.1", 0)
            port = listener.socket.getsockname()[1]
            settings = ProxySettings(Upstream("127.0.0.1", origin_port), max_connections=1)
            proxy = Proxy(settings, scenario_of(""), Journal(keep=True), seed=1)
            await nursery.start(server.serve_proxy, proxy, listener)
            holder = await trio.open_tcp_stream("127.0.0.1", port)
            await holder.send_all(request)
            assert (await holder.receive_some()).startswith(b"HTTP/1.1 200 ")
            for _ in range(20):
                async with await trio.open_tcp_stream("127.0.0.1", port) as client:
                    await client.send_all(request)
                    answer = b""
                    while data := await client.receive_some():
                        answer += data
                    assert answer.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
                    assert answer.endswith(b"try again later\n")
            await proxy.journal.wait_for("closed", 20)
            await holder.aclose()
            nursery.cancel_scope.cancel()


def test_the_default_cap_leaves_descriptors_to_spare(monkeypatch: pytest.MonkeyPatch) -> None:
    resource = pytest.importorskip("resource")
    monkeypatch.setattr(resource, "getrlimit", lambda _: (1024, 4096))
    assert server.default_max_connections() == (1024 - 64) // 2
    assert server.default_max_connections(3) == (1024 - 64) // 3
    monkeypatch.setattr(resource, "getrlimit", lambda _: (70, 70))
    assert server.default_max_connections() == 3


# -- out of descriptors: the proxy's fault, not the upstream's -------------------------------


def out_of_descriptors(proxy: Proxy) -> None:
    async def emfile() -> trio.abc.Stream:
        raise OSError(errno.EMFILE, "Too many open files")

    proxy.connector = emfile


@pytest.mark.parametrize("mode", ["http", "tcp"])
async def test_emfile_on_connect_is_blamed_on_the_proxy(autojump_clock: object, mode: str) -> None:
    async with memory_proxy(settings=STREAMING, mode=mode) as mp:
        out_of_descriptors(mp.proxy)
        client = mp.client()
        if mode == "http":
            got = await client.get("/events")
            assert got.status == 503
        else:
            await client.send("GET", "/events")
            assert await client.stream.receive_some() == b""
        (closed,) = await mp.journal.wait_for("closed")
    assert (closed["by"], closed["reason"]) == ("proxy", "proxy-overloaded")
    assert "Too many open files" in str(closed["detail"])


async def test_emfile_from_the_socket_layer_is_overloaded_not_unreachable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def emfile(*args: object, **kwargs: object) -> trio.SocketStream:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(trio, "open_tcp_stream", emfile)
    with pytest.raises(UpstreamError) as caught:
        await connect("127.0.0.1", 9, 1.0)
    assert (caught.value.kind, caught.value.by, caught.value.reason) == (
        "overloaded",
        "proxy",
        "proxy-overloaded",
    )
    assert caught.value.status == 503


def test_report_explains_proxy_overloaded() -> None:
    journals = reader.build([("j", ['{"t":0,"kind":"opened","conn":"c1"}', CLOSED_OVERLOADED])])
    (conn,) = journals.connections
    assert explain(conn, None) == EXPLANATIONS["proxy-overloaded"]
    assert "--max-connections" in explain(conn, None)


CLOSED_OVERLOADED = '{"t":0,"kind":"closed","conn":"c1","by":"proxy","reason":"proxy-overloaded"}'


# -- refuse, decided at accept ---------------------------------------------------------------


async def test_refuse_turns_away_a_client_that_sends_nothing(autojump_clock: object) -> None:
    async with memory_proxy('[[faults]]\ntype = "refuse"\n', STREAMING) as mp:
        with counting_connects(mp.proxy) as connects:
            silent = mp.client()  # connects, never sends a byte
            with trio.fail_after(10):
                assert await silent.stream.receive_some() == b""
            (closed,) = await mp.journal.wait_for("closed")
            assert (closed["by"], closed["reason"], closed["duration"]) == ("proxy", "refuse", 0)
            (fault,) = mp.journal.of_kind("fault")
            assert (fault["fault"], fault["action"]) == ("refuse", "close")
            assert connects == []


@pytest.mark.parametrize("how", ["close", "reset"])
async def test_refuse_in_tcp_mode_never_contacts_the_upstream(
    autojump_clock: object, how: str
) -> None:
    scenario = f'[[faults]]\ntype = "refuse"\nhow = "{how}"\n'
    async with memory_proxy(scenario, STREAMING, mode="tcp") as mp:
        with counting_connects(mp.proxy) as connects:
            client = mp.client()
            await client.send("GET", "/events")
            assert await client.stream.receive_some() == b""
            (closed,) = await mp.journal.wait_for("closed")
            assert (closed["by"], closed["reason"]) == ("proxy", "refuse")
            assert not mp.journal.of_kind("upstream")
            assert connects == []


async def test_first_and_every_count_connections_not_requests(autojump_clock: object) -> None:
    """`every = 2`: connections 2 and 4 are refused; the requests of the others are served,
    however many each sends."""
    settings = origin.OriginSettings(interval=1, heartbeat=0, count=1)
    async with memory_proxy('[[faults]]\ntype = "refuse"\nevery = 2\n', settings) as mp:
        outcomes = []
        for _ in range(4):
            client = mp.client()
            statuses = [(await client.get("/events")).status]
            while statuses[-1] == 200 and len(statuses) < 3:
                statuses.append((await client.get("/events")).status)
            outcomes.append(statuses)
        assert outcomes == [[200, 200, 200], [0], [200, 200, 200], [0]]


async def test_connections_open_before_the_window_are_not_touched(autojump_clock: object) -> None:
    scenario = '[[faults]]\ntype = "refuse"\nwindow = { from = "5s", until = "1h" }\n'
    settings = origin.OriginSettings(interval=1, heartbeat=0, count=1)
    async with memory_proxy(scenario, settings) as mp:
        early = mp.client()
        assert (await early.get("/events")).status == 200
        await trio.sleep(10)
        assert (await early.get("/events")).status == 200  # keep-alive: not a new connection
        assert (await mp.client().get("/events")).status == 0  # a new one is refused
        assert [r["reason"] for r in mp.journal.of_kind("closed")] == ["refuse"]


async def test_a_refuse_that_matches_a_path_is_decided_after_the_head(
    autojump_clock: object,
) -> None:
    scenario = '[[faults]]\ntype = "refuse"\nmatch = { path = "/private*" }\n'
    settings = origin.OriginSettings(interval=1, heartbeat=0, count=1)
    async with memory_proxy(scenario, settings) as mp:
        with counting_connects(mp.proxy) as connects:
            client = mp.client()
            assert (await client.get("/events")).status == 200
            assert (await client.get("/private/events")).status == 0
            (closed,) = await mp.journal.wait_for("closed")
            assert (closed["by"], closed["reason"], closed["requests"]) == ("proxy", "refuse", 2)
            assert len(connects) == 1


async def test_a_refuse_added_live_leaves_open_connections_alone(autojump_clock: object) -> None:
    settings = origin.OriginSettings(interval=1, heartbeat=0, count=1)
    async with memory_proxy("", settings) as mp:
        mp.proxy.settings = replace(mp.proxy.settings, live=True)
        client = mp.client()
        assert (await client.get("/events")).status == 200
        mp.proxy.set_scenario(scenario_of('[[faults]]\ntype = "refuse"\n'))
        assert (await client.get("/events")).status == 200
        assert (await mp.client().get("/events")).status == 0


async def test_a_refuse_with_after_never_acts(autojump_clock: object) -> None:
    """`after` falls past the accept, where refuse is decided: the stream lives on."""
    async with memory_proxy('[[faults]]\ntype = "refuse"\nafter = "5s"\n', STREAMING) as mp:
        got = await mp.client().get("/events", limit=200)
        assert got.status == 200
        assert trio.current_time() > 5
        assert not mp.journal.of_kind("fault")
