"""idle-timeout: cut a stream that stayed silent too long (nginx `proxy_read_timeout`).

nginx, ALB, Heroku and friends time the gap between two reads from upstream: any byte
resets the timer, which is why a comment heartbeat keeps a stream alive through nginx.
Clients and SDKs that only see *events* time differently (`counts = "events"`), and
comment heartbeats do not help there: a stream kept alive for nginx by comments is still
cut by a client that waits for events.

nginx's timers are lazy (`lazy = "300ms"` in the nginx presets): `ngx_event_add_timer`
(src/event/ngx_event_timer.h) leaves a timer where it is when the new deadline would
differ from it by less than `NGX_TIMER_LAZY_DELAY` (300 ms). With `proxy_read_timeout 3s`
and bytes at 0 s and 0.1 s, nginx cuts at 3.0 s, not 3.1 s; a byte at 0.45 s moves it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from sseproxy.faults import register
from sseproxy.faults.base import Action, Close, Deliver, End, Fault, Note, Piece, Reset, Wake
from sseproxy.params import Param
from sseproxy.units import format_duration

_STOPS: dict[str, Callable[[str, int | None], Action]] = {
    "close": Close,
    "reset": Reset,
    "end": End,
}


@register
class IdleTimeout(Fault):
    name = "idle-timeout"
    summary = "End the stream when nothing (or no event) arrives for `timeout`."
    params: ClassVar[tuple[Param, ...]] = (
        Param("timeout", "duration", "Longest silence allowed.", minimum=0.001),
        Param(
            "counts",
            "choice",
            "What resets the timer: any byte (proxies) or only SSE events (clients, SDKs).",
            default="bytes",
            choices=("bytes", "events"),
        ),
        Param(
            "action",
            "choice",
            "How it ends: close (FIN, no clean end of the body), reset (RST), "
            "end (a clean end of the response), or drop (the flow is forgotten: nothing "
            "passes any more and the socket stays open, as Azure's load balancer does).",
            default="close",
            choices=("close", "reset", "end", "drop"),
        ),
        Param(
            "status",
            "int",
            "Status answered instead when it fires before the response headers "
            "(nginx 504, Cloudflare 524, Heroku 503).",
            default=504,
            minimum=100,
            maximum=599,
        ),
        Param(
            "lazy",
            "duration",
            "Leave the deadline where it is when a byte would move it by less than this "
            "(nginx: 300ms, its NGX_TIMER_LAZY_DELAY); 0 moves it on every byte.",
            default=0.0,
            minimum=0,
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.timeout: float = settings["timeout"]
        self.counts: str = settings["counts"]
        self.action: str = settings["action"]
        self.status: int | None = settings.get("status")
        self.lazy: float = settings.get("lazy", 0.0)
        self.deadline = 0.0
        self.dropped = False

    def needs_events(self) -> bool:
        return self.counts == "events"

    def start(self, now: float) -> list[Action]:
        self.deadline = now + self.timeout
        return [Wake(self.deadline)]

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        if self.dropped:
            return []
        if self.counts == "events" and piece.event is None:
            return [Deliver(piece, now)]
        return self._moved(piece, now)

    def on_blocks(self, piece: Piece, now: float) -> list[Action] | None:
        # Blocks that arrive together would all move the deadline to the same instant.
        assert piece.blocks is not None
        if self.dropped:
            return []
        if self.counts == "events" and all(block.event is None for block in piece.blocks):
            return [Deliver(piece, now)]
        return self._moved(piece, now)

    def _moved(self, piece: Piece, now: float) -> list[Action]:
        deadline = now + self.timeout
        if abs(deadline - self.deadline) < self.lazy:  # nginx does not move it either
            return [Deliver(piece, now)]
        self.deadline = deadline
        return [Deliver(piece, now), Wake(deadline)]

    def on_timer(self, now: float) -> list[Action]:
        what = "byte" if self.counts == "bytes" else "event"
        detail = f"no {what} for {format_duration(self.timeout)}"
        if self.action == "drop":
            self.dropped = True
            return [Note(f"{detail}: flow dropped, socket left open")]
        return [_STOPS[self.action](detail, self.status)]

    def on_eof(self, now: float) -> list[Action]:
        return [] if self.dropped else [End()]
