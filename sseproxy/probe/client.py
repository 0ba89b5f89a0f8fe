"""One EventSource, as the WHATWG HTML spec has it, over any `trio.abc.Stream`.

The rules followed ("Server-sent events", "Processing model"):

- The request is a GET with `Accept: text/event-stream` and `Cache-Control: no-cache`,
  and `Last-Event-ID` when the source's last event ID string is not empty. That string
  outlives connections: it is set at every blank line (even one that dispatches nothing)
  and is what the next connection resumes from.
- A response other than 200, or one whose content type is not `text/event-stream`, fails
  the connection for good: no reconnect ("status"). A 204 is such a response: the
  server's way to tell a client to stop.
- Any other end (a clean end of the body, a body cut short, a reset, a refused connect)
  reestablishes the connection after the reconnection time: 3 s unless the stream set
  `retry:`, which takes effect as soon as its line is read.
- The parsing is sseproxy's own `Framer` (sse.py), spec-exact and split-proof.

One thing no browser does, but SDKs do: `watchdog`, a timer that only events reset
(comments do not), after which the client drops the connection and reconnects. It runs
from the moment the request is sent, so a server that never answers trips it too.

Not followed, on purpose: redirects (a 3xx is a status that stops the client, where a
browser would follow it), and the exponential backoff the spec allows but does not ask
for. Extra headers (`--header`) replace the ones above of the same name.

How each attempt ended is told by what the client itself saw: a clean end (terminating
chunk, full Content-Length, or a close-delimited body), an incomplete body (EOF before
that), an RST (ECONNRESET), the watchdog, a status, a refused connect, bad HTTP. Times
and counts go into the `ClientRecord`; `Hooks` hear about each step (the probe's journal).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import h11
import trio

from sseproxy.probe.record import Attempt, ClientRecord, Kind
from sseproxy.probe.target import Connect
from sseproxy.sse import Framer
from sseproxy.transport import UpstreamError, failure_reason

__all__ = ["DEFAULT_RECONNECT", "Client", "Hooks", "Settings", "counter"]

DEFAULT_RECONNECT: Final = 3.0
"""The spec's default reconnection time, in seconds ("a few seconds": browsers use 3)."""
_RECEIVE: Final = 64 * 1024
_MAX_HEAD: Final = 64 * 1024


class Hooks(Protocol):
    """Told about each step of each attempt, as it happens (the probe's journal)."""

    def opened(self, attempt: Attempt) -> None: ...
    def requested(
        self, attempt: Attempt, method: str, target: str, headers: dict[str, str]
    ) -> None:
        """`headers`: as sent, names in lower case."""

    def responded(self, attempt: Attempt) -> None: ...
    def closed(self, attempt: Attempt) -> None: ...


class _Silent:
    def opened(self, attempt: Attempt) -> None:
        pass

    def requested(
        self, attempt: Attempt, method: str, target: str, headers: dict[str, str]
    ) -> None:
        pass

    def responded(self, attempt: Attempt) -> None:
        pass

    def closed(self, attempt: Attempt) -> None:
        pass


@dataclass(frozen=True)
class Settings:
    """What every client of a probe sends."""

    authority: str
    """The Host header."""
    target: str
    """The request target (path and query)."""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra request headers (--header); each replaces an EventSource one of its name."""
    watchdog: float | None = None
    """Seconds without an event after which the client drops the stream (None: never)."""
    user_agent: str = "sseproxy-probe"


class Client:
    """One EventSource: connect, read, reconnect, until told to stop or the spec says so."""

    def __init__(
        self,
        record: ClientRecord,
        settings: Settings,
        connect: Connect,
        *,
        origin: float,
        last_event_id: str = "",
        hooks: Hooks | None = None,
        next_conn: Callable[[], str] | None = None,
    ) -> None:
        self.record = record
        self.settings = settings
        self.connect = connect
        self.origin = origin
        self.last_id = last_event_id
        self.reconnection = DEFAULT_RECONNECT
        self.hooks: Hooks = hooks or _Silent()
        self.attempt: Attempt | None = None
        self.watchdog_at = math.inf
        self._next_conn = next_conn or counter()

    def now(self) -> float:
        return trio.current_time() - self.origin

    async def run(self) -> None:
        """Attempts one after the other; cancel to stop (the open attempt ends `run-end`)."""
        record = self.record
        record.started = self.now()
        try:
            while True:
                previous = self.attempt
                attempt = Attempt(record.number, len(record.attempts) + 1, "", self.now())
                attempt.conn = self._next_conn()
                if previous is not None and previous.ended is not None:
                    attempt.delay_before = attempt.started - previous.ended
                record.attempts.append(attempt)
                self.attempt = attempt
                record.state = "connecting"
                await self._attempt(attempt)
                if attempt.final:
                    return
                record.state = "reconnecting"
                await trio.sleep(self.reconnection)
        finally:
            now = self.now()
            if self.attempt is not None and self.attempt.ended is None:
                self._end(self.attempt, now, "run-end", "the probe stopped")
            record.finish(now)

    def _end(self, attempt: Attempt, now: float, kind: Kind, detail: str = "", **kw: bool) -> None:
        attempt.end(now, kind, detail, **kw)
        self.hooks.closed(attempt)

    async def _attempt(self, attempt: Attempt) -> None:
        try:
            stream = await self.connect()
        except UpstreamError as error:
            self.hooks.opened(attempt)
            self._request_headers(attempt)
            attempt.reason = error.reason
            # the proxy's words name its upstream; for a client, it is the server
            self._end(attempt, self.now(), "refused", str(error).replace("upstream ", "", 1))
            return
        try:
            attempt.local = _local_address(stream)
            self.hooks.opened(attempt)
            await self._exchange(stream, attempt)
        finally:
            await trio.aclose_forcefully(stream)

    def _request_headers(self, attempt: Attempt) -> list[tuple[str, str]]:
        headers = [
            ("Host", self.settings.authority),
            ("Accept", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("User-Agent", self.settings.user_agent),
        ]
        if self.last_id:
            headers.append(("Last-Event-ID", self.last_id))
            attempt.last_event_id = self.last_id
        given = {name.lower() for name, _ in self.settings.headers}
        headers = [h for h in headers if h[0].lower() not in given] + list(self.settings.headers)
        shown = {name.lower(): value for name, value in headers}
        self.hooks.requested(attempt, "GET", self.settings.target, shown)
        return headers

    async def _exchange(self, stream: trio.abc.Stream, attempt: Attempt) -> None:
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=_MAX_HEAD)
        headers = self._request_headers(attempt)
        request = h11.Request(method="GET", target=self.settings.target, headers=headers)
        try:
            await stream.send_all(conn.send(request) + (conn.send(h11.EndOfMessage()) or b""))
        except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
            self._broken(attempt, error)
            return
        watchdog = self.settings.watchdog
        self.watchdog_at = trio.current_time() + watchdog if watchdog else math.inf
        framer: Framer | None = None
        eof = False
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as error:
                kind: Kind = "incomplete" if eof else "protocol"
                self._end(attempt, self.now(), kind, str(error))
                return
            if event is h11.NEED_DATA:
                with trio.move_on_at(self.watchdog_at) as scope:
                    try:
                        data = await stream.receive_some(_RECEIVE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError) as error:
                        self._broken(attempt, error)
                        return
                if scope.cancelled_caught:
                    detail = f"no event for {watchdog:g}s: the client drops the stream"
                    self._end(attempt, self.now(), "watchdog", detail)
                    return
                eof = not data
                conn.receive_data(bytes(data))
            elif isinstance(event, h11.Response):
                framer = self._head(attempt, event)
                if framer is None:
                    return
            elif isinstance(event, h11.Data):
                attempt.got_bytes(self.now(), len(event.data))
                if framer is not None:
                    self._body(attempt, framer, bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                self._end(attempt, self.now(), "clean-end", "the response ended")
                return
            elif isinstance(event, h11.ConnectionClosed):
                self._end(attempt, self.now(), "incomplete", "closed before the response head")
                return
            # InformationalResponse (1xx) and trailers need nothing

    def _broken(self, attempt: Attempt, error: BaseException) -> None:
        reset = failure_reason(error, "upstream") == "upstream-reset"
        detail = str(error.__cause__ or error) or type(error).__name__
        self._end(attempt, self.now(), "rst" if reset else "incomplete", detail)

    def _head(self, attempt: Attempt, response: h11.Response) -> Framer | None:
        """The response head: a Framer when the stream is open, else None (attempt over)."""
        now = self.now()
        attempt.status, attempt.head_at = response.status_code, now
        fields = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in response.headers}
        attempt.content_type = fields.get("content-type")
        attempt.chunked = "chunked" in fields.get("transfer-encoding", "").lower()
        self.hooks.responded(attempt)
        essence = (attempt.content_type or "").split(";", 1)[0].strip().lower()
        if response.status_code == 204:
            detail = "204 No Content: the server told the client to stop"
        elif response.status_code != 200:
            detail = f"HTTP {response.status_code}: EventSource fails for good"
        elif essence != "text/event-stream":
            detail = f"content type {attempt.content_type or 'missing'}, not text/event-stream"
        else:
            attempt.established = True
            self.record.state = "open"
            framer = Framer()
            if self.last_id:
                framer.skip_block(b"", self.last_id)  # the last event ID outlives connections
            return framer
        self._end(attempt, now, "status", detail, final=True)
        return None

    def _body(self, attempt: Attempt, framer: Framer, data: bytes) -> None:
        now = self.now()
        record = self.record
        for block in framer.feed(data):
            self.last_id = block.last_event_id
            if block.event is None:
                continue
            attempt.got_event(now, block.event.id)
            attempt.last_id = block.last_event_id or None
            record.got_event(now)
            record.ids.observe(block.event.id, attempt.number)
            if self.settings.watchdog:
                self.watchdog_at = trio.current_time() + self.settings.watchdog
        if framer.retry is not None:
            self.reconnection = framer.retry / 1000


def counter() -> Callable[[], str]:
    """Connection ids c1, c2... (one counter per probe, shared by its clients)."""
    count = 0

    def next_id() -> str:
        nonlocal count
        count += 1
        return f"c{count}"

    return next_id


def _local_address(stream: trio.abc.Stream) -> tuple[str, int] | None:
    stream = getattr(stream, "transport_stream", stream)  # under TLS, the socket's stream
    sock = getattr(stream, "socket", None)
    if sock is None:
        return None
    try:
        host, port = sock.getsockname()[:2]
    except OSError:
        return None
    return str(host), int(port)
