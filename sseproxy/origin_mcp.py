"""MCP-style session endpoints for the built-in server, and `sseproxy serve --instances N`.

The user story behind issue 13: an MCP server runs as several instances behind a load
balancer; each keeps its sessions in its own memory, so a client whose requests reach
another instance (or the same one after a restart) is told its session is unknown. An
`Instance` is one such server: the built-in `/events` and friends (`sseproxy.origin`),
plus the two MCP transports with a session table of its own, on the wire as the `mcp`
SDK (PyPI) serves them:

* legacy HTTP+SSE: `GET /sse` opens a stream whose first event is `endpoint`, the path to
  POST to, `/messages/?session_id=<hex>`. A POST there answers `202 Accepted` and its
  JSON-RPC response comes as a `message` event on that stream; an unknown session gets
  `404 Could not find session`, a missing id 400. The session lives as long as its stream.
* Streamable HTTP at `/mcp`: an `initialize` POST without a session gets an
  `Mcp-Session-Id`; later POSTs carry it and get their response as JSON; an unknown id
  gets 404 with the JSON-RPC error -32600 "Session not found" (the SDK's words). `GET
  /mcp` streams notifications (`notifications/message`, one every `interval`, ids 1, 2,
  ...), resumable with `Last-Event-ID`; `DELETE /mcp` ends the session.

The JSON-RPC side (`sseproxy.mcp_rpc`) is the least a real client needs.

`POST /_restart` (loopback clients only) plays a process restart: the instance forgets
every session and closes every other connection at once, a streaming response without its
terminating chunk (as a killed process leaves it). `GET /_instance` says who it is.
"""

from __future__ import annotations

import contextvars
import ipaddress
import math
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl

import h11
import trio

from sseproxy import origin
from sseproxy.mcp_rpc import INVALID_REQUEST, PARSE_ERROR, Json, answer, dumps, parse
from sseproxy.origin import OriginSettings
from sseproxy.words import plural

__all__ = ["Instance", "serve_instance", "serve_instances"]

MESSAGES_PATH: Final = "/messages/"
_QUEUE: Final = 64  # responses waiting for a legacy stream; past it a POST gets 503
_JSON: Final = "application/json"
_STREAM_HEADERS: Final = [
    ("Content-Type", "text/event-stream; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("X-Accel-Buffering", "no"),
]

_CONNECTION: contextvars.ContextVar[trio.CancelScope] = contextvars.ContextVar("connection")
Route = Callable[["origin._Exchange", h11.Request, str, bytes], Awaitable[None]]


@dataclass
class _Streamed:
    """A Streamable HTTP session: when it began (its notifications' clock), its GET stream."""

    started: float
    stream: trio.CancelScope | None = None


@dataclass
class Instance:
    """One built-in server instance with its own session tables; `restart` forgets them."""

    name: str
    settings: OriginSettings = field(default_factory=OriginSettings)
    port: int = 0
    restarts: int = 0
    legacy: dict[str, trio.MemorySendChannel[bytes]] = field(default_factory=dict)
    """Legacy HTTP+SSE sessions: where their JSON-RPC responses go (the GET /sse stream)."""
    streamable: dict[str, _Streamed] = field(default_factory=dict)
    connections: set[trio.CancelScope] = field(default_factory=set)

    @property
    def sessions(self) -> int:
        return len(self.legacy) + len(self.streamable)

    async def handle_connection(self, stream: trio.abc.Stream) -> None:
        """`origin.handle_connection` with this instance's routes; `restart` cancels it."""
        with trio.CancelScope() as scope:
            self.connections.add(scope)
            _CONNECTION.set(scope)  # each connection is a task of its own, with its context
            try:
                await origin.handle_connection(stream, self.settings, self.dispatch)
            finally:
                self.connections.discard(scope)

    def restart(self, keep: trio.CancelScope | None = None) -> int:
        """Forget every session and close every connection (but `keep`); how many
        sessions were forgotten."""
        forgotten = self.sessions
        self.legacy.clear()
        self.streamable.clear()
        for scope in list(self.connections):
            if scope is not keep:
                scope.cancel()
        self.restarts += 1
        return forgotten

    async def dispatch(
        self, ex: origin._Exchange, request: h11.Request, body: bytes, settings: OriginSettings
    ) -> None:
        target = request.target.decode("latin-1")
        path, _, query = target.partition("?")
        route = self._routes().get(path.rstrip("/") or "/")
        if route is None:
            await origin._dispatch(ex, request, body, settings)
        else:
            await route(ex, request, query, body)

    def _routes(self) -> dict[str, Route]:
        return {
            "/sse": self._sse,
            MESSAGES_PATH.rstrip("/"): self._message,
            "/mcp": self._mcp,
            "/_restart": self._restart,
            "/_instance": self._instance,
        }

    # -- admin -------------------------------------------------------------------------

    async def _restart(self, ex: origin._Exchange, request: h11.Request, q: str, b: bytes) -> None:
        if not await _allow(ex, "POST"):
            return
        if not _loopback(ex.stream):
            await ex.reply(403, b"/_restart is for loopback clients only\n")
            return
        forgotten = self.restart(keep=_CONNECTION.get(None))
        text = f"restarted {self.name}: forgot {plural(forgotten, 'session')}\n"
        await ex.reply(200, text.encode(), close=True)

    async def _instance(self, ex: origin._Exchange, request: h11.Request, q: str, b: bytes) -> None:
        if not await _allow(ex, "GET"):
            return
        about = {
            "name": self.name,
            "port": self.port,
            "sessions": self.sessions,
            "restarts": self.restarts,
        }
        await ex.reply(200, dumps(about).encode(), content_type=_JSON)

    # -- legacy HTTP+SSE ---------------------------------------------------------------

    async def _sse(self, ex: origin._Exchange, request: h11.Request, q: str, b: bytes) -> None:
        if not await _allow(ex, "GET"):
            return
        session = uuid.uuid4().hex
        send, receive = trio.open_memory_channel[bytes](_QUEUE)
        self.legacy[session] = send
        try:
            await ex.send(h11.Response(status_code=200, headers=_STREAM_HEADERS, reason=b"OK"))
            endpoint = f"{MESSAGES_PATH}?session_id={session}"
            await ex.send(h11.Data(data=_sse_event(endpoint, "endpoint")))
            await _pump(ex, receive, self.settings.heartbeat)
        finally:
            if self.legacy.get(session) is send:
                del self.legacy[session]

    async def _message(self, ex: origin._Exchange, request: h11.Request, q: str, b: bytes) -> None:
        if not await _allow(ex, "POST"):
            return
        session = dict(parse_qsl(q)).get("session_id")
        if session is None:
            await ex.reply(400, b"session_id is required")
            return
        try:
            session = uuid.UUID(hex=session).hex
        except ValueError:
            await ex.reply(400, b"Invalid session ID")
            return
        stream = self.legacy.get(session)
        if stream is None:
            await ex.reply(404, b"Could not find session")
            return
        message = parse(b)
        if message is None:
            await ex.reply(400, b"Could not parse message")
            return
        reply = answer(message, self.name)
        if reply is not None:
            try:
                stream.send_nowait(_sse_event(dumps(reply), "message"))
            except trio.WouldBlock:
                await ex.reply(503, b"the session's stream is not being read")
                return
        await ex.reply(202, b"Accepted")

    # -- Streamable HTTP ---------------------------------------------------------------

    async def _mcp(self, ex: origin._Exchange, request: h11.Request, q: str, b: bytes) -> None:
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers
        }
        session_id = headers.get("mcp-session-id")
        accept = headers.get("accept", "")
        if ex.method not in ("GET", "POST", "DELETE"):
            allow = [("Allow", "GET, POST, DELETE")]
            await _error(ex, 405, "Method Not Allowed", headers=allow)
            return
        if ex.method == "POST" and not _accepts(accept, _JSON):
            await _error(ex, 406, "Not Acceptable: Client must accept application/json")
            return
        if ex.method == "GET" and not _accepts(accept, "text/event-stream"):
            await _error(ex, 406, "Not Acceptable: Client must accept text/event-stream")
            return
        message: Json | None = None
        if ex.method == "POST":
            content_type = headers.get("content-type", "").split(";")[0].strip()
            if content_type != _JSON:
                text = "Unsupported Media Type: Content-Type must be application/json"
                await _error(ex, 415, text)
                return
            message = parse(b)
            if message is None:
                await _error(ex, 400, "Parse error", PARSE_ERROR)
                return
        if session_id is None:
            if message is not None and message.get("method") == "initialize":
                await self._initialize(ex, message)
            else:
                await _error(ex, 400, "Bad Request: Missing session ID")
            return
        session = self.streamable.get(session_id)
        if session is None:  # the SDK's manager: "Unknown or expired session ID"
            await _error(ex, 404, "Session not found")
            return
        echo = [("Mcp-Session-Id", session_id)]
        if ex.method == "DELETE":
            del self.streamable[session_id]
            if session.stream is not None:
                session.stream.cancel()
            await ex.reply(200, b"", content_type=_JSON, headers=echo)
        elif ex.method == "GET":
            await self._notifications(ex, session, headers.get("last-event-id"), echo)
        else:
            assert message is not None
            reply = answer(message, self.name)
            if reply is None:
                await ex.reply(202, b"", content_type=_JSON, headers=echo)
            else:
                await ex.reply(200, dumps(reply).encode(), content_type=_JSON, headers=echo)

    async def _initialize(self, ex: origin._Exchange, message: Json) -> None:
        session_id = uuid.uuid4().hex
        self.streamable[session_id] = _Streamed(trio.current_time())
        reply = answer(message, self.name)
        echo = [("Mcp-Session-Id", session_id)]
        await ex.reply(200, dumps(reply).encode(), content_type=_JSON, headers=echo)

    async def _notifications(
        self,
        ex: origin._Exchange,
        session: _Streamed,
        last_event_id: str | None,
        echo: list[tuple[str, str]],
    ) -> None:
        """Notification k of a session is due at its start + k * interval; a GET gets
        those due from now on, or (resuming) every one after `Last-Event-ID` at once."""
        interval = self.settings.interval
        due_now = math.floor((trio.current_time() - session.started) / interval) if interval else 0
        resumed = last_event_id is not None and last_event_id.isdigit()
        if session.stream is not None and not resumed:
            await _error(ex, 409, "Conflict: Only one SSE stream is allowed per session")
            return
        if session.stream is not None:
            session.stream.cancel()  # a resumed stream takes over from a stale one
        first = int(last_event_id) + 1 if resumed and last_event_id else due_now + 1
        with trio.CancelScope() as scope:
            session.stream = scope
            try:
                headers = [*_STREAM_HEADERS, *echo]
                await ex.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_cancel_on_eof, ex.stream, nursery.cancel_scope)
                    await self._tick(ex, session, first)
            finally:
                if session.stream is scope:
                    session.stream = None

    async def _tick(self, ex: origin._Exchange, session: _Streamed, first: int) -> None:
        interval, heartbeat = self.settings.interval, self.settings.heartbeat
        n = first
        next_beat = trio.current_time() + heartbeat if heartbeat else math.inf
        while self.settings.count is None or n <= self.settings.count:
            due = session.started + n * interval if interval else math.inf  # 0: none
            if math.isinf(due) and math.isinf(next_beat):
                break
            if next_beat < due:
                await trio.sleep_until(next_beat)
                next_beat += heartbeat
                await ex.send(h11.Data(data=b": ping\r\n\r\n"))
                continue
            await trio.sleep_until(due)
            note = {
                "jsonrpc": "2.0",
                "method": "notifications/message",
                "params": {"level": "info", "logger": self.name, "data": {"n": n}},
            }
            await ex.send(h11.Data(data=_sse_event(dumps(note), "message", str(n))))
            n += 1
        await trio.sleep_forever()  # the stream stays open, as the SDK's does


def _sse_event(data: str, event: str, ident: str | None = None) -> bytes:
    lines = [f"event: {event}"] + ([f"id: {ident}"] if ident else []) + [f"data: {data}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _accepts(accept: str, kind: str) -> bool:
    kinds = {part.split(";")[0].strip() for part in accept.split(",")}
    return bool(kinds & {kind, "*/*", kind.split("/")[0] + "/*"})


async def _error(
    ex: origin._Exchange,
    status: int,
    message: str,
    code: int = INVALID_REQUEST,
    headers: list[tuple[str, str]] | None = None,
) -> None:
    """A JSON-RPC error body without a request id, as the SDK's transports answer."""
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    await ex.reply(status, dumps(body).encode(), content_type=_JSON, headers=headers)


async def _allow(ex: origin._Exchange, method: str) -> bool:
    if ex.method == method:
        return True
    await ex.reply(405, f"{ex.method} not allowed\n".encode(), headers=[("Allow", method)])
    return False


def _loopback(stream: trio.abc.Stream) -> bool:
    """A loopback peer (or a memory stream, in tests)."""
    sock = getattr(stream, "socket", None)
    if sock is None:
        return True
    try:
        return ipaddress.ip_address(sock.getpeername()[0]).is_loopback
    except (OSError, ValueError, IndexError):
        return False


async def _pump(
    ex: origin._Exchange, receive: trio.MemoryReceiveChannel[bytes], beat: float
) -> None:
    """Send what arrives on `receive` until the client goes away; a comment every `beat`."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_cancel_on_eof, ex.stream, nursery.cancel_scope)
        while True:
            with trio.move_on_after(beat if beat else math.inf):
                data = await receive.receive()
                await ex.send(h11.Data(data=data))
                continue
            await ex.send(h11.Data(data=b": ping\r\n\r\n"))


async def _cancel_on_eof(stream: trio.abc.Stream, scope: trio.CancelScope) -> None:
    """A streaming response's client sends nothing more; EOF or an error means it left."""
    try:
        while await stream.receive_some(4096):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()


async def serve_instance(
    host: str,
    port: int,
    instance: Instance,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve one instance until cancelled; reports its bound port to `nursery.start`."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound: int = listeners[0].socket.getsockname()[1]
    for extra in [lst for lst in listeners if lst.socket.getsockname()[1] != bound]:
        listeners.remove(extra)
        await extra.aclose()
    instance.port = bound
    task_status.started(bound)
    await trio.serve_listeners(instance.handle_connection, listeners)


async def serve_instances(
    host: str,
    port: int,
    count: int,
    settings: OriginSettings,
    *,
    names: Sequence[str] = (),
    task_status: trio.TaskStatus[list[Instance]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """`count` instances on `port`, `port + 1`, ... (port 0: free ports), named i1, i2, ...
    (or `names`, as a proxy's pool members). Reports them (with their ports) to
    `nursery.start`."""
    names = list(names) or [f"i{k + 1}" for k in range(count)]
    instances = [Instance(names[k], settings) for k in range(count)]
    async with trio.open_nursery() as nursery:
        for k, instance in enumerate(instances):
            await nursery.start(serve_instance, host, port + k if port else 0, instance)
        task_status.started(instances)
