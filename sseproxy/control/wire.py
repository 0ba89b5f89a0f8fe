"""The control API's HTTP plumbing: requests in, replies out, over h11 on trio.

Kept apart from the endpoints (`api.py`) so those read as plain functions of a `Request`
to a `Reply` (or a `Streamed` body), with the framing, body limits, JSON parsing and the
DNS-rebinding host check here.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

import h11
import trio

if TYPE_CHECKING:
    from sseproxy.journal import Journal

__all__ = ["MAX_BODY", "ApiError", "Handler", "Reply", "Request", "Streamed", "serve_connection"]

MAX_BODY: Final = 1024 * 1024
"""Largest request body (413 past it). A scenario of `MAX_FAULTS` faults is 50 to 200 KiB;
more is an error or an attack, and TOML past this size takes long to parse."""
_RECEIVE: Final = 64 * 1024
_JSON: Final = "application/json"


class ApiError(Exception):
    """A refused request: its status and a one-line message (sent as {"error": ...}).

    `errors`, when given, lists every mistake found (a scenario's), one line each; they
    are sent as {"errors": [...]} beside the message that sums them up."""

    def __init__(
        self,
        status: int,
        message: str,
        headers: Iterable[tuple[str, str]] = (),
        *,
        errors: Iterable[str] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = " ".join(message.split("\n"))
        self.headers = list(headers)
        self.errors = list(errors)

    def reply(self) -> Reply:
        body: dict[str, Any] = {"error": self.message}
        if self.errors:
            body["errors"] = self.errors
        return Reply.json(body, self.status, headers=self.headers)


@dataclass
class Request:
    method: str
    target: str
    path: list[str]
    """Decoded path segments: '/faults/slow%20one' -> ['faults', 'slow one']."""
    query: dict[str, str]
    headers: dict[str, str]
    """Lower-case names, latin-1 values."""
    raw_headers: dict[bytes, bytes]
    body: bytes = b""


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, value: Any, status: int = 200, **kwargs: Any) -> Reply:
        return cls(status, (json.dumps(value, indent=2) + "\n").encode(), **kwargs)


@dataclass
class Streamed:
    """A reply that streams (the journal): `run` sends the body until it returns."""

    run: Callable[[Callable[[bytes], Awaitable[None]]], Awaitable[None]]
    content_type: str = "text/event-stream"


Handler = Callable[[Request], Awaitable[Reply | Streamed]]


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _is_json(request: Request) -> bool:
    media = _media_type(request)
    return media == _JSON or media.endswith("+json")


def _json_body(request: Request) -> Any:
    if not _is_json(request):
        raise ApiError(415, "send the body as JSON, with Content-Type: application/json")
    try:
        return json.loads(request.body.decode("utf-8"))
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8") from None
    except RecursionError:
        raise ApiError(400, "the body is JSON nested too deeply to read") from None
    except json.JSONDecodeError as error:
        raise ApiError(400, f"the body is not valid JSON: {error}") from None


def _json_object(request: Request, example: str) -> dict[str, Any]:
    value = _json_body(request)
    if not isinstance(value, dict):
        raise ApiError(400, f"expected a JSON object, e.g. {example}")
    return value


def _host_allowed(host_header: str) -> bool:
    """Without a token: `localhost` or an IP address only (no DNS rebinding)."""
    if not host_header:
        return True
    host = host_header.strip()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":")[0]
    host = host.lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def _next_event(conn: h11.Connection, stream: trio.abc.Stream) -> h11.Event | type:
    while True:
        event = conn.next_event()
        if event is not h11.NEED_DATA:
            return event
        conn.receive_data(bytes(await stream.receive_some(_RECEIVE)))


async def _read_request(conn: h11.Connection, stream: trio.abc.Stream) -> Request | Reply | None:
    """The next request with its body; None when the client is done; a Reply to send
    and close with when the request is refused before it is read (too large)."""
    event = await _next_event(conn, stream)
    if not isinstance(event, h11.Request):
        return None
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in event.headers}
    raw_headers = dict(event.headers)
    if conn.they_are_waiting_for_100_continue:
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY:
            return _too_large()
        await stream.send_all(
            conn.send(h11.InformationalResponse(status_code=100, headers=[])) or b""
        )
    chunks: list[bytes] = []
    total = 0
    while isinstance(body := await _next_event(conn, stream), h11.Data):
        total += len(body.data)
        if total > MAX_BODY:
            return _too_large()
        chunks.append(bytes(body.data))
    if not isinstance(body, h11.EndOfMessage):
        return None
    target = event.target.decode("latin-1")
    parts = urlsplit(target)
    return Request(
        method=event.method.decode("latin-1").upper(),
        target=target,
        path=[unquote(segment) for segment in parts.path.split("/") if segment],
        query=dict(parse_qsl(parts.query, keep_blank_values=True)),
        headers=headers,
        raw_headers=raw_headers,
        body=b"".join(chunks),
    )


def _too_large() -> Reply:
    message = f"the body is over {MAX_BODY // 1024 // 1024} MiB, the most this API reads"
    return Reply.json({"error": message}, 413)


def _response(reply: Reply | Streamed, status: int, close: bool) -> h11.Response:
    headers = [("Content-Type", reply.content_type), ("Cache-Control", "no-store")]
    if isinstance(reply, Reply):
        headers += [*reply.headers, ("Content-Length", str(len(reply.body)))]
    else:
        headers += [("X-Accel-Buffering", "no")]
    if close:
        headers.append(("Connection", "close"))
    return h11.Response(status_code=status, headers=headers)


async def _send_reply(
    conn: h11.Connection,
    stream: trio.abc.Stream,
    reply: Reply,
    *,
    close: bool = False,
    head: bool = False,
) -> None:
    data = conn.send(_response(reply, reply.status, close)) or b""
    if reply.body and not head:
        data += conn.send(h11.Data(data=reply.body)) or b""
    data += conn.send(h11.EndOfMessage()) or b""
    await stream.send_all(data)


async def _send_streamed(conn: h11.Connection, stream: trio.abc.Stream, reply: Streamed) -> None:
    """Send a streaming reply until it ends, or the client goes away."""
    await stream.send_all(conn.send(_response(reply, 200, close=True)) or b"")

    async def send(data: bytes) -> None:
        await stream.send_all(conn.send(h11.Data(data=data)) or b"")

    async def watch(scope: trio.CancelScope) -> None:
        try:  # the client sends nothing more; EOF or an error means it left
            while await stream.receive_some(_RECEIVE):
                pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        scope.cancel()

    async def pump(scope: trio.CancelScope) -> None:
        try:
            await reply.run(send)
            await stream.send_all(conn.send(h11.EndOfMessage()) or b"")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, nursery.cancel_scope)
        nursery.start_soon(pump, nursery.cancel_scope)


SendReply = Callable[..., Awaitable[None]]
"""`_send_reply`'s shape: (conn, stream, reply, *, close=False, head=False)."""
_GONE: Final = (trio.BrokenResourceError, trio.ClosedResourceError)


async def serve_connection(
    stream: trio.abc.Stream,
    respond: Callable[[Request], Awaitable[Reply | Streamed]],
    *,
    error: Callable[[str, int], Reply],
    journal: Journal,
    send_reply: SendReply = _send_reply,
) -> None:
    """One HTTP connection of an API: requests in a keep-alive loop, each answered by
    `respond`. A bug in `respond` is a 500 (`error(message, status)` words it), malformed
    HTTP a 4xx, and any other trouble is journaled (`control-error`) and ends only this
    connection."""
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            request = await _read_request(conn, stream)
            if request is None:
                return
            if isinstance(request, Reply):
                await send_reply(conn, stream, request, close=True)
                return
            try:
                reply = await respond(request)
            except Exception as bug:  # a bug here must not take the proxy down
                reply = error(f"internal error: {bug!r}", 500)
            if isinstance(reply, Streamed):
                await _send_streamed(conn, stream, reply)
                return
            await send_reply(conn, stream, reply, head=request.method == "HEAD")
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except h11.RemoteProtocolError as bad:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            reply = error(f"bad request: {bad}", bad.error_status_hint)
            with contextlib.suppress(*_GONE, h11.LocalProtocolError):
                await send_reply(conn, stream, reply, close=True)
    except _GONE:
        pass
    except Exception as trouble:  # never let one client's trouble stop the API
        journal.write("control-error", "-", error=repr(trouble))
    finally:
        await trio.aclose_forcefully(stream)


def json_error(message: str, status: int) -> Reply:
    """The control API's error body: {"error": message}."""
    return Reply.json({"error": message}, status)
