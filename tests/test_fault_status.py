"""status: the answer in pure code, then through the proxy in virtual time."""

from __future__ import annotations

import random
from typing import Any

import pytest
import trio

from sseproxy import origin
from sseproxy.faults.base import Deliver, End, Piece, ResponseHead
from sseproxy.faults.status import Status
from tests.harness import MemoryProxy, memory_proxy


def make(**settings: Any) -> Status:
    defaults: dict[str, Any] = {"code": 503, "retry_after": None, "headers": {}, "body": None}
    return Status(defaults | settings, random.Random(0))


TEXT = (b"content-type", b"text/plain; charset=utf-8")


# -- decisions -----------------------------------------------------------------------------


def test_answers_head_body_and_end_at_once() -> None:
    body = b"503 Service Unavailable\n"
    head = ResponseHead(503, (TEXT, (b"content-length", b"24")))
    assert make().start(7.0) == [
        Deliver(Piece(b"", head=head), 7.0),
        Deliver(Piece(body), 7.0),
        End("answered 503"),
    ]


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_and_no_length_for_204_and_304(code: int) -> None:
    actions = make(code=code, body="ignored").start(0.0)
    assert actions == [
        Deliver(Piece(b"", head=ResponseHead(code, (TEXT,))), 0.0),
        End(f"answered {code}"),
    ]


def test_retry_after_in_whole_seconds_and_extra_headers() -> None:
    fault = make(code=429, retry_after=5.0, headers={"X-RateLimit-Remaining": "0"}, body="slow")
    head, body, end = fault.start(0.0)
    assert isinstance(head, Deliver) and head.piece.head is not None
    assert head.piece.head.headers == (
        TEXT,
        (b"content-length", b"4"),
        (b"retry-after", b"5"),
        (b"x-ratelimit-remaining", b"0"),
    )
    assert body == Deliver(Piece(b"slow"), 0.0)
    assert end == End("answered 429 (Retry-After 5s)")


def test_a_status_without_a_known_phrase_still_gets_a_body() -> None:
    (_, body, _) = make(code=599).start(0.0)
    assert isinstance(body, Deliver) and body.piece.data.startswith(b"599")


# -- through the proxy, in virtual time ----------------------------------------------------


def record_upstream_calls(mp: MemoryProxy) -> list[float]:
    """Wrap the proxy's connector; returns the times it was called."""
    calls: list[float] = []
    connect = mp.proxy.connector
    assert connect is not None

    async def recording() -> trio.abc.Stream:
        calls.append(trio.current_time())
        return await connect()

    mp.proxy.connector = recording
    return calls


async def test_answers_503_with_a_one_line_body(autojump_clock: object) -> None:
    async with memory_proxy('[[faults]]\ntype = "status"\n') as mp:
        got = await mp.client().get("/events")
        assert (got.status, got.ending, got.ended_at) == (503, "end", 0.0)
        assert got.body == b"503 Service Unavailable\n"
        assert got.headers[b"content-type"] == b"text/plain; charset=utf-8"
        assert got.headers[b"content-length"] == b"24"
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"], ended["detail"]) == (
            "proxy",
            "status",
            "answered 503",
        )
        (response,) = mp.journal.of_kind("response")
        assert response["status"] == 503


async def test_204_has_no_body(autojump_clock: object) -> None:
    async with memory_proxy('[[faults]]\ntype = "status"\ncode = 204\n') as mp:
        got = await mp.client().get("/events")
        assert (got.status, got.body, got.ending) == (204, b"", "end")
        assert b"content-length" not in got.headers


async def test_429_with_retry_after(autojump_clock: object) -> None:
    scenario = '[[faults]]\ntype = "status"\ncode = 429\nretry_after = "5s"\n'
    async with memory_proxy(scenario) as mp:
        got = await mp.client().get("/events")
        assert got.status == 429
        assert got.headers[b"retry-after"] == b"5"
        assert got.body == b"429 Too Many Requests\n"
        (fault,) = mp.journal.of_kind("fault")
        assert fault["detail"] == "answered 429 (Retry-After 5s)"


async def test_custom_headers_and_body(autojump_clock: object) -> None:
    scenario = (
        '[[faults]]\ntype = "status"\ncode = 502\nbody = "upstream is restarting"\n'
        'headers = { "X-Served-By" = "lb-3", "Cache-Control" = "no-store" }\n'
    )
    async with memory_proxy(scenario) as mp:
        got = await mp.client().get("/events")
        assert got.status == 502
        assert got.body == b"upstream is restarting"
        assert got.headers == {
            b"content-type": b"text/plain; charset=utf-8",
            b"content-length": b"22",
            b"x-served-by": b"lb-3",
            b"cache-control": b"no-store",
        }


async def test_every_third_reconnect_gets_a_503(autojump_clock: object) -> None:
    settings = origin.OriginSettings(interval=1, heartbeat=0, count=1)
    async with memory_proxy('[[faults]]\ntype = "status"\nevery = 3\n', settings) as mp:
        statuses = []
        for _ in range(6):
            got = await mp.client().get("/events")
            assert got.ending == "end"
            statuses.append(got.status)
        assert statuses == [200, 200, 503, 200, 200, 503]
        requests = mp.journal.of_kind("request")
        assert [r.get("faults") for r in requests] == [None, None, ["status"]] * 2


async def test_the_upstream_is_never_contacted(autojump_clock: object) -> None:
    """Regression: the link used to call the head reader (and so connect) after start()."""
    async with memory_proxy('[[faults]]\ntype = "status"\nevery = 3\n') as mp:
        calls = record_upstream_calls(mp)
        statuses = [(await mp.client().get("/status/200")).status for _ in range(6)]
        assert statuses == [200, 200, 503, 200, 200, 503]
        assert len(calls) == 4  # only the connections that were forwarded


async def test_the_connection_survives_a_status_answer_or_says_it_will_not(
    autojump_clock: object,
) -> None:
    settings = origin.OriginSettings(interval=1, heartbeat=0, count=1)
    async with memory_proxy('[[faults]]\ntype = "status"\nfirst = 1\n', settings) as mp:
        client = mp.client()
        first = await client.get("/events")
        assert first.status == 503
        if first.headers.get(b"connection") != b"close":
            again = await client.get("/events")  # keep-alive was promised: reuse it
            assert (again.status, again.body) == (200, origin.encode_event(1))
