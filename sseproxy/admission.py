"""Admission: whether an accepted connection is served, decided before a byte is read.

Two things turn a connection away at accept, the way a closed port or a full server
would, without reading from the client or contacting the upstream:

- the connection cap (`ProxySettings.max_connections`, `--max-connections`): past it an
  HTTP client gets a 503 and a TCP client a close, journaled as the proxy's doing
  (`proxy-overloaded`), so the proxy sheds load instead of running out of descriptors;
- a `refuse` fault (`how = "close"` or `"reset"`). One without request matchers is
  decided here, once per connection: its probability, `every` and `first` count
  connections, its `window` is looked at when the connection is accepted, and it is
  never asked again for that connection's requests ("connections already open are not
  touched"). A `refuse` whose `match` names a path, methods or headers cannot be decided
  before the request head: it stays in the per-request chain (HTTP mode), where it acts
  before the upstream is contacted.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import trio

from sseproxy.connection import Connection, Outcome
from sseproxy.faults.base import Close, Reset
from sseproxy.faults.refuse import Refuse
from sseproxy.plan import Chains, Plan
from sseproxy.scenario import FaultSpec, RequestInfo
from sseproxy.transport import abort

if TYPE_CHECKING:
    from sseproxy.proxy import Proxy

__all__ = ["LINGER", "AcceptPlan", "TurnedAway", "overloaded_response"]

LINGER = 1.0
"""Seconds a connection turned away keeps reading (and dropping) what the client sends
before it closes, so the close is a FIN after the 503 or the empty reply, not an RST."""
_LINGER_BYTES = 64 * 1024


def decided_at_accept(spec: FaultSpec) -> bool:
    """A `refuse` that turns connections away (not `unlisten`) and needs no request."""
    match = spec.match
    return (
        issubclass(spec.fault_class, Refuse)
        and not spec.fault_class.unlistens(spec.settings)
        and not (match.path or match.methods or match.headers or match.upstream)
    )


class AcceptPlan(Plan):
    """The plan, split at accept: `refusal` decides the faults `decided_at_accept` picks,
    and `chains` (per exchange, or per TCP connection) leaves them out."""

    def refusal(self, number: int, now: float) -> tuple[str, Close | Reset] | None:
        """(fault name, its stop) when connection `number`, accepted at `now`, is refused."""
        for index, spec in enumerate(self.scenario.faults):
            if not decided_at_accept(spec):
                continue
            chains = self.select(index, number, None, now, opened=now)
            for slot in chains.down + chains.up:
                if slot.active_from <= now < slot.active_until:
                    for action in slot.fault.start(now):
                        if isinstance(action, Close | Reset):
                            return slot.name, action
        return None

    def chains(
        self, number: int, request: RequestInfo | None, now: float, *, member: str | None = None
    ) -> Chains:
        chains = Chains()
        for index, spec in enumerate(self.scenario.faults):
            if not decided_at_accept(spec):
                found = self.select(index, number, request, now, opened=now, member=member)
                chains.down += found.down
                chains.up += found.up
        return chains


def overloaded_response(limit: int) -> bytes:
    """The 503 past the connection cap (`connection: close`: nothing more is read)."""
    body = f"sseproxy: {limit} connections open (--max-connections); try again later\n"
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    )
    return (head + body).encode()


class TurnedAway(Connection):
    """A connection turned away at accept, by a `refusal` (a refuse fault's name and stop)
    or, without one, by the connection cap. Journaled like any other connection."""

    def __init__(
        self,
        proxy: Proxy,
        stream: trio.abc.Stream,
        conn_id: str,
        client: str,
        refusal: tuple[str, Close | Reset] | None = None,
    ) -> None:
        super().__init__(proxy, stream, conn_id, client)
        self.mode = proxy.settings.mode
        self.refusal = refusal

    async def serve(self) -> Outcome:
        if self.refusal is not None:
            name, stop = self.refusal
            action = "reset" if isinstance(stop, Reset) else "close"
            self.fired("down")(name, action, stop.detail)
            if action == "reset":
                await abort(self.stream)
            return self.decided or Outcome("proxy", name, stop.detail)
        limit = self.proxy.settings.max_connections
        if self.mode == "http":
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await self.stream.send_all(overloaded_response(limit or 0))
            self.write("response", status=503, origin="proxy")
        return Outcome("proxy", "proxy-overloaded", f"{limit} connections open (the limit)")

    async def linger(self) -> None:
        """A lingering close: half-close, then read (and drop) what the client sends until
        it closes too, for at most `LINGER` seconds. Closing with unread data would send
        an RST, which can destroy the 503 before the client reads it, and turns an empty
        reply into a reset."""
        with (
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError),
            trio.move_on_after(LINGER),
        ):
            if isinstance(self.stream, trio.abc.HalfCloseableStream):
                await self.stream.send_eof()
            read = 0
            while read < _LINGER_BYTES and (data := await self.stream.receive_some()):
                read += len(data)
