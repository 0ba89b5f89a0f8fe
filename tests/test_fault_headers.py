"""headers: rewriting in pure code, loading checks, then through the proxy in virtual time."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio
import trio.testing

from sseproxy import origin
from sseproxy.errors import ScenarioError
from sseproxy.faults.base import Deliver, Piece, ResponseHead
from sseproxy.faults.headers import HeadersFault
from sseproxy.params import ParamError
from tests.harness import MemoryProxy, memory_proxy, scenario_of


def make(**settings: Any) -> HeadersFault:
    defaults: dict[str, Any] = {"target": "response", "add": {}, "set": {}, "remove": []}
    return HeadersFault(defaults | settings, random.Random(0))


ORIGIN_HEAD = ResponseHead(
    200,
    (
        (b"content-type", b"text/event-stream"),
        (b"cache-control", b"no-cache"),
        (b"x-accel-buffering", b"no"),
    ),
    b"OK",
)


# -- decisions -----------------------------------------------------------------------------


def test_rewrites_the_response_head_only() -> None:
    fault = make(
        remove=["X-Accel-Buffering"], set={"Content-Type": "text/plain"}, add={"X-Test": "1"}
    )
    new = ResponseHead(
        200,
        ((b"cache-control", b"no-cache"), (b"content-type", b"text/plain"), (b"x-test", b"1")),
        b"OK",
    )
    assert fault.on_piece(Piece(b"", head=ORIGIN_HEAD), 3.0) == [Deliver(Piece(b"", head=new), 3.0)]
    data = Piece(b"id: 1\n\n")
    assert fault.on_piece(data, 4.0) == [Deliver(data, 4.0)]
    request = [(b"host", b"x"), (b"last-event-id", b"5")]
    assert fault.request_headers(request) == request  # not its target


def test_add_keeps_headers_of_the_same_name_and_set_replaces_them() -> None:
    headers = [(b"via", b"a"), (b"accept", b"*/*")]
    assert make(add={"Via": "b"}).rewrite(headers) == [*headers, (b"via", b"b")]
    assert make(set={"Via": "b"}).rewrite(headers) == [(b"accept", b"*/*"), (b"via", b"b")]


def test_request_target_rewrites_the_request_and_leaves_the_response() -> None:
    fault = make(target="request", remove=["Last-Event-ID"])
    request = [(b"host", b"x"), (b"last-event-id", b"5"), (b"accept", b"text/event-stream")]
    assert fault.request_headers(request) == [(b"host", b"x"), (b"accept", b"text/event-stream")]
    head = Piece(b"", head=ORIGIN_HEAD)
    assert fault.on_piece(head, 0.0) == [Deliver(head, 0.0)]


def test_check_refuses_a_fault_that_changes_nothing() -> None:
    with pytest.raises(ParamError):
        HeadersFault.check({"target": "response", "add": {}, "set": {}, "remove": []})
    with pytest.raises(ScenarioError, match=r"field 'add'.*at least one of `add`, `set`, `remove`"):
        scenario_of('[[faults]]\ntype = "headers"\n')


@pytest.mark.parametrize("bad", ["\\r", "\\n", "\\u0000", "\\r\\nX-Injected: 1"])
@pytest.mark.parametrize("field", ["add", "set"])
def test_values_with_cr_lf_or_nul_are_refused_when_the_scenario_loads(field: str, bad: str) -> None:
    toml = f'[[faults]]\ntype = "headers"\n{field} = {{ X-Test = "a{bad}b" }}\n'
    with pytest.raises(ScenarioError, match=rf"field '{field}'.*CR, LF or NUL"):
        scenario_of(toml)


def test_bad_names_are_refused_when_the_scenario_loads() -> None:
    with pytest.raises(ScenarioError, match=r"field 'remove'.*not a header name"):
        scenario_of('[[faults]]\ntype = "headers"\nremove = ["Last Event ID"]\n')


# -- through the proxy, in virtual time ----------------------------------------------------

TWO = origin.OriginSettings(interval=1, heartbeat=0, count=2)


async def test_the_client_sees_exactly_the_rewritten_headers(autojump_clock: object) -> None:
    scenario = (
        '[[faults]]\ntype = "headers"\nremove = ["X-Accel-Buffering"]\n'
        'set = { Content-Type = "text/plain" }\nadd = { X-Chaos = "on" }\n'
    )
    async with memory_proxy(scenario, TWO) as mp:
        got = await mp.client().get("/events")
        assert got.status == 200
        assert list(got.headers.items()) == [
            (b"cache-control", b"no-cache"),
            (b"access-control-allow-origin", b"*"),
            (b"content-type", b"text/plain"),
            (b"x-chaos", b"on"),
            (b"transfer-encoding", b"chunked"),
        ]
        assert got.body == origin.encode_event(1) + origin.encode_event(2)
        (response,) = mp.journal.of_kind("response")
        assert response["content_type"] == "text/plain"


async def test_connection_close_makes_the_proxy_close_after_the_response(
    autojump_clock: object,
) -> None:
    async with memory_proxy(
        '[[faults]]\ntype = "headers"\nadd = { Connection = "close" }\n', TWO
    ) as mp:
        client = mp.client()
        got = await client.get("/events")
        assert (got.status, got.ending, got.ended_at) == (200, "end", 1.0)
        assert got.headers[b"connection"] == b"close"
        assert await client.stream.receive_some(65536) == b""  # closed by the proxy
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["t"], closed["requests"]) == (1.0, 1)


async def test_without_it_the_connection_is_kept_alive(autojump_clock: object) -> None:
    async with memory_proxy("", TWO) as mp:
        client = mp.client()
        assert (await client.get("/events")).ending == "end"
        assert (await client.get("/events")).ending == "end"
        assert not mp.journal.of_kind("closed")


async def test_removing_last_event_id_makes_the_origin_restart_at_1(
    autojump_clock: object,
) -> None:
    settings = origin.OriginSettings(interval=1, heartbeat=0, count=8)
    resume = [("Last-Event-ID", "5")]
    async with memory_proxy("", settings) as mp:  # the control: the origin resumes at 6
        got = await mp.client().get("/events", resume)
        assert got.body == b"".join(origin.encode_event(n) for n in range(6, 9))
    scenario = '[[faults]]\ntype = "headers"\ntarget = "request"\nremove = ["Last-Event-ID"]\n'
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events", resume)
        assert got.body == b"".join(origin.encode_event(n) for n in range(1, 9))
        (request,) = mp.journal.of_kind("request")
        assert request["last_event_id"] == "5"  # what the client sent


def capture_requests(mp: MemoryProxy) -> list[bytes]:
    """Replace the upstream by one that records each request head and answers 204."""
    heads: list[bytes] = []

    async def serve(stream: trio.abc.Stream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(65536)
        heads.append(head)
        await stream.send_all(b"HTTP/1.1 204 No Content\r\n\r\n")

    async def connect() -> trio.abc.Stream:
        proxy_end, upstream_end = trio.testing.memory_stream_pair()
        mp.nursery.start_soon(serve, upstream_end)
        return proxy_end

    mp.proxy.connector = connect
    return heads


async def test_request_headers_added_and_set(autojump_clock: object) -> None:
    scenario = (
        '[[faults]]\ntype = "headers"\ntarget = "request"\n'
        'add = { X-Chaos = "on" }\nset = { User-Agent = "sseproxy" }\n'
    )
    async with memory_proxy(scenario) as mp:
        heads = capture_requests(mp)
        got = await mp.client().get("/x", [("User-Agent", "browser")])
        assert got.status == 204
        (head,) = heads
        lines = head.split(b"\r\n")
        assert lines.count(b"x-chaos: on") == 1
        assert b"user-agent: sseproxy" in lines
        assert b"user-agent: browser" not in lines


async def test_direction_both_adds_a_request_header_once(autojump_clock: object) -> None:
    scenario = (
        '[[faults]]\ntype = "headers"\ntarget = "request"\ndirection = "both"\n'
        'add = { X-Chaos = "on" }\n'
    )
    async with memory_proxy(scenario) as mp:
        heads = capture_requests(mp)
        assert (await mp.client().get("/x")).status == 204
        (head,) = heads
        assert head.split(b"\r\n").count(b"x-chaos: on") == 1
