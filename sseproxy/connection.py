"""What an HTTP and a TCP connection share: identity, tallies, the journal, live control.

A connection registers itself in `Proxy.live` while it runs, so the control API and
`sseproxy.testing` can list it, kill it, and add or retire faults on its links. Who ended
it and why is an `Outcome`, in the journal's fixed vocabulary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import trio

from sseproxy.engine import FiredHook
from sseproxy.journal import Tally
from sseproxy.link import HeadError, Link, LinkResult
from sseproxy.scenario import RequestInfo
from sseproxy.sse import Event
from sseproxy.transport import UpstreamError, abort, failure_reason
from sseproxy.upstreams import release

if TYPE_CHECKING:
    from sseproxy.pool import Attempt
    from sseproxy.proxy import Proxy

__all__ = [
    "CLIENT_CLOSED",
    "SHUTDOWN",
    "Connection",
    "Garbled",
    "Outcome",
    "Truncated",
    "outcome_of",
]

Direction = Literal["down", "up"]
FAREWELL = 0.2
"""Seconds a stopping proxy gives each connection to end its response cleanly."""
_NOT_LIVE: Mapping[Direction, set[Link]] = MappingProxyType({})
"""`Connection.links` when faults cannot change live: no link registers anywhere."""


class Truncated(trio.BrokenResourceError):
    """The peer closed before the end of the message body."""


class Garbled(trio.BrokenResourceError):
    """The peer broke the HTTP protocol."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """Who ended an exchange or connection and why, in the journal's vocabulary."""

    by: str
    reason: str
    detail: str = ""
    keep_alive: bool = False
    status: int | None = None
    """The status the proxy answers for it when no response has started (HTTP mode)."""


CLIENT_CLOSED = Outcome("client", "client-closed")
SHUTDOWN = Outcome("proxy", "shutdown")
"""Outcomes that a connection's frames hold while it runs: one shared object each (they
are frozen), rather than one per stream."""


def outcome_of(result: LinkResult, source: str, sink: str) -> Outcome:
    """A link's result told from the connection's side (`source` and `sink` name the peers)."""
    if result.kind == "sink-error":
        return Outcome(sink, reason_of(result.error, sink))
    if result.origin is not None:
        return Outcome("proxy", result.origin, result.detail, keep_alive=result.kind == "end")
    if isinstance(result.error, HeadError):
        cause = result.error.__cause__
        if isinstance(cause, UpstreamError) and cause.by == "proxy":
            return Outcome("proxy", cause.reason, str(cause))  # out of descriptors: ours
        return Outcome(source, result.error.reason, str(result.error))
    if result.error is not None:
        return Outcome(source, reason_of(result.error, source), str(result.error))
    return Outcome(source, f"{source}-end", keep_alive=True)


def reason_of(error: BaseException | None, side: str) -> str:
    if isinstance(error, Garbled):
        return f"{side}-protocol-error"
    if isinstance(error, Truncated) or error is None:
        return f"{side}-closed"
    return failure_reason(error, side)


def _address(client: str) -> dict[str, Any]:
    """'127.0.0.1:5000' -> client '127.0.0.1', client_port 5000 (journal fields)."""
    host, sep, port = client.rpartition(":")
    if not sep or not port.isdigit():
        return {"client": client}
    return {"client": host.strip("[]"), "client_port": int(port)}


def _is_cancellation(error: BaseException) -> bool:
    if isinstance(error, trio.Cancelled):
        return True
    return isinstance(error, BaseExceptionGroup) and error.split(trio.Cancelled)[1] is None


class Connection:
    """Base of `HttpConnection` and `TcpConnection`: subclasses implement `serve`.

    With slots, as its subclasses: an idle stream keeps its connection for as long as
    it lasts, and an instance dictionary of twenty-odd attributes is a few hundred bytes.
    """

    __slots__ = (
        "attempt",
        "client_address",
        "decided",
        "down",
        "id",
        "killed",
        "links",
        "member",
        "number",
        "opened",
        "proxy",
        "request",
        "scope",
        "started",
        "stream",
        "up",
    )

    mode = "?"
    own_scope: ClassVar[bool] = False
    """True: `serve` makes `scope` itself (TCP: the cancel scope of the nursery that runs
    its two directions, which `serve` opens first thing), and `run` adds none around it.
    A cancel scope in force costs about 650 bytes for as long as a stream lasts."""

    def __init__(self, proxy: Proxy, stream: trio.abc.Stream, conn_id: str, client: str):
        self.proxy = proxy
        self.stream = stream
        self.id = conn_id
        self.client_address = client
        self.opened = trio.current_time()
        self.down = Tally(
            on_event=self._event if proxy.settings.journal_events else None,
            on_note=self._note,
        )
        self.up = Tally()
        self.number = 0
        """The current exchange's number (what the plan draws faults with)."""
        self.request: RequestInfo | None = None
        self.started = self.opened
        """When the current exchange started."""
        self.member: str | None = None
        """The pool member serving the current exchange (TCP: the connection)."""
        self.attempt: Attempt | None = None
        """The pool's walk for the current exchange (see `sseproxy.upstreams`)."""
        self.links: Mapping[Direction, set[Link]] = (
            {"down": set(), "up": set()} if proxy.settings.live else _NOT_LIVE
        )
        """The links running, by direction, so faults can be added and retired live
        (`ProxySettings.live`; else empty, and `links.get` gives a link no set to join:
        about 500 bytes less per idle stream)."""
        self.scope = trio.CancelScope()
        """What `kill` cancels: everything `serve` does runs inside it."""
        self.killed: str | None = None
        self.decided: Outcome | None = None
        """A fault's stop, from the moment it decided: it is the cause even if the peer
        happens to close while the stop is still on its way."""

    def write(self, kind: str, **fields: Any) -> None:
        self.proxy.journal.write(kind, self.id, **fields)

    def fired(self, direction: Direction) -> FiredHook:
        """The link's hook: a fault changed the stream's fate (or left a note).

        A bound method rather than a closure: every link holds its hook while it runs,
        and a bound method is a third of a closure's size."""
        return self._fired_down if direction == "down" else self._fired_up

    def _fired_down(self, name: str, action: str, detail: str) -> None:
        self._fired("down", name, action, detail)

    def _fired_up(self, name: str, action: str, detail: str) -> None:
        self._fired("up", name, action, detail)

    def _fired(self, direction: Direction, name: str, action: str, detail: str) -> None:
        self.write("fault", fault=name, action=action, detail=detail, direction=direction)
        if action in ("end", "close", "reset") and self.decided is None:
            self.decided = Outcome("proxy", name, detail, keep_alive=action == "end")

    def _event(self, event: Event, size: int) -> None:
        self.write("event", id=event.id or None, type=event.type, size=size)

    def _note(self, detail: str) -> None:
        self.write("note", direction="down", detail=detail)

    async def serve(self) -> Outcome:
        raise NotImplementedError

    def closing_fields(self) -> dict[str, Any]:
        return {}

    async def farewell(self) -> None:
        """The proxy is stopping: end what is in flight cleanly if the protocol allows."""

    async def linger(self) -> None:
        """Before the close (after the `closed` record): a connection turned away reads
        what the client still sends, so that the close is a FIN, not an RST."""

    async def cleanup(self) -> None:
        """Close what else the connection holds (TCP: the upstream)."""

    async def run(self) -> None:
        self.proxy.live[self.id] = self
        self.write(
            "opened", mode=self.mode, listener=self.proxy.listener, **_address(self.client_address)
        )
        final = CLIENT_CLOSED
        try:
            if self.own_scope:
                final = await self.serve()
            else:
                with self.scope:
                    final = await self.serve()
            if self.killed is not None:
                final = self.killed_outcome()
        except BaseException as error:
            cancelled = _is_cancellation(error)
            final = Outcome("proxy", "shutdown" if cancelled else "internal-error", repr(error))
            raise
        finally:
            del self.proxy.live[self.id]
            release(self.proxy, self)
            self.write(
                "closed",
                by=final.by,
                reason=final.reason,
                detail=final.detail or None,
                duration=round(trio.current_time() - self.opened, 6),
                **self.closing_fields(),
                **self.down.summary("down"),
                **self.up.summary("up"),
            )
            if final.reason == "shutdown":
                with trio.CancelScope(shield=True), trio.move_on_after(FAREWELL):
                    await self.farewell()
            if self.killed == "reset":
                await abort(self.stream)
            try:
                await self.linger()
            finally:
                await trio.aclose_forcefully(self.stream)
                await self.cleanup()
                # The tally's hooks point back here: without this cycle the connection
                # is freed as it ends, not at the next full garbage collection.
                self.down.on_note = self.down.on_event = None

    def killed_outcome(self) -> Outcome:
        """Killed through the control API (the exchange's `ended` says so too)."""
        return Outcome("proxy", "killed", f"{self.killed} by the control API")

    def kill(self, how: Literal["close", "reset"] = "close") -> None:
        """End this connection now (control API): close it, or reset it with an RST."""
        self.killed = how
        self.scope.cancel()

    def info(self) -> dict[str, Any]:
        """What the control API lists for an open connection."""
        now = trio.current_time()
        return {
            "id": self.id,
            "mode": self.mode,
            **_address(self.client_address),
            "age": round(now - self.opened, 3),
            "method": self.request.method if self.request else None,
            "path": self.request.path if self.request else None,
            "member": self.member,
            "bytes_down": self.down.octets,
            "bytes_up": self.up.octets,
            "events_down": self.down.events,
            "last_id": self.down.last_id,
            "faults": sorted(
                {
                    s.name
                    for links in self.links.values()
                    for link in links
                    for s in link.slots
                    if s.active
                }
            ),
        }
