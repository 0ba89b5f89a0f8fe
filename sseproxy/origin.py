"""The built-in SSE server ("origin"): a predictable upstream to put behind the proxy.

Demos, `sseproxy serve` and the project's tests need an event source whose every byte and
every instant is known in advance: ids count up from 1, event k of a stream is due exactly
at start + k * interval, heartbeats keep their own schedule, and `Last-Event-ID` resumes
where the client left off. The core, `handle_connection`, runs on any `trio.abc.Stream`
and reads time only from trio, so tests drive it over memory streams in virtual time;
`serve` puts it on real sockets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, fields, replace
from http import HTTPStatus
from typing import Any, Final, Literal
from urllib.parse import parse_qsl, urlsplit

import h11
import trio

from sseproxy.cors import ALLOW_ANY_ORIGIN, preflight_headers
from sseproxy.errors import UnitError
from sseproxy.units import format_size, parse_duration, parse_size

__all__ = [
    "MAX_SIZE",
    "SETTING_DOCS",
    "OriginSettings",
    "SettingDoc",
    "encode_event",
    "encode_heartbeat",
    "handle_connection",
    "parse_setting",
    "serve",
]

MAX_SIZE: Final = 16 * 1024**2  # largest padded event, and largest body /echo accepts
_RECEIVE_BYTES: Final = 64 * 1024
_PAD_FIELD: Final = len(', "pad": ""')
_EVENT_HEADERS: Final = [
    ("Content-Type", "text/event-stream"),
    ("Cache-Control", "no-cache"),
    ALLOW_ANY_ORIGIN,  # CORS: pages from anywhere may read the streams (sseproxy/cors.py)
    ("X-Accel-Buffering", "no"),
]


@dataclass(frozen=True)
class OriginSettings:
    """What `/events` sends; each request may override any field in its query string."""

    interval: float = 1.0
    heartbeat: float = 15.0
    hb: Literal["comment", "event"] = "comment"
    size: int = 0
    count: int | None = None
    retry: int | None = None
    accel: Literal["no", "omit"] = "no"

    def __post_init__(self) -> None:
        for name in ("interval", "heartbeat", "size", "count", "retry"):
            value = getattr(self, name)
            if value is not None and not (0 <= value < math.inf):
                raise ValueError(f"{name} must be finite and >= 0, not {value!r}")
        if self.hb not in ("comment", "event"):
            raise ValueError(f"hb must be 'comment' or 'event', not {self.hb!r}")
        if self.accel not in ("no", "omit"):
            raise ValueError(f"accel must be 'no' or 'omit', not {self.accel!r}")


# -- one description per setting, shared by the query string, the CLI and the index page


@dataclass(frozen=True)
class SettingDoc:
    """Help text, unit and parser of one `OriginSettings` field."""

    help: str
    unit: str  # "" when the value has no unit
    allowed: str  # what a valid value looks like, for error messages
    parse: Callable[[str], Any]  # raises ValueError


def _duration(text: str) -> float:
    value = parse_duration(text, bare_seconds=True)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _size(text: str) -> int:
    value = parse_size(text, bare_bytes=True)  # OverflowError for '1e999'
    if value > MAX_SIZE:
        raise ValueError(text)
    return value


def _whole(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,18}", text):
        raise ValueError(text)
    return int(text)


def _hb(text: str) -> str:
    if text not in ("comment", "event"):
        raise ValueError(text)
    return text


def _accel(text: str) -> str:
    if text not in ("no", "omit"):
        raise ValueError(text)
    return text


_DURATION = "seconds (e.g. 0.5) or a duration with a unit (e.g. 250ms, 2s)"
SETTING_DOCS: Final[Mapping[str, SettingDoc]] = {
    "interval": SettingDoc(
        "time between events; 0 = as fast as the client reads", "seconds", _DURATION, _duration
    ),
    "heartbeat": SettingDoc(
        "time between heartbeats, from stream start; 0 = none", "seconds", _DURATION, _duration
    ),
    "hb": SettingDoc(
        "heartbeat form: an SSE comment, or an event named 'heartbeat'",
        "",
        "'comment' or 'event'",
        _hb,
    ),
    "size": SettingDoc(
        "pad each event to at least this many bytes; 0 = natural size",
        "bytes",
        f"bytes (e.g. 512) or a size with a unit (e.g. 4KiB), at most {format_size(MAX_SIZE)}",
        _size,
    ),
    "count": SettingDoc(
        "events in the whole stream (ids 1..count); unset = endless",
        "events",
        "a whole number >= 0",
        _whole,
    ),
    "retry": SettingDoc("send 'retry: N' at stream start", "ms", "a whole number >= 0", _whole),
    "accel": SettingDoc(
        "'no' sends X-Accel-Buffering: no (nginx and buffer faults let the stream through); "
        "'omit' leaves it out, so they buffer",
        "",
        "'no' or 'omit'",
        _accel,
    ),
}
assert list(SETTING_DOCS) == [f.name for f in fields(OriginSettings)]


def parse_setting(name: str, text: str) -> Any:
    """Parse one setting as written in a query string or on the command line."""
    doc = SETTING_DOCS[name]
    try:
        return doc.parse(text)
    except (ValueError, OverflowError):
        raise UnitError(f"invalid {name}={text!r}: expected {doc.allowed}") from None


# -- the bytes on the wire


def encode_event(n: int, size: int = 0) -> bytes:
    """Event `n`, padded (a "pad" field, or spaces when that does not fit) to `size` bytes."""
    head, tail = f'id: {n}\ndata: {{"n": {n}', "}\n\n"
    gap = size - len(head) - len(tail)
    if gap >= _PAD_FIELD:
        head += f', "pad": "{"x" * (gap - _PAD_FIELD)}"'
    elif gap > 0:
        head += " " * gap
    return (head + tail).encode()


def encode_heartbeat(hb: str, elapsed: float) -> bytes:
    """A heartbeat; it never carries an id, so it cannot disturb resuming."""
    if hb == "comment":
        return b": heartbeat\n\n"
    return f'event: heartbeat\ndata: {{"t": {elapsed:.3f}}}\n\n'.encode()


# -- HTTP


class _Exchange:
    """One h11 connection over one stream, with the few moves the endpoints need."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.SERVER)
        self.method = ""

    async def send(self, *events: h11.Event) -> None:
        await self.stream.send_all(b"".join(self.conn.send(e) or b"" for e in events))

    async def next_event(self) -> h11.Event:
        # Only called while h11 expects a request or its body, so never PAUSED.
        while not isinstance(event := self.conn.next_event(), h11.Event):
            self.conn.receive_data(bytes(await self.stream.receive_some(_RECEIVE_BYTES)))
        return event

    async def read_body(self) -> bytes | None:
        """The whole request body, or None when it is larger than MAX_SIZE."""
        if self.conn.they_are_waiting_for_100_continue:
            await self.send(h11.InformationalResponse(status_code=100, headers=[]))
        chunks, total = [], 0
        while isinstance(event := await self.next_event(), h11.Data):
            total += len(event.data)
            if total > MAX_SIZE:
                return None
            chunks.append(bytes(event.data))
        return b"".join(chunks)

    async def reply(
        self,
        status: int,
        body: bytes = b"",
        *,
        content_type: str = "text/plain; charset=utf-8",
        headers: list[tuple[str, str]] | None = None,
        close: bool = False,
    ) -> None:
        headers = list(headers or [])
        if ALLOW_ANY_ORIGIN not in headers:  # CORS: every answer may be read by any page
            headers.insert(0, ALLOW_ANY_ORIGIN)
        if status in (204, 304):
            body = b""
        else:
            headers += [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if close:
            headers.append(("Connection", "close"))
        data = [h11.Data(data=body)] if body and self.method != "HEAD" else []
        response = h11.Response(status_code=status, headers=headers, reason=_reason(status))
        await self.send(response, *data, h11.EndOfMessage())


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


Dispatch = Callable[["_Exchange", h11.Request, bytes, OriginSettings], Awaitable[None]]
"""Answers one request (`_dispatch`; `origin_mcp.Instance.dispatch` adds its routes)."""


async def handle_connection(
    stream: trio.abc.Stream, settings: OriginSettings, dispatch: Dispatch | None = None
) -> None:
    """Serve HTTP/1.1 requests on `stream` until the client closes it or goes away."""
    ex = _Exchange(stream)
    try:
        try:
            while await _serve_one(ex, settings, dispatch or _dispatch):
                ex.conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            if ex.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                await ex.reply(exc.error_status_hint, f"bad request: {exc}\n".encode(), close=True)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass  # the client went away
    finally:
        await trio.aclose_forcefully(stream)


async def _serve_one(ex: _Exchange, settings: OriginSettings, dispatch: Dispatch) -> bool:
    """Answer one request; True when the connection can carry another."""
    ex.method = ""
    request = await ex.next_event()
    if not isinstance(request, h11.Request):
        return False  # ConnectionClosed
    ex.method = request.method.decode("ascii")
    body = await ex.read_body()
    if body is None:
        await ex.reply(413, f"request body larger than {MAX_SIZE} bytes\n".encode(), close=True)
        return False
    await dispatch(ex, request, body, settings)
    return ex.conn.our_state is h11.DONE and ex.conn.their_state is h11.DONE


_ALLOWED: Final = {"/": ("GET", "HEAD"), "/events": ("GET",), "/echo": ("POST", "PUT")}


async def _dispatch(
    ex: _Exchange, request: h11.Request, body: bytes, settings: OriginSettings
) -> None:
    target = urlsplit(request.target.decode("latin-1"))
    path = target.path
    allowed = ("GET", "HEAD") if path.startswith("/status/") else _ALLOWED.get(path)
    if allowed is None:
        await ex.reply(404, f"not found: {path}\n".encode())
    elif ex.method == "OPTIONS":  # a CORS preflight, or a plain question
        await ex.reply(204, headers=preflight_headers(dict(request.headers), allowed))
    elif ex.method not in allowed:
        await ex.reply(
            405, f"{ex.method} not allowed\n".encode(), headers=[("Allow", ", ".join(allowed))]
        )
    elif path == "/events":
        await _events(ex, request, target.query, settings)
    elif path == "/echo":
        content_type = dict(request.headers).get(b"content-type", b"application/octet-stream")
        await ex.reply(200, body, content_type=content_type.decode("latin-1"))
    elif path == "/":
        await ex.reply(200, _index(settings).encode())
    else:
        code = path.removeprefix("/status/")
        if re.fullmatch(r"[2-5][0-9][0-9]", code):
            await ex.reply(int(code), f"status {code}\n".encode())
        else:
            await ex.reply(400, f"invalid status {code!r}: expected 200-599\n".encode())


def _index(settings: OriginSettings) -> str:
    params = "".join(
        f"  {name:<10} {doc.help} (default: {_shown(getattr(settings, name), doc.unit)})\n"
        for name, doc in SETTING_DOCS.items()
    )
    return (
        "sseproxy origin: a predictable Server-Sent Events server\n\n"
        "GET      /events         event stream; resumes after a Last-Event-ID header\n"
        "GET|HEAD /status/{code}  respond with that status (200-599)\n"
        "POST|PUT /echo           respond with the request body\n\n"
        f"/events query parameters (any other is answered 400):\n{params}"
    )


def _shown(value: object, unit: str) -> str:
    return "unset" if value is None else f"{value} {unit}".rstrip()


def _last_event_id(request: h11.Request) -> int:
    value = dict(request.headers).get(b"last-event-id", b"")
    return int(value) if re.fullmatch(rb"[0-9]{1,18}", value) else 0


async def _events(
    ex: _Exchange, request: h11.Request, query: str, settings: OriginSettings
) -> None:
    overrides: dict[str, Any] = {}
    try:
        for name, text in parse_qsl(query, keep_blank_values=True):
            if name not in SETTING_DOCS:  # a typo ('intervl') must not pass unnoticed
                known = ", ".join(SETTING_DOCS)
                raise UnitError(f"unknown query parameter {name!r}: known are {known}")
            overrides[name] = parse_setting(name, text)
    except UnitError as exc:
        await ex.reply(400, f"{exc}\n".encode())
        return
    chosen = replace(settings, **overrides)
    headers = [h for h in _EVENT_HEADERS if chosen.accel == "no" or h[0] != "X-Accel-Buffering"]
    await ex.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
    await _stream(ex, chosen, _last_event_id(request) + 1)
    await ex.send(h11.EndOfMessage())


async def _stream(ex: _Exchange, s: OriginSettings, first_id: int) -> None:
    """Events from `first_id` on, drift-free; heartbeats on their own schedule."""
    start = trio.current_time()
    if s.retry is not None:
        await ex.send(h11.Data(data=f"retry: {s.retry}\n\n".encode()))
    n, beats = first_id, 0
    while s.count is None or n <= s.count:
        event_due = start + (n - first_id) * s.interval
        beat_due = start + (beats + 1) * s.heartbeat if s.heartbeat else math.inf
        if beat_due < event_due:
            await trio.sleep_until(beat_due)
            beats += 1
            data = encode_heartbeat(s.hb, trio.current_time() - start)
        else:
            await trio.sleep_until(event_due)
            data, n = encode_event(n, s.size), n + 1
        await ex.send(h11.Data(data=data))


async def serve(
    host: str,
    port: int,
    settings: OriginSettings,
    *,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; reports the bound port (useful with port 0) to `nursery.start`."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound: int = listeners[0].socket.getsockname()[1]
    for extra in [lst for lst in listeners if lst.socket.getsockname()[1] != bound]:
        listeners.remove(extra)  # port 0 on a dual-stack host: keep one port only
        await extra.aclose()

    async def handler(stream: trio.SocketStream) -> None:
        await handle_connection(stream, settings)

    task_status.started(bound)
    await trio.serve_listeners(handler, listeners)
