"""Issue 15 item 21: the proxy's own error answers, as nginx and HAProxy give theirs.

When no upstream response started, the proxy answers a status itself (504 after an
`idle-timeout` before the head, 502 for a refused upstream, 503 after `connect-retries`).
nginx and HAProxy send it with their reason phrase ("504 Gateway Time-out") and keep the
client connection for the next request when the client allows keep-alive; after an
answer to the client's own bad input they close (docs/fidelity.md, row 3, measured on
the real ones). Memory streams, virtual time; the rig is test_http_hardening's.
"""

from __future__ import annotations

import trio
import trio.testing

from sseproxy.journal import Journal
from sseproxy.report.analysis import analyse
from sseproxy.report.model import Report
from sseproxy.report.reader import journal_from_records
from sseproxy.scenario import parse_scenario
from sseproxy.transport import UpstreamError
from tests.test_http_hardening import (
    OK,
    Rig,
    Upstream_,
    assert_balanced,
    read_head,
    read_until_eof,
    rig,
    status_of,
)

IDLE_504 = '[[faults]]\ntype = "idle-timeout"\ntimeout = "1s"\nstatus = 504\n'
GET = b"GET /events HTTP/1.1\r\nhost: t\r\n\r\n"


class SilentFirst(Upstream_):
    """The first connection gets no answer (a hung backend); the later ones get `OK`."""

    async def handle(self, stream: trio.abc.Stream) -> None:
        if self.connections == 0:
            self.connections += 1
            await read_until_eof(stream)  # until the proxy gives up and closes
            await trio.aclose_forcefully(stream)
            return
        await super().handle(stream)


async def read_response(stream: trio.abc.ReceiveStream, *, head_only: bool = False) -> bytes:
    """One response with a Content-Length body (the head alone for HEAD), as received."""
    data = await read_head(stream)
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line for line in head.lower().split(b"\r\n") if line.startswith(b"content-length")]
    want = 0 if head_only or not lengths else int(lengths[0].split(b":")[1])
    while len(body) < want and (more := bytes(await stream.receive_some(65536))):
        body += more
    return head + b"\r\n\r\n" + body


def exchanges(journal: Journal, conn: str = "c1") -> list[tuple[int, str, str]]:
    return [(r["req"], r["by"], r["reason"]) for r in journal.of_kind("ended") if r["conn"] == conn]


async def answered_then_served(r: Rig, request: bytes = GET) -> bytes:
    """The proxy's own answer to `request`, then a second request on the same connection,
    which must be served by the upstream; returns the first answer."""
    client = r.client()
    await client.send_all(request)
    first = await read_response(client, head_only=request.startswith(b"HEAD "))
    await client.send_all(b"GET /next HTTP/1.1\r\nhost: t\r\n\r\n")
    second = await read_response(client)
    assert second == OK, second
    await r.journal.wait_for("ended", 2)  # the second exchange is over: only then leave
    await client.aclose()
    await r.closed("c1")
    return first


# -- kept alive after an answer on behalf of the upstream -----------------------------------


async def test_a_504_before_the_head_is_nginxs_and_the_connection_serves_the_next_request(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with rig(SilentFirst(), parse_scenario(IDLE_504, file="t.toml")) as r:
        first = await answered_then_served(r)
        assert first.startswith(b"HTTP/1.1 504 Gateway Time-out\r\n")
        assert b"connection:" not in first.lower()
        assert first.endswith(b"\r\n\r\nsseproxy: no byte for 1s\n")
        # the journal: one connection, two exchanges, the first still the fault's doing
        kinds = [rec["kind"] for rec in r.records("c1") if rec["kind"] != "fault"]
        assert kinds == [
            "opened",
            *("request", "upstream", "response", "ended"),
            *("request", "upstream", "response", "ended"),
            "closed",
        ]
        assert exchanges(r.journal) == [
            (1, "proxy", "idle-timeout"),
            (2, "upstream", "upstream-end"),
        ]
        responses = [rec for rec in r.records("c1") if rec["kind"] == "response"]
        assert [(x["status"], x.get("origin")) for x in responses] == [(504, "proxy"), (200, None)]
        (closed,) = [rec for rec in r.records("c1") if rec["kind"] == "closed"]
        assert (closed["by"], closed["reason"], closed["requests"]) == (
            "client",
            "client-closed",
            2,
        )
        assert_balanced(r.journal)


async def test_a_refused_upstreams_502_keeps_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with rig() as r:
        connect = r.proxy.connector
        calls = 0

        async def refuse_once() -> trio.abc.Stream:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise UpstreamError("refused", "cannot connect to upstream: Connection refused")
            assert connect is not None
            return await connect()

        r.proxy.connector = refuse_once
        first = await answered_then_served(r)
        assert first.startswith(b"HTTP/1.1 502 Bad Gateway\r\n")
        assert exchanges(r.journal) == [
            (1, "upstream", "upstream-refused"),
            (2, "upstream", "upstream-end"),
        ]
        assert_balanced(r.journal)


async def test_connect_retries_503_keeps_the_connection_as_haproxy_does(
    autojump_clock: trio.testing.MockClock,
) -> None:
    scenario = '[[faults]]\ntype = "connect-retries"\nretries = 2\nwait = "1s"\n'
    async with rig(scenario=parse_scenario(scenario, file="t.toml")) as r:
        connect = r.proxy.connector
        calls = 0

        async def refuse_thrice() -> trio.abc.Stream:
            nonlocal calls
            calls += 1
            if calls <= 3:
                raise UpstreamError("refused", "cannot connect to upstream: Connection refused")
            assert connect is not None
            return await connect()

        r.proxy.connector = refuse_thrice
        first = await answered_then_served(r)
        assert first.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert [req for req, _, _ in exchanges(r.journal)] == [1, 2]
        assert_balanced(r.journal)


async def test_a_head_request_gets_the_head_alone_and_the_connection_stays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with rig(SilentFirst(), parse_scenario(IDLE_504, file="t.toml")) as r:
        first = await answered_then_served(r, b"HEAD /events HTTP/1.1\r\nhost: t\r\n\r\n")
        assert first.startswith(b"HTTP/1.1 504 Gateway Time-out\r\n")
        assert first.endswith(b"\r\n\r\n")  # no body


async def test_a_post_whose_body_was_read_whole_keeps_the_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    post = b"POST /events HTTP/1.1\r\nhost: t\r\ncontent-length: 3\r\n\r\nabc"
    async with rig(SilentFirst(), parse_scenario(IDLE_504, file="t.toml")) as r:
        first = await answered_then_served(r, post)
        assert status_of(first) == 504


# -- closed where nginx closes ------------------------------------------------------------


async def closed_after(r: Rig, request: bytes) -> bytes:
    """Everything the proxy sent for `request` until it closed the connection itself."""
    client = r.client()
    await client.send_all(request)
    with trio.fail_after(5):  # virtual: well before the 60 s header timeout
        return await read_until_eof(client)


async def test_a_client_that_asked_to_close_gets_its_504_and_the_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    request = b"GET /events HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
    async with rig(SilentFirst(), parse_scenario(IDLE_504, file="t.toml")) as r:
        reply = await closed_after(r, request)
        assert reply.startswith(b"HTTP/1.1 504 Gateway Time-out\r\n")
        assert b"\r\nconnection: close\r\n" in reply.lower()
        closed = await r.closed("c1")
        assert (closed["by"], closed["reason"]) == ("proxy", "idle-timeout")


async def test_an_http10_client_gets_its_504_and_the_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with rig(SilentFirst(), parse_scenario(IDLE_504, file="t.toml")) as r:
        reply = await closed_after(r, b"GET /events HTTP/1.0\r\nhost: t\r\n\r\n")
        assert status_of(reply) == 504
        assert b"\r\nconnection: close\r\n" in reply.lower()


async def test_a_body_still_on_its_way_closes_the_connection_after_the_answer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The rest of the body would be read as the next request: close instead."""
    post = b"POST /events HTTP/1.1\r\nhost: t\r\ncontent-length: 10\r\n\r\nabc"
    async with rig(SilentFirst(), parse_scenario(IDLE_504, file="t.toml")) as r:
        reply = await closed_after(r, post)
        assert status_of(reply) == 504
        assert b"\r\nconnection: close\r\n" in reply.lower()
        (closed,) = [rec for rec in r.records("c1") if rec["kind"] == "closed"]
        assert (closed["by"], closed["reason"]) == ("proxy", "idle-timeout")


async def test_answers_to_the_clients_bad_input_close_as_nginx_does(
    autojump_clock: trio.testing.MockClock,
) -> None:
    bad = {
        400: b"GET /events HTTP/1.1\r\nhost: t\r\nbad header\r\n\r\n",
        505: b"GET /events HTTP/2.0\r\nhost: t\r\n\r\n",
        501: b"CONNECT example.org:443 HTTP/1.1\r\nhost: example.org\r\n\r\n",
    }
    async with rig() as r:
        for status, request in bad.items():
            reply = await closed_after(r, request)
            assert status_of(reply) == status, reply
            assert b"\r\nconnection: close\r\n" in reply.lower()
        assert r.upstream.connections == 0
        assert_balanced(r.journal)


# -- the report: blame unchanged, each attempt counted -------------------------------------

SSE = b"id: 1\ndata: x\n\n"
STREAM = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
    + f"content-length: {len(SSE)}\r\n\r\n".encode()
    + SSE
)


def report_of(journal: Journal) -> Report:
    return analyse(journal_from_records(journal.records))


async def test_the_report_blames_the_504_not_the_client_that_left_the_kept_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The connection outlived its 504 and the client closed it: the attempt still
    failed on the proxy's idle-timeout, as when the proxy closed the connection."""
    async with rig(SilentFirst(), parse_scenario(IDLE_504, file="t.toml")) as r:
        client = r.client()
        await client.send_all(
            b"GET /events HTTP/1.1\r\nhost: t\r\naccept: text/event-stream\r\n\r\n"
        )
        assert status_of(await read_response(client)) == 504
        await trio.sleep(30)  # an idle keep-alive connection, then the client leaves
        await client.aclose()
        await r.closed("c1")
        report = report_of(r.journal)
    assert report.totals.failed_attempts == 1
    assert [(f.status, f.cause) for f in report.closes.failed] == [
        ("504 (from proxy)", "proxy/idle-timeout")
    ]


async def test_a_stream_after_a_504_on_the_same_connection_counts_as_both(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A client that tries again on the kept connection: one failed attempt, then one
    stream, each counted on its own (not one stream that hides the failure)."""
    ask = b"GET /events HTTP/1.1\r\nhost: t\r\naccept: text/event-stream\r\n\r\n"
    async with rig(SilentFirst(STREAM), parse_scenario(IDLE_504, file="t.toml")) as r:
        client = r.client()
        await client.send_all(ask)
        assert status_of(await read_response(client)) == 504
        await client.send_all(ask)
        assert (await read_response(client)).endswith(SSE)
        await r.journal.wait_for("ended", 2)
        await client.aclose()
        await r.closed("c1")
        report = report_of(r.journal)
    assert (report.totals.streams, report.totals.failed_attempts) == (1, 1)
    assert report.totals.connections == 1
    assert [(f.status, f.cause) for f in report.closes.failed] == [
        ("504 (from proxy)", "proxy/idle-timeout")
    ]
    assert [row.cause for row in report.closes.rows] == ["client/client-closed"]
