"""Fuzzing HTTP mode (issue 9): whatever a client or an upstream sends, the proxy answers
with valid HTTP or closes, never fails inside, journals one `closed` per `opened`, and
blames the side that misbehaved.

Each example is one connection through a proxy on memory streams, in virtual time (a
`MockClock` with autojump: timeouts cost nothing). Inputs are valid messages built from
parts (methods, versions, framing headers, bodies that fit or do not), structured
malformations, and then byte-level mutations of the result, sent in random slices.

The request fuzzer's upstream parses what reaches it: one request per upstream
connection and nothing after it, so no input smuggles a second request past the proxy.

`SSEPROXY_FUZZ_EXAMPLES=N` runs N examples per fuzzer instead of the CI budget (a long
run; it prints its figures).
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import h11
import trio
import trio.testing
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.scenario import Scenario
from sseproxy.testing import pipe_pair

T = TypeVar("T")
LONG_RUN = int(os.environ.get("SSEPROXY_FUZZ_EXAMPLES", "0"))
REQUEST_EXAMPLES = LONG_RUN or 3000
RESPONSE_EXAMPLES = LONG_RUN or 2000
BOUND = 10_000.0  # virtual seconds an example may take: a hang fails it
SETTINGS = ProxySettings(Upstream("127.0.0.1", 9), max_head_size=4096)
LIVE = ProxySettings(Upstream("127.0.0.1", 9), max_head_size=4096, live=True)
"""Every link runs its (empty) fault chain: the engine's path instead of the fast one."""
NONE = Scenario(name="none")
FUZZ = settings(
    deadline=None,
    database=None,
    derandomize=not LONG_RUN,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- inputs ----------------------------------------------------------------------------
#
# Inputs are built in plain Python from a "genome" that hypothesis draws as one byte
# string (as libFuzzer's FuzzedDataProvider does): each choice reads a byte, and a genome
# that runs out reads as zeros, the first and plainest choice. A hypothesis draw costs
# tens of microseconds, and a message built from a hundred of them cost more than running
# it through the proxy; two draws per input make the fuzzers fast, and hypothesis still
# shrinks a failure (towards short genomes of zeros: plain messages).


class Genome:
    """Choices read from bytes: `pick` from a list, a number `below` n, a `blob`."""

    def __init__(self, data: bytes, blobs: bytes) -> None:
        self.data, self.at = data, 0
        self.blobs, self.blob_at = blobs, 0

    def byte(self) -> int:
        value = self.data[self.at] if self.at < len(self.data) else 0
        self.at += 1
        return value

    def below(self, n: int) -> int:
        return (self.byte() << 8 | self.byte()) % n

    def pick(self, values: Sequence[T]) -> T:
        return values[self.byte() % len(values)]

    def rarely(self, n: int = 10) -> bool:
        """True one time in `n` (never for a genome of zeros)."""
        return self.byte() % n == n - 1

    def blob(self, limit: int) -> bytes:
        size = self.below(limit + 1)
        part = self.blobs[self.blob_at : self.blob_at + size]
        self.blob_at += size
        return part


TOKENS = [b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT"]
TARGETS = [b"/", b"/events", b"/x?y=1", b"*", b"http://a/b", b"/a b"]
VERSIONS = [b"1.1", b"1.1", b"1.1", b"1.0", b"2.0", b"9.9", b"0.9"]
ODD_BYTES = [b"\r", b"\n", b"\r\n", b"\x00", b" ", b"\t", b":", b"\x7f", b"\x01", b"\xff", b","]
FRAMINGS = ["none", "length", "length", "chunked", "chunked", "both", "both", "odd-te"]
FRAMINGS += ["odd-length"]
ODD_LENGTHS = [b"-1", b"abc", b"1, 2", b"+3", b" 3", b"99999999999999"]
ODD_TES = [b"gzip", b"gzip, chunked", b"chunked, chunked", b"x"]
CHUNK_STYLES = ["ok", "ok", "empty", "bad-size", "extension", "huge-size", "no-crlf"]
CHUNK_STYLES += ["no-last", "trailers"]
HEADER_NAMES = [b"x-a", b"accept", b"last-event-id", b"connection", b"upgrade", b"expect"]
HEADER_VALUES = [b"1", b"text/event-stream", b"close", b"keep-alive", b"content-length"]
HEADER_VALUES += [b"host", b"100-continue", b"websocket", b"transfer-encoding, x-a", b""]
LISTED = [b"content-length", b"host", b"Content-Length, x-a"]
EDITS = ["delete", "repeat", "insert", "flip", "truncate"]
STATUS_LINES = [b"HTTP/1.1 200 OK", b"HTTP/1.1 200", b"HTTP/1.0 200 OK", b"HTTP/1.1 204 No"]
STATUS_LINES += [b"HTTP/1.1 304 Not Modified", b"HTTP/1.1 101 Switching Protocols"]
STATUS_LINES += [b"HTTP/1.1 100 Continue", b"HTTP/9.9 200 OK", b"HTTP/1.1 999 Odd"]
STATUS_LINES += [b"HTTP/1.1 2000 OK", b"HTTP/1.1 abc", b"HTTP/2 200", b"ICY 200 OK"]
STATUS_LINES += [b"HTTP/1.1 503 Service Unavailable", b"HTTP/1.1 200 \xff\x01"]
SSE_BODIES = [b"", b"id: 1\ndata: x\n\n", b"data: y\r\n\r\n"]


def chunked(body: bytes, style: str) -> bytes:
    """`body` in chunked coding, well formed or broken in a chosen way."""
    if style == "empty":
        return b"0\r\n\r\n"
    size = f"{len(body):x}".encode()
    if style == "bad-size":
        size = b"zz"
    elif style == "extension":
        size += b";name=value"
    elif style == "huge-size":
        size = b"ffffffffffffffffffff"
    data = size + b"\r\n" + body
    if style == "no-crlf":
        return data + b"0\r\n\r\n"
    data += b"\r\n"
    if style == "no-last":
        return data
    if style == "trailers":
        return data + b"0\r\nx-trailer: 1\r\n\r\n"
    return data + b"0\r\n\r\n"


def framed_body(g: Genome) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Framing headers and a body that may or may not match them."""
    body = g.blob(64)
    kind = g.pick(FRAMINGS)
    headers: list[tuple[bytes, bytes]] = []
    if kind in ("length", "both"):
        length = len(body) + g.pick([0, 0, -1, -1, 1, 100])
        headers.append((b"content-length", str(max(length, 0)).encode()))
    elif kind == "odd-length":
        headers.append((b"content-length", g.pick(ODD_LENGTHS)))
    elif kind == "odd-te":
        headers.append((b"transfer-encoding", g.pick(ODD_TES)))
    if kind in ("chunked", "both"):
        headers.append((b"transfer-encoding", b"chunked"))
        body = chunked(body, g.pick(CHUNK_STYLES))
    return headers, body


def extra_headers(g: Genome) -> list[tuple[bytes, bytes]]:
    headers = []
    for _ in range(g.below(5)):
        name = (g.blob(8) or b"x") if g.rarely() else g.pick(HEADER_NAMES)
        value = g.blob(12) if g.rarely() else g.pick(HEADER_VALUES)
        headers.append((name, value))
    if g.rarely(21):
        headers.append((b"x-big", b"a" * 5000))
    return headers


def shuffled(g: Genome, items: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    items = list(items)
    for index in range(len(items) - 1, 0, -1):
        other = g.below(index + 1)
        items[index], items[other] = items[other], items[index]
    return items


def head(start_line: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    lines = [start_line, *(name + b": " + value for name, value in headers)]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def request(g: Genome) -> bytes:
    """One request: mostly valid, with its parts drawn from what breaks proxies."""
    if g.rarely(31):
        return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    method = (g.blob(8) or b"G") if g.rarely() else g.pick(TOKENS)
    start = method + b" " + g.pick(TARGETS) + b" HTTP/" + g.pick(VERSIONS)
    headers = [(b"host", b"t")] * g.pick([1, 1, 1, 0, 2])
    framing, body = framed_body(g)
    headers += shuffled(g, framing + extra_headers(g))
    if g.rarely(6):
        headers.append((b"connection", g.pick(LISTED)))
    return head(start, headers) + body


def response(g: Genome) -> bytes:
    """One response head and body: mostly valid, framing drawn from what breaks proxies."""
    status = g.blob(20) if g.rarely() else g.pick(STATUS_LINES)
    framing, body = framed_body(g)
    headers = shuffled(g, framing + extra_headers(g))
    if g.byte() % 2:
        headers.append((b"content-type", b"text/event-stream"))
        body = g.pick(SSE_BODIES) or body
    message = head(status, headers) + body
    if g.rarely(11):  # an informational response first
        return b"HTTP/1.1 100 Continue\r\n\r\n" + message
    return message


def mutated(g: Genome, data: bytes) -> bytes:
    """`data` with a few byte-level edits: delete, repeat, insert odd bytes, truncate."""
    for _ in range(g.pick([0, 0, 0, 0, 1, 1, 2, 3])):
        if not data:
            break
        at = g.below(len(data))
        edit = g.pick(EDITS)
        if edit == "delete":
            data = data[:at] + data[at + 1 + g.below(8) :]
        elif edit == "repeat":
            data = data[:at] + data[at : at + 16] + data[at:]
        elif edit == "insert":
            data = data[:at] + g.pick(ODD_BYTES) + data[at:]
        elif edit == "flip":
            data = data[:at] + bytes([data[at] ^ (1 + g.below(255))]) + data[at + 1 :]
        else:
            data = data[:at]
    return data


def client_input(g: Genome) -> bytes:
    """One to three pipelined requests, each perhaps mutated; now and then garbage."""
    if g.rarely():
        return g.blob(64)
    return b"".join(mutated(g, request(g)) for _ in range(1 + g.below(3)))


def upstream_output(g: Genome) -> bytes:
    """A response, perhaps mutated; now and then garbage."""
    if g.rarely():
        return g.blob(64)
    return mutated(g, response(g))


def slices(data: bytes, g: Genome) -> list[bytes]:
    """`data` cut in up to four slices, sent one by one."""
    points = sorted({g.below(len(data) + 1) for _ in range(g.below(4))} - {0, len(data)})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


GENOME = st.binary(max_size=200)
BLOBS = st.binary(max_size=200)


# -- running one example ---------------------------------------------------------------


async def read_all(stream: trio.abc.ReceiveStream) -> bytes:
    data = b""
    try:
        while more := await stream.receive_some(65536):
            data += more
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    return data


async def send_slices(stream: trio.abc.HalfCloseableStream, parts: list[bytes]) -> None:
    """Send each slice after the proxy had its turn, then half-close (the end of input)."""
    try:
        for part in parts:
            await stream.send_all(part)
            await trio.sleep(0.001)
        await trio.sleep(1)  # a complete request gets its answer before the half-close
        await stream.send_eof()
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the proxy gave up on this client already


@dataclass
class Outcome:
    """What one connection came to: what the client got, and the journal."""

    received: bytes
    records: list[dict[str, object]]
    methods: list[bytes] = field(default_factory=list)
    upstream_saw: list[bytes] = field(default_factory=list)

    def of_kind(self, kind: str) -> list[dict[str, object]]:
        return [r for r in self.records if r["kind"] == kind]


def run_example(
    client_parts: list[bytes], server: Callable[..., object], *, live: bool = False
) -> Outcome:
    """One connection through a fresh proxy in virtual time; returns what happened."""
    saw: list[bytes] = []

    async def main() -> Outcome:
        journal = Journal(keep=True)
        with trio.fail_after(BOUND):
            async with trio.open_nursery() as nursery:

                async def connect() -> trio.abc.Stream:
                    proxy_end, upstream_end = pipe_pair()
                    nursery.start_soon(server, upstream_end, saw)
                    return proxy_end

                chosen = LIVE if live else SETTINGS
                proxy = Proxy(chosen, NONE, journal, seed=1, connector=connect)
                client, proxy_end = pipe_pair()
                nursery.start_soon(proxy.handle, proxy_end, "127.0.0.1:50000")
                nursery.start_soon(send_slices, client, client_parts)
                received = await read_all(client)
                await journal.wait_for("closed")
                nursery.cancel_scope.cancel()
        methods = [str(r["method"]).encode("latin-1") for r in journal.of_kind("request")]
        return Outcome(received, list(journal.records), methods, saw)

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


# -- what must hold ------------------------------------------------------------------


def check_valid_http(outcome: Outcome) -> None:
    """The client got zero or more whole responses, perhaps one cut short, and nothing
    that is not HTTP. A response is cut only by a close (the bytes simply end)."""
    conn = h11.Connection(h11.CLIENT)
    methods = list(outcome.methods)
    if outcome.received:
        conn.receive_data(outcome.received)  # (b"" would mean the end of the stream)
    closed = False
    for _ in range(100):
        assert h11.SWITCHED_PROTOCOL not in conn.states.values(), "a tunnel was opened"
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        if conn.our_state is h11.IDLE:
            method = methods.pop(0) if methods else b"GET"
            conn.send(h11.Request(method=method, target="/", headers=[("host", "t")]))
            conn.send(h11.EndOfMessage())
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as error:
            unread, at_eof = conn.trailing_data
            assert closed and at_eof and not unread, f"not HTTP: {error}: {outcome.received!r}"
            return  # a response cut short by the close
        if event is h11.NEED_DATA:
            assert not closed
            conn.receive_data(b"")
            closed = True
        elif type(event) is h11.ConnectionClosed:
            assert conn.trailing_data == (b"", True), f"bytes after the last response: {outcome}"
            return
    raise AssertionError(f"over 100 events: {outcome.received!r}")


def check_answers_delivered(outcome: Outcome) -> None:
    """Every response the journal records reached the client (it reads to the end)."""
    for record in outcome.of_kind("response"):
        status_line = f"HTTP/1.1 {record['status']} ".encode()
        assert status_line in outcome.received, (record, outcome.received)


def check_journal(outcome: Outcome) -> None:
    opened, closed = outcome.of_kind("opened"), outcome.of_kind("closed")
    assert len(opened) == 1 and len(closed) == 1, outcome.records
    reasons = [r.get("reason") for r in outcome.records]
    assert "internal-error" not in reasons, outcome.records
    # no fault is set: the proxy itself never ends an exchange or a connection
    assert not [r for r in outcome.records if r.get("by") == "proxy"], outcome.records


REQUEST_REPLY = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"


async def parsing_upstream(stream: trio.abc.Stream, saw: list[bytes]) -> None:
    """An upstream that reads one request with h11, answers 200 once it has ended, and
    records every byte it was sent (the proxy must send exactly one request)."""
    conn = h11.Connection(h11.SERVER)
    data = b""
    try:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                more = bytes(await stream.receive_some(65536))
                data += more
                conn.receive_data(more)
                if not more:
                    break
            elif type(event) is h11.EndOfMessage:
                await stream.send_all(REQUEST_REPLY)
                data += await read_all(stream)
                break
            elif type(event) is h11.ConnectionClosed:
                break
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
        data += await read_all(stream)
    finally:
        saw.append(data)
        await trio.aclose_forcefully(stream)


def check_one_request_upstream(outcome: Outcome) -> None:
    """What reached the upstream is one well-formed request (perhaps cut short by the
    proxy) and nothing after it: no input smuggles a second request through."""
    for data in outcome.upstream_saw:
        if not data:
            continue
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        first = conn.next_event()  # raises if the proxy forwarded a malformed head
        assert type(first) is h11.Request, (first, data)
        names = {name for name, _ in first.headers}
        assert not {b"content-length", b"transfer-encoding"} <= names, f"both framings: {data!r}"
        assert b"host" in names, f"no Host: {data!r}"
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                break  # the client's body was cut short: so was the forwarded one
            if type(event) is h11.EndOfMessage:
                assert conn.trailing_data[0] == b"", f"a second request upstream: {data!r}"
                break


def check_request_blame(outcome: Outcome) -> None:
    """The upstream behaves: it may only have ended an exchange cleanly."""
    for record in outcome.of_kind("ended") + outcome.of_kind("closed"):
        if record["by"] == "upstream":
            assert record["reason"] == "upstream-end", record


@dataclass
class Figures:
    """What a fuzzer did, printed after a long run."""

    started: float = field(default_factory=time.monotonic)
    examples: int = 0
    requests: int = 0
    internal_errors: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)


FIGURES: dict[str, Figures] = {}


def tally(name: str, outcome: Outcome) -> None:
    figures = FIGURES.setdefault(name, Figures())
    figures.examples += 1
    figures.requests += len(outcome.of_kind("request"))
    figures.internal_errors += sum(r.get("reason") == "internal-error" for r in outcome.records)
    status = outcome.received[9:12].decode() if outcome.received.startswith(b"HTTP/") else "-"
    (closed,) = outcome.of_kind("closed")
    figures.outcomes[f"{status} {closed['by']}/{closed['reason']}"] += 1


def report(name: str) -> None:
    figures = FIGURES.get(name)
    if LONG_RUN and figures is not None:
        print(
            f"\n{name}: {figures.examples} examples, {figures.requests} requests journaled, "
            f"{figures.internal_errors} internal errors, "
            f"{time.monotonic() - figures.started:.1f}s; first status and close: "
            + ", ".join(f"{key} x{count}" for key, count in figures.outcomes.most_common(12))
        )


@settings(FUZZ, max_examples=REQUEST_EXAMPLES)
@given(genome=GENOME, blobs=BLOBS)
def test_fuzz_requests(genome: bytes, blobs: bytes) -> None:
    g = Genome(genome, blobs)
    data = client_input(g)
    note(f"client sends {data!r}")
    outcome = run_example(slices(data, g), parsing_upstream, live=g.rarely(2))
    tally("requests", outcome)
    check_journal(outcome)
    check_valid_http(outcome)
    check_answers_delivered(outcome)
    check_one_request_upstream(outcome)
    check_request_blame(outcome)


def test_zz_report_requests() -> None:
    report("requests")


# -- upstream responses ----------------------------------------------------------------


def scripted_upstream(parts: list[bytes], how: str) -> Callable[..., object]:
    async def serve(stream: trio.abc.Stream, saw: list[bytes]) -> None:
        try:
            saw.append(bytes(await stream.receive_some(65536)))
            for part in parts:
                await stream.send_all(part)
                await trio.sleep(0.001)
            if how == "eof":
                await stream.send_eof()  # type: ignore[attr-defined]
                await read_all(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(stream)

    return serve


def check_response_blame(outcome: Outcome) -> None:
    """The client sent one good request: an exchange ends by the upstream's doing."""
    for record in outcome.of_kind("ended"):
        assert record["by"] == "upstream", record


GOOD_REQUEST = b"GET /events HTTP/1.1\r\nhost: t\r\n\r\n"


@settings(FUZZ, max_examples=RESPONSE_EXAMPLES)
@given(genome=GENOME, blobs=BLOBS)
def test_fuzz_upstream_responses(genome: bytes, blobs: bytes) -> None:
    g = Genome(genome, blobs)
    data = upstream_output(g)
    how = g.pick(["close", "eof"])
    note(f"upstream sends {data!r}, then {how}")
    upstream = scripted_upstream(slices(data, g), how)
    outcome = run_example([GOOD_REQUEST], upstream, live=g.rarely(2))
    tally("responses", outcome)
    check_journal(outcome)
    check_valid_http(outcome)
    check_answers_delivered(outcome)
    check_response_blame(outcome)


def test_zz_report_responses() -> None:
    report("responses")
