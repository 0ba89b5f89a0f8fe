"""TCP mode: a raw relay in both directions that passes half-close (FIN) through.

Byte-level faults work here for anything, TLS included; faults that need HTTP or SSE
see no requests (a `match` never applies) and raw chunks only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from sseproxy.http import Outcome, _address, _is_cancellation, outcome_of
from sseproxy.journal import Tally
from sseproxy.link import FaultSlot, run_link
from sseproxy.transport import StreamSink, UpstreamError

if TYPE_CHECKING:
    from sseproxy.proxy import Proxy

__all__ = ["TcpConnection"]


class TcpConnection:
    def __init__(self, proxy: Proxy, stream: trio.abc.Stream, conn_id: str, client: str):
        self.proxy = proxy
        self.stream = stream
        self.id = conn_id
        self.client_address = client
        self.down = Tally()
        self.up = Tally()
        self.first_end: Outcome | None = None
        self.settled: Outcome | None = None

    def write(self, kind: str, **fields: Any) -> None:
        self.proxy.journal.write(kind, self.id, **fields)

    async def run(self) -> None:
        opened = trio.current_time()
        self.write(
            "opened", mode="tcp", listener=self.proxy.listener, **_address(self.client_address)
        )
        number = self.proxy.next_exchange()
        chains = self.proxy.plan.chains(number, None, opened)
        if chains.names():
            self.write("faults", req=number, faults=chains.names())
        outcome = Outcome("proxy", "cancelled")
        upstream: trio.abc.Stream | None = None
        try:
            asked = trio.current_time()
            upstream = await self.proxy.connect()
            connect_time = round(trio.current_time() - asked, 6)
            self.write(
                "upstream", upstream=str(self.proxy.settings.upstream), connect_time=connect_time
            )
            self.down.begin(None)
            self.up.begin(None)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    self._direction,
                    upstream,
                    self.stream,
                    chains.down,
                    "down",
                    nursery.cancel_scope,
                )
                nursery.start_soon(
                    self._direction, self.stream, upstream, chains.up, "up", nursery.cancel_scope
                )
            outcome = self.settled or self.first_end or Outcome("client", "client-closed")
        except UpstreamError as error:
            outcome = Outcome("upstream", f"upstream-{error.kind}", str(error))
        except BaseException as error:
            cancelled = _is_cancellation(error)
            outcome = Outcome("proxy", "shutdown" if cancelled else "internal-error", repr(error))
            raise
        finally:
            self.write(
                "closed",
                by=outcome.by,
                reason=outcome.reason,
                detail=outcome.detail or None,
                duration=round(trio.current_time() - opened, 6),
                **self.down.summary("down"),
                **self.up.summary("up"),
            )
            await trio.aclose_forcefully(self.stream)
            if upstream is not None:
                await trio.aclose_forcefully(upstream)

    async def _direction(
        self,
        source: trio.abc.Stream,
        sink: trio.abc.Stream,
        slots: list[FaultSlot],
        direction: str,
        scope: trio.CancelScope,
    ) -> None:
        sides = ("upstream", "client") if direction == "down" else ("client", "upstream")
        result = await run_link(
            source,
            StreamSink(sink),
            slots,
            observe=(self.down if direction == "down" else self.up).observe,
            fired=lambda name, action, detail: self.write(
                "fault", fault=name, action=action, detail=detail, direction=direction
            ),
        )
        outcome = outcome_of(result, *sides)
        if isinstance(result.error, trio.ClosedResourceError) and result.origin is None:
            return  # the other direction closed this stream: it knows why
        if result.kind == "end" and result.origin is None and result.error is None:
            self.first_end = self.first_end or Outcome(sides[0], f"{sides[0]}-closed")
            return  # a half-close went through; the other direction may go on
        if self.settled is None:
            self.settled = outcome
        scope.cancel()
