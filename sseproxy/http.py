"""HTTP mode: h11 on both sides, one upstream connection per request, bodies via links.

Each exchange runs two links. The `down` link starts as soon as the request is read: its
source connects to the upstream, forwards the request, and yields the response head as
its first piece, then the body; so faults act from the request on (a timeout can fire
before the response starts, and then the proxy answers a status itself, as nginx answers
504). The `up` link carries the request body. With no fault both are plain copies,
flushed chunk by chunk. Bad input gets the status a real proxy sends (400, 408, 431, 501,
502, 504, 505), affects only its own connection, and is journaled as the doing of the side
that sent it: the client's ends the connection, the upstream's only the exchange (the
connection stays for the next request, as behind nginx). What is refused before the
upstream is contacted is in `http_checks`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import h11
import trio

from sseproxy.chunked import ChunkedBody, LengthBody, fast_body
from sseproxy.connection import (
    CLIENT_CLOSED,
    SHUTDOWN,
    Connection,
    Garbled,
    Outcome,
    Truncated,
    outcome_of,
    reason_of,
)
from sseproxy.faults.base import Piece, ResponseHead
from sseproxy.http_checks import (
    CLOSES_AFTER,
    REASONS,
    end_to_end,
    head_size,
    phrase,
    refusal_of,
    response_problem,
)
from sseproxy.link import CHUNK, FaultSlot, HeadError, run_link
from sseproxy.plan import Chains
from sseproxy.scenario import RequestInfo
from sseproxy.sse import Framer
from sseproxy.transport import (
    StopKind,
    UpstreamError,
    abort,
    receive,
    send_all,
    write_nowait,
    writes_nowait,
)
from sseproxy.upstreams import choose, member_fields, open_upstream, release

if TYPE_CHECKING:
    from sseproxy.proxy import Proxy

__all__ = ["HttpConnection", "end_to_end"]

_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError)
_WATCH_LIMIT = 64 * 1024
_WATCHER_TASK = "sseproxy.http.HttpConnection._watch_client"
"""The watcher's task name, given so that trio does not build the same string per task."""


def _has_body(request: h11.Request) -> bool:
    headers = dict(request.headers)
    length = headers.get(b"content-length", b"0").strip()
    return b"transfer-encoding" in headers or length != b"0"


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> Any:
    """The next h11 event that is not NEED_DATA (reading from `stream` as needed)."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(bytes(await stream.receive_some(CHUNK)))


async def _read_body(conn: h11.Connection, stream: trio.abc.Stream) -> bytes:
    """What one read brought of a message body, or b'' at its end (a chunked response
    body is read by `sseproxy.chunked.ChunkedBody` instead, with the same contract).

    h11 cuts what it parsed into a Data event per chunk; a server that flushes every
    event sends hundreds of chunks per read, and they go on together, as one piece (one
    write), rather than one write and one scheduler round each.
    """
    if conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
        return b""  # the end came with the last data, in the same read (not ERROR: that
        # is framing that broke after the data before it went on, and next_event says so)
    saw_eof = False
    parts: list[bytes] = []
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as error:
            if parts:
                return b"".join(parts)  # what came before the error; it is raised next time
            raise (Truncated if saw_eof else Garbled)(str(error)) from error
        if event is h11.NEED_DATA:
            if parts:
                return b"".join(parts)
            data = bytes(await receive(stream, CHUNK))
            saw_eof = not data
            conn.receive_data(data)
        elif type(event) is h11.Data:
            if event.data:
                parts.append(event.data)
        elif type(event) is h11.EndOfMessage:
            return b"".join(parts)  # with parts, the next call sees DONE and ends
        else:
            raise Truncated(f"{type(event).__name__} before the end of the body")


class BodySource(trio.abc.ReceiveStream):
    """A request body as a byte stream: h11 Data events in, b'' at EndOfMessage.

    A body cut short or garbled is the client's fault, and that is decided the moment it
    is read (`blame`), before the upstream notices that its request stopped: otherwise
    the blame goes to whichever side the scheduler happens to run first.
    """

    def __init__(
        self,
        conn: h11.Connection,
        stream: trio.abc.Stream,
        blame: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.conn = conn
        self.stream = stream
        self.blame = blame

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        try:
            return await _read_body(self.conn, self.stream)
        except trio.BrokenResourceError as error:
            if self.blame is not None:
                bad = isinstance(error, Truncated | Garbled)
                reason = reason_of(error, "client")
                self.blame(Outcome("client", reason, str(error), status=400 if bad else None))
            raise

    async def aclose(self) -> None:
        await self.stream.aclose()


class BodySink:
    """A `Sink` writing a message body through h11 (a request body up, a response body down).

    h11 frames the first piece. When that shows the body is chunked (h11's output is
    longer than the data), later pieces are framed here: h11's chunk writer keeps no
    state between chunks, and its checks and state changes per `Data` event were a fifth
    of the proxy's time per small event. A Content-Length or close-delimited body stays
    with h11, which counts what it may still send.
    """

    def __init__(self, conn: h11.Connection, stream: trio.abc.Stream) -> None:
        self.conn = conn
        self.stream = stream
        self.chunked: bool | None = None
        """Whether h11 frames this body in chunks (None until the first piece)."""

    def frame(self, data: bytes) -> bytes:
        """`data` as it goes on the wire (b"" for no data: an empty chunk would end it)."""
        if not data:
            return b""
        if self.chunked:
            return b"".join((b"%x\r\n" % len(data), data, b"\r\n"))  # not %b: 50x slower
        framed = self.conn.send(h11.Data(data=data)) or b""
        if self.chunked is None:
            self.chunked = len(framed) > len(data)
        return framed

    async def send(self, piece: Piece) -> None:
        framed = self.frame(piece.data)
        if framed:
            await send_all(self.stream, framed)

    @property
    def nowait(self) -> bool:
        return writes_nowait(self.stream)

    def send_nowait(self, piece: Piece) -> bytes | memoryview:
        framed = self.frame(piece.data)
        return write_nowait(self.stream, framed) if framed else b""

    async def send_rest(self, rest: bytes | memoryview) -> None:
        await self.stream.send_all(rest)

    async def stop(self, kind: StopKind, status: int | None, detail: str) -> None:
        if kind == "end":
            try:
                tail = self.conn.send(h11.EndOfMessage())
            except h11.LocalProtocolError:  # a Content-Length body cut short: cannot end
                kind = "close"
            else:
                await self.stream.send_all(tail or b"")
                return
        await (abort(self.stream) if kind == "reset" else trio.aclose_forcefully(self.stream))


class HttpConnection(Connection):
    """One client connection: requests in a keep-alive loop, each relayed to the upstream."""

    mode = "http"
    __slots__ = ("answered", "conn", "max_head", "method", "requests", "settled")

    def __init__(self, proxy: Proxy, stream: trio.abc.Stream, conn_id: str, client: str):
        super().__init__(proxy, stream, conn_id, client)
        self.max_head = proxy.settings.max_head_size
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=self.max_head)
        self.settled: Outcome | None = None
        self.requests = 0
        self.method = b""
        """The method of the request being answered (b"" before one was read)."""
        self.answered = False
        """The proxy answered the current request itself and the connection may serve the
        next one (see `respond`)."""

    def closing_fields(self) -> dict[str, Any]:
        return {"requests": self.requests}

    async def farewell(self) -> None:
        """A streaming response gets its terminating chunk, so an EventSource reconnects
        (to the next proxy run) instead of seeing a broken stream."""
        if self.conn.our_state is h11.SEND_BODY:
            with contextlib.suppress(*_BROKEN, h11.LocalProtocolError):
                await self.stream.send_all(self.conn.send(h11.EndOfMessage()) or b"")

    async def serve(self) -> Outcome:
        while True:
            self.method, self.answered = b"", False
            request = await self._request_head()
            if isinstance(request, Outcome):
                if request.status is not None:
                    await self.respond(request.status, request.detail)
                return request
            exchange = self.exchange(request)
            del request  # the exchange lets go of it once it is forwarded (a browser's is KiBs)
            outcome = await exchange
            done = self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE
            if not ((outcome.keep_alive or self.answered) and done):
                return outcome
            self.conn.start_next_cycle()

    async def _request_head(self) -> h11.Request | Outcome:
        """The next request head, or why there is none (bad input, a timeout, a close).

        The head must be complete within `client_header_timeout` of the proxy starting
        to wait for it: from the connection's start, or (keep-alive) from the end of the
        previous exchange. Past it: 408 if part of a head came, else a plain close.
        """
        limit = self.proxy.settings.client_header_timeout
        try:
            with trio.move_on_after(limit):
                request = await _next_event(self.conn, self.stream)
                if type(request) is not h11.Request:  # ConnectionClosed: the client is done
                    return CLIENT_CLOSED
                self.method = request.method
                if head_size(request.target, list(request.headers)) > self.max_head:
                    raise h11.RemoteProtocolError("request head too large", 431)
                return request
        except h11.RemoteProtocolError as error:
            status = error.error_status_hint
            reason = REASONS.get(status, "bad-request")
            return Outcome("client", reason, f"bad request: {error}", status=status)
        except _BROKEN as error:
            return Outcome("client", reason_of(error, "client"))
        if self.conn.trailing_data[0]:
            detail = f"no complete request head within {limit:g}s"
            return Outcome("client", "client-header-timeout", detail, status=408)
        waited = "after the last response" if self.requests else "for a request"
        return Outcome("client", "client-header-timeout", f"idle {limit:g}s {waited}")

    async def respond(self, status: int, text: str, *, keep: bool = True) -> None:
        """An error response from the proxy itself, with the reason phrase nginx and HAProxy
        send and a one-line body saying why.

        Like them, the proxy keeps the connection for the next request after an answer on
        behalf of the upstream (502, 503, 504...) when the client allows keep-alive and
        its request was read whole, and closes it after an answer to the client's bad
        input (`CLOSES_AFTER`), or when told not to `keep` it. See docs/fidelity.md (row 3).
        """
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        keep = keep and status not in CLOSES_AFTER and self.conn.their_state is h11.DONE
        body = f"sseproxy: {text}\n".encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        if not keep:
            headers.append((b"connection", b"close"))
        try:
            response = h11.Response(status_code=status, headers=headers, reason=phrase(status))
            data = self.conn.send(response) or b""
            if self.method != b"HEAD":  # the answer to HEAD is the head alone
                data += self.conn.send(h11.Data(data=body)) or b""
            data += self.conn.send(h11.EndOfMessage()) or b""
            await self.stream.send_all(data)
        except (*_BROKEN, h11.LocalProtocolError):
            pass
        else:
            self.answered = keep  # h11 knows whether the client let it stay open
        self.write("response", status=status, origin="proxy")

    async def exchange(self, request: h11.Request) -> Outcome:
        """One request and its response; journals `request` and `ended` records.

        A streaming response keeps the frames above its read for as long as it lasts, so
        they keep little: the request goes to the `UpstreamCall`, which lets go of it once
        it is forwarded, and the relay runs here, not in a coroutine of its own (a frame is
        200-400 bytes)."""
        self.requests += 1
        self.number, self.started = self.proxy.next_exchange(), trio.current_time()
        call = self._call(request)
        del request  # the call has it, until it is forwarded
        outcome = SHUTDOWN
        try:
            if isinstance(call, Outcome):
                outcome = call
            else:  # forward the request and relay the response through the fault chains
                self.settled = self.decided = None
                try:
                    async with trio.open_nursery() as nursery:
                        call.nursery = nursery
                        result = await run_link(
                            call,
                            ResponseSink(self, call),
                            call.down_slots,
                            observe=self.down.observe,
                            fired=self.fired("down"),
                            head=call.head,
                            live=self.links.get("down"),
                        )
                        self.settle(outcome_of(result, "upstream", "client"), nursery.cancel_scope)
                finally:
                    await call.aclose()
                outcome = self.settled or SHUTDOWN
            if outcome.status is not None:
                await self.respond(outcome.status, outcome.detail)
            return outcome
        finally:
            release(self.proxy, self)
            if self.killed is not None:
                outcome = self.killed_outcome()
            self.write(
                "ended",
                req=self.number,
                by=outcome.by,
                reason=outcome.reason,
                detail=outcome.detail or None,
                duration=round(trio.current_time() - self.started, 6),
            )

    def _call(self, request: h11.Request) -> UpstreamCall | Outcome:
        """Journal the `request` record and prepare the request's forwarding (the upstream
        member, the fault chains), or say why it is refused before any upstream is asked."""
        number, started = self.number, self.started
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers
        }
        target = request.target.decode("latin-1")
        self.request = info = RequestInfo(request.method.decode("latin-1"), target, headers)
        refusal = refusal_of(request)
        path, _, query = target.partition("?")
        member = choose(self.proxy, self, headers, query) if refusal is None else None
        chains = (
            self.proxy.plan.chains(number, info, started, member=member)
            if refusal is None
            else None
        )
        self.write(
            "request",
            req=number,
            method=info.method,
            path=path,
            query=query or None,
            session=self.proxy.session_of(headers, query),
            last_event_id=headers.get("last-event-id"),
            accept=headers.get("accept"),
            user_agent=headers.get("user-agent"),
            faults=(chains.names() or None) if chains else None,
        )
        if chains is None:
            assert refusal is not None
            return Outcome("client", refusal.reason, refusal.message, status=refusal.status)
        call = UpstreamCall(self, request, chains, started)
        if not _has_body(request):  # read its end now: keep-alive then survives an early answer
            end = self.conn.next_event()
            assert type(end) is h11.EndOfMessage, end
            call.body_read = True
        return call

    def settle(self, outcome: Outcome, scope: trio.CancelScope) -> None:
        """First cause wins: record it and stop everything else in the exchange."""
        if self.settled is None:
            self.settled = self.decided or outcome
        scope.cancel()

    async def _watch_client(self, scope: trio.CancelScope) -> None:
        """Notice a client that goes away mid-response (as nginx does), not only on write.

        It starts once the request is read whole (`UpstreamCall.request_sent`): until then
        the client's bytes are the request body's."""
        buffered = 0
        while buffered < _WATCH_LIMIT:
            try:
                data = await receive(self.stream, CHUNK)
            except trio.ClosedResourceError:
                return  # we closed it ourselves: the link knows why
            except trio.BrokenResourceError as error:
                self.settle(Outcome("client", reason_of(error, "client")), scope)
                return
            if not data:
                if self.conn.our_state in (h11.DONE, h11.MUST_CLOSE):  # the response is complete
                    self.conn.receive_data(b"")
                else:
                    self.settle(CLIENT_CLOSED, scope)
                return
            self.conn.receive_data(bytes(data))
            buffered += len(data)


class UpstreamCall(trio.abc.ReceiveStream):
    """The upstream side of one exchange, as the down link's source.

    `head` connects, forwards the request (starting the up link for its body) and reads
    the response head; `receive_some` then reads the response body.

    An idle stream keeps one for as long as it lasts, so it keeps little: slots, not the
    client's request once forwarded, no upstream h11 connection once a chunked or
    Content-Length body is read without it (about 1 KiB), and no task or event until the
    request has been read whole.
    """

    __slots__ = (
        "body",
        "body_read",
        "client",
        "conn",
        "down_slots",
        "head_read",
        "method",
        "nursery",
        "request",
        "spent",
        "started",
        "stream",
        "up_slots",
        "where",
    )

    def __init__(
        self, client: HttpConnection, request: h11.Request, chains: Chains, started: float
    ) -> None:
        self.client = client
        self.request: h11.Request | None = request
        """The client's request until it is forwarded (then None: a browser's head is
        KiBs, which a long stream would keep for nothing)."""
        self.method = request.method
        self.up_slots: list[FaultSlot] = chains.up
        self.down_slots: list[FaultSlot] = chains.down
        self.started = started
        self.conn: h11.Connection | None = None
        """The upstream's h11 connection, kept after the response head only for a body
        that h11 reads (one that ends with the connection, or none at all)."""
        self.stream: trio.abc.Stream | None = None
        self.nursery: trio.Nursery | None = None
        self.body_read = False
        self.head_read = False
        """The response head came from the upstream (not from a fault)."""
        self.body: ChunkedBody | LengthBody | None = None
        """A chunked or Content-Length response body, read without h11 (see
        `sseproxy.chunked`)."""
        self.where = client.proxy.settings.upstream
        self.spent = False
        """The proxy itself ran out of descriptors to connect with: its answer closes the
        client connection too, freeing one."""

    async def head(self) -> ResponseHead:
        proxy = self.client.proxy
        asked = trio.current_time()
        try:
            stream, self.where = await open_upstream(proxy, self.client, self.down_slots)
        except UpstreamError as error:
            self.spent = error.by == "proxy"
            raise HeadError(error.status, str(error), f"upstream-{error.kind}") from error
        self.stream = stream
        connect_time = round(trio.current_time() - asked, 6)
        self.client.write(
            "upstream",
            upstream=str(self.where),
            **member_fields(proxy, self.client),
            connect_time=connect_time,
        )
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=self.client.max_head)
        try:
            await stream.send_all(conn.send(self._request()) or b"")
        except _BROKEN as error:
            raise HeadError(
                502, f"upstream {self.where} failed: {error}", reason_of(error, "upstream")
            ) from error
        if self.body_read:  # no body: nothing to carry up
            await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
            self.request_sent()
        else:
            assert self.nursery is not None
            self.nursery.start_soon(self._upload, conn, stream)
        return await self._response_head(conn, stream)

    def request_sent(self) -> None:
        """The request is read whole: from now on the client is watched for going away
        (`HttpConnection._watch_client`), in the exchange's nursery."""
        assert self.nursery is not None
        self.nursery.start_soon(
            self.client._watch_client, self.nursery.cancel_scope, name=_WATCHER_TASK
        )

    def _request(self) -> h11.Request:
        """The request to forward (and the client's is let go)."""
        request, self.request = self.request, None
        assert request is not None
        headers = [(n, v) for n, v in end_to_end(list(request.headers)) if n != b"host"]
        headers.insert(0, (b"host", self.where.authority.encode()))
        if any(n == b"transfer-encoding" for n, _ in request.headers):
            headers.append((b"transfer-encoding", b"chunked"))
        forwarded_for = self.client.client_address.rsplit(":", 1)[0]
        headers.append((b"x-forwarded-for", forwarded_for.encode()))
        applied: set[str] = set()  # direction "both" gives a fault two slots: apply it once
        for slot in self.down_slots + self.up_slots:
            if slot.name not in applied and slot.active_from <= self.started < slot.active_until:
                applied.add(slot.name)
                headers = slot.fault.request_headers(headers)
        return h11.Request(method=request.method, target=request.target, headers=headers)

    async def _response_head(self, conn: h11.Connection, stream: trio.abc.Stream) -> ResponseHead:
        where = self.where
        while True:
            try:
                event = await _next_event(conn, stream)
            except h11.RemoteProtocolError as error:
                unread, closed = conn.trailing_data
                if closed and not unread:
                    raise HeadError(
                        502,
                        f"upstream {where} closed the connection without a response",
                        "upstream-closed",
                    ) from error
                raise HeadError(
                    502,
                    f"upstream {where} sent a malformed response: {error}",
                    "upstream-protocol-error",
                ) from error
            except _BROKEN as error:
                raise HeadError(
                    502,
                    f"upstream {where} failed before responding: {error}",
                    reason_of(error, "upstream"),
                ) from error
            if type(event) is h11.InformationalResponse:
                continue  # 100 Continue and friends are hop-by-hop; h11 sends none onward
            if type(event) is not h11.Response:
                raise HeadError(
                    502,
                    f"upstream {where} closed the connection without a response",
                    "upstream-closed",
                )
            problem = response_problem(event)
            if problem is not None:
                raise HeadError(502, f"upstream {where} {problem}", "upstream-protocol-error")
            headers = end_to_end(list(event.headers))
            if head_size(b"", headers) > self.client.max_head:
                raise HeadError(
                    502,
                    f"upstream {where} sent a response head over {self.client.max_head} bytes",
                    "upstream-protocol-error",
                )
            self.head_read = True
            # A chunked or Content-Length body is read without h11: it stops here for the
            # response (it stays in SEND_BODY: nothing reads its state again; the
            # connection closes after the exchange, and the up link keeps its own reference
            # while it sends a request body)
            self.body = fast_body(
                self.method, event, stream, conn.trailing_data, self.client.max_head
            )
            if self.body is None:
                self.conn = conn
            return ResponseHead(event.status_code, tuple(headers), bytes(event.reason))

    async def _upload(self, conn: h11.Connection, stream: trio.abc.Stream) -> None:
        client = self.client
        assert self.nursery is not None
        scope = self.nursery.cancel_scope
        result = await run_link(
            BodySource(client.conn, client.stream, lambda outcome: client.settle(outcome, scope)),
            BodySink(conn, stream),
            self.up_slots,
            observe=client.up.observe,
            fired=client.fired("up"),
            live=client.links.get("up"),
        )
        self.request_sent()
        if result.kind != "end" or result.origin is not None:
            client.settle(outcome_of(result, "client", "upstream"), scope)

    def receive_some(self, max_bytes: int | None = None) -> Coroutine[Any, Any, bytes]:
        """The body's next read. Not `async`: it hands back the body reader's own
        coroutine, so a read waiting on an idle stream holds one frame fewer."""
        if self.body is not None:
            return self.body.read()
        assert self.conn is not None and self.stream is not None
        return _read_body(self.conn, self.stream)

    async def aclose(self) -> None:
        if self.stream is not None:
            await trio.aclose_forcefully(self.stream)


class ResponseSink:
    """The down link's `Sink`: the response head, its body chunks, and how it finishes."""

    def __init__(self, client: HttpConnection, call: UpstreamCall) -> None:
        self.client = client
        self.call = call
        self.started = call.started
        self.body = BodySink(client.conn, client.stream)

    async def send(self, piece: Piece) -> None:
        client = self.client
        if piece.head is not None:
            head = piece.head
            # the upstream's reason phrase as sent (even none); a fault's head gets the usual
            reason = head.reason if self.call.head_read else head.reason or phrase(head.status)
            headers = list(head.headers)
            if any(slot.fault.resizes_body for slot in self.call.down_slots):
                # the length may change on the way: h11 frames the body itself (chunked)
                headers = [(name, value) for name, value in headers if name != b"content-length"]
            data = client.conn.send(
                h11.Response(status_code=head.status, reason=reason, headers=headers)
            )
            await client.stream.send_all(data or b"")
            content_type = (head.header(b"content-type") or b"").decode("latin-1")
            client.write(
                "response",
                status=head.status,
                content_type=content_type or None,
                ttfb=round(trio.current_time() - self.started, 6),
                session=client.proxy.session_answered(head.headers),
            )
            sse = content_type.startswith("text/event-stream")
            client.down.begin(Framer() if client.proxy.counts_events and sse else None)
        else:
            await self.body.send(piece)

    @property
    def nowait(self) -> bool:
        return self.body.nowait

    def send_nowait(self, piece: Piece) -> bytes | memoryview:
        """A data piece (never the head: a link writes that with `send`)."""
        return self.body.send_nowait(piece)

    async def send_rest(self, rest: bytes | memoryview) -> None:
        await self.body.send_rest(rest)

    async def stop(self, kind: StopKind, status: int | None, detail: str) -> None:
        client = self.client
        nothing_sent = client.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE)
        if nothing_sent and status is not None and kind != "reset":
            await client.respond(status, detail or f"status {status}", keep=not self.call.spent)
            return
        if nothing_sent and kind == "end":
            kind = "close"  # no response to end: an empty reply
        await self.body.stop(kind, status, detail)
