"""HTTP mode: h11 on both sides, one upstream connection per request, bodies via links.

The request body goes up through the `up` link and the response body comes down through
the `down` link; with no fault they are plain copies, flushed chunk by chunk. Bad input
gets the status a real proxy sends (400, 431, 502, 504) and ends only its own connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h11
import trio

from sseproxy.journal import Tally
from sseproxy.link import CHUNK, FaultSlot, LinkResult, run_link
from sseproxy.plan import Chains
from sseproxy.scenario import RequestInfo
from sseproxy.sse import Framer
from sseproxy.transport import UpstreamError, abort, failure_reason

if TYPE_CHECKING:
    from sseproxy.proxy import Proxy

__all__ = ["HttpConnection", "end_to_end"]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError)
_WATCH_LIMIT = 64 * 1024


class Truncated(trio.BrokenResourceError):
    """The peer closed before the end of the message body."""


class Garbled(trio.BrokenResourceError):
    """The peer broke the HTTP protocol."""


def end_to_end(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Drop hop-by-hop headers (RFC 9110 §7.6.1), including those listed in Connection."""
    listed = {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    }
    return [(n, v) for n, v in headers if n not in HOP_BY_HOP and n not in listed]


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> Any:
    """The next h11 event that is not NEED_DATA (reading from `stream` as needed)."""
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(bytes(await stream.receive_some(CHUNK)))


class BodySource(trio.abc.ReceiveStream):
    """A message body as a byte stream: h11 Data events in, b'' at EndOfMessage."""

    def __init__(self, conn: h11.Connection, stream: trio.abc.Stream) -> None:
        self.conn = conn
        self.stream = stream
        self.rest = b""
        self.saw_eof = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        limit = max_bytes or CHUNK
        if not self.rest:
            self.rest = await self._next_data()
        data, self.rest = self.rest[:limit], self.rest[limit:]
        return data

    async def _next_data(self) -> bytes:
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as error:
                raise (Truncated if self.saw_eof else Garbled)(str(error)) from error
            if event is h11.NEED_DATA:
                data = bytes(await self.stream.receive_some(CHUNK))
                self.saw_eof = not data
                self.conn.receive_data(data)
            elif type(event) is h11.Data:
                if event.data:
                    return bytes(event.data)
            elif type(event) is h11.EndOfMessage:
                return b""
            else:
                raise Truncated(f"{type(event).__name__} before the end of the body")

    async def aclose(self) -> None:
        await self.stream.aclose()


class BodySink:
    """A `Sink` writing a message body through h11 (chunks, terminating chunk, close, RST)."""

    def __init__(self, conn: h11.Connection, stream: trio.abc.Stream) -> None:
        self.conn = conn
        self.stream = stream

    async def send_all(self, data: bytes) -> None:
        framed = self.conn.send(h11.Data(data=data))
        if framed:
            await self.stream.send_all(framed)

    async def end(self) -> None:
        try:
            tail = self.conn.send(h11.EndOfMessage())
        except h11.LocalProtocolError:  # a Content-Length body cut short cannot end cleanly
            await self.close()
            return
        await self.stream.send_all(tail or b"")

    async def close(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def reset(self) -> None:
        await abort(self.stream)


@dataclass(frozen=True)
class Outcome:
    """Who ended an exchange and why, in the journal's vocabulary."""

    by: str
    reason: str
    detail: str = ""
    keep_alive: bool = False


def _outcome(result: LinkResult, source: str, sink: str) -> Outcome:
    if result.kind == "sink-error":
        return Outcome(sink, _reason(result.error, sink))
    if result.origin is not None:
        return Outcome("proxy", result.origin, result.detail, keep_alive=result.kind == "end")
    if result.error is not None:
        return Outcome(source, _reason(result.error, source), str(result.error))
    return Outcome(source, f"{source}-end", keep_alive=True)


def _reason(error: BaseException | None, side: str) -> str:
    if isinstance(error, Garbled):
        return f"{side}-protocol-error"
    if isinstance(error, Truncated) or error is None:
        return f"{side}-closed"
    return failure_reason(error, side)


class HttpConnection:
    """One client connection: requests in a keep-alive loop, each relayed to the upstream."""

    def __init__(self, proxy: Proxy, stream: trio.abc.Stream, conn_id: str, client: str):
        self.proxy = proxy
        self.stream = stream
        self.id = conn_id
        self.client_address = client
        self.conn = h11.Connection(
            h11.SERVER, max_incomplete_event_size=proxy.settings.max_head_size
        )
        self.down = Tally()
        self.up = Tally()
        self.settled: Outcome | None = None
        self.requests = 0

    def write(self, kind: str, **fields: Any) -> None:
        self.proxy.journal.write(kind, self.id, **fields)

    async def run(self) -> None:
        opened = trio.current_time()
        self.write("opened", client=self.client_address, mode="http")
        final = Outcome("client", "client-closed")
        try:
            while True:
                try:
                    request = await _next_event(self.conn, self.stream)
                except h11.RemoteProtocolError as error:
                    status = error.error_status_hint
                    reason = "head-too-large" if status == 431 else "bad-request"
                    await self.respond(status, f"bad request: {error}")
                    final = Outcome("proxy", reason, str(error))
                    break
                except _BROKEN as error:
                    final = Outcome("client", _reason(error, "client"))
                    break
                if type(request) is not h11.Request:  # ConnectionClosed: client is done
                    break
                final = await self.exchange(request)
                if not final.keep_alive or self.conn.our_state is not h11.DONE:
                    break
                if self.conn.their_state is not h11.DONE:
                    break
                self.conn.start_next_cycle()
                final = Outcome("client", "client-closed")
        except trio.Cancelled:
            final = Outcome("proxy", "shutdown")
            raise
        finally:
            await trio.aclose_forcefully(self.stream)
            self.write(
                "closed",
                by=final.by,
                reason=final.reason,
                detail=final.detail or None,
                duration=round(trio.current_time() - opened, 6),
                requests=self.requests,
                **self.down.summary("down"),
                **self.up.summary("up"),
            )

    async def respond(self, status: int, text: str) -> None:
        """An error response from the proxy itself, then the connection closes."""
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = f"sseproxy: {text}\n".encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        try:
            data = self.conn.send(h11.Response(status_code=status, headers=headers))
            data = (data or b"") + (self.conn.send(h11.Data(data=body)) or b"")
            data += self.conn.send(h11.EndOfMessage()) or b""
            await self.stream.send_all(data)
        except (*_BROKEN, h11.LocalProtocolError):
            pass
        self.write("response", status=status, origin="proxy")

    async def exchange(self, request: h11.Request) -> Outcome:
        self.requests += 1
        started = trio.current_time()
        number = self.proxy.next_exchange()
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers
        }
        path = request.target.decode("latin-1")
        info = RequestInfo(request.method.decode("latin-1"), path, headers)
        chains = self.proxy.plan.chains(number, info, started)
        self.write(
            "request",
            req=number,
            method=info.method,
            path=path,
            last_event_id=headers.get("last-event-id"),
            user_agent=headers.get("user-agent"),
            faults=chains.names() or None,
        )
        self.settled = None
        try:
            upstream = await self.proxy.connect()
        except UpstreamError as error:
            await self.respond(error.status, str(error))
            return self.end_exchange(
                number, started, Outcome("upstream", f"upstream-{error.kind}", str(error))
            )
        up = h11.Connection(h11.CLIENT, max_incomplete_event_size=self.proxy.settings.max_head_size)
        outcome = Outcome("proxy", "cancelled")
        try:
            async with trio.open_nursery() as nursery:
                outcome = await self._relay(request, upstream, up, chains, nursery, started)
                nursery.cancel_scope.cancel()
        finally:
            await trio.aclose_forcefully(upstream)
        return self.end_exchange(number, started, self.settled or outcome)

    def end_exchange(self, number: int, started: float, outcome: Outcome) -> Outcome:
        self.write(
            "ended",
            req=number,
            by=outcome.by,
            reason=outcome.reason,
            detail=outcome.detail or None,
            duration=round(trio.current_time() - started, 6),
        )
        return outcome

    def settle(self, outcome: Outcome, scope: trio.CancelScope) -> None:
        """First cause wins: record it and stop everything else in the exchange."""
        if self.settled is None:
            self.settled = outcome
        scope.cancel()

    async def _relay(
        self,
        request: h11.Request,
        upstream: trio.abc.Stream,
        up: h11.Connection,
        chains: Chains,
        nursery: trio.Nursery,
        started: float,
    ) -> Outcome:
        headers = end_to_end(list(request.headers))
        headers = [(n, v) for n, v in headers if n != b"host"]
        headers.insert(0, (b"host", self.proxy.settings.upstream.authority.encode()))
        if any(n == b"transfer-encoding" for n, _ in request.headers):
            headers.append((b"transfer-encoding", b"chunked"))
        forwarded = self.client_address.rsplit(":", 1)[0]
        headers.append((b"x-forwarded-for", forwarded.encode()))
        try:
            head = up.send(
                h11.Request(method=request.method, target=request.target, headers=headers)
            )
            await upstream.send_all(head or b"")
        except _BROKEN as error:
            await self.respond(502, f"upstream {self.proxy.settings.upstream} failed: {error}")
            return Outcome("upstream", _reason(error, "upstream"), str(error))

        request_read = trio.Event()
        nursery.start_soon(self._upload, up, upstream, chains.up, request_read, nursery)
        nursery.start_soon(self._watch_client, request_read, nursery.cancel_scope)

        where = self.proxy.settings.upstream
        try:
            response = await _next_event(up, upstream)
        except h11.RemoteProtocolError as error:
            await self.respond(502, f"upstream {where} sent a malformed response: {error}")
            return Outcome("upstream", "upstream-protocol-error", str(error))
        except _BROKEN as error:
            await self.respond(502, f"upstream {where} failed before responding: {error}")
            return Outcome("upstream", _reason(error, "upstream"), str(error))
        if type(response) is not h11.Response:
            await self.respond(502, f"upstream {where} closed the connection without a response")
            return Outcome("upstream", "upstream-closed", "no response")

        content_type = dict(response.headers).get(b"content-type", b"").decode("latin-1")
        try:
            data = self.conn.send(
                h11.Response(
                    status_code=response.status_code,
                    headers=end_to_end(list(response.headers)),
                    reason=response.reason,
                )
            )
            await self.stream.send_all(data or b"")
        except _BROKEN as error:
            return Outcome("client", _reason(error, "client"))
        self.write(
            "response",
            status=response.status_code,
            content_type=content_type or None,
            ttfb=round(trio.current_time() - started, 6),
        )
        if self.proxy.counts_events and content_type.startswith("text/event-stream"):
            self.down.framer = Framer()
        result = await run_link(
            BodySource(up, upstream),
            BodySink(self.conn, self.stream),
            chains.down,
            observe=self.down.observe,
            fired=lambda name, action, detail: self.write(
                "fault", fault=name, action=action, detail=detail, direction="down"
            ),
        )
        return _outcome(result, "upstream", "client")

    async def _upload(
        self,
        up: h11.Connection,
        upstream: trio.abc.Stream,
        slots: list[FaultSlot],
        done: trio.Event,
        nursery: trio.Nursery,
    ) -> None:
        result = await run_link(
            BodySource(self.conn, self.stream),
            BodySink(up, upstream),
            slots,
            observe=self.up.observe,
            fired=lambda name, action, detail: self.write(
                "fault", fault=name, action=action, detail=detail, direction="up"
            ),
        )
        done.set()
        if result.kind != "end" or result.origin is not None:
            self.settle(_outcome(result, "client", "upstream"), nursery.cancel_scope)

    async def _watch_client(self, request_read: trio.Event, scope: trio.CancelScope) -> None:
        """Notice a client that goes away mid-response (as nginx does), not only on write."""
        await request_read.wait()
        buffered = 0
        while buffered < _WATCH_LIMIT:
            try:
                data = await self.stream.receive_some(CHUNK)
            except trio.ClosedResourceError:
                return  # we closed it ourselves: the link knows why
            except trio.BrokenResourceError as error:
                self.settle(Outcome("client", _reason(error, "client")), scope)
                return
            if not data:
                if self.conn.our_state is h11.DONE:  # the response is complete: a normal close
                    self.conn.receive_data(b"")
                else:
                    self.settle(Outcome("client", "client-closed"), scope)
                return
            self.conn.receive_data(bytes(data))
            buffered += len(data)
