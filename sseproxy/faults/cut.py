"""cut: stop the stream after so many bytes or events, between events or inside one.

toxiproxy's `limit_data` generalised: a server killed mid-stream by a deploy or the OOM
killer, or a proxy with a response size cap, ends a stream at a point nobody chose. The
cut point is the first event boundary at or after `bytes` bytes or `events` events (counted
from when the fault became active); `where = "mid-event"` then lets the first half of the
next event through as well, so the client holds a truncated event that it must discard,
not dispatch; `where = "exact"` cuts right after `bytes` bytes wherever they fall, as
toxiproxy's `limit_data` does. `how` says what the client sees: a clean end, a close or a
reset.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Close, Deliver, End, Fault, Piece, Reset
from sseproxy.params import Param, ParamError
from sseproxy.units import format_size

_STOPS: dict[str, Callable[[str], Action]] = {"end": End, "close": Close, "reset": Reset}


@register
class Cut(Fault):
    name = "cut"
    summary = "End, close or reset after `bytes` or `events`, at an event boundary or inside one."
    params = (
        Param(
            "bytes", "size", "Cut at the first event boundary after this many bytes.", optional=True
        ),
        Param("events", "int", "Cut after this many SSE events.", optional=True, minimum=0),
        Param(
            "where",
            "choice",
            "boundary: cut between two events; mid-event: also pass half of the next event; "
            "exact: right after `bytes` bytes, inside an event if need be.",
            default="boundary",
            choices=("boundary", "mid-event", "exact"),
        ),
        Param(
            "how",
            "choice",
            "end (a clean end of the response), close (FIN, no clean end) or reset (RST).",
            default="close",
            choices=("end", "close", "reset"),
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.by_bytes = settings.get("bytes") is not None
        self.left: int = settings["bytes"] if self.by_bytes else settings["events"]
        self.mid_event = settings["where"] == "mid-event"
        self.exact = settings["where"] == "exact" and self.by_bytes
        limit = format_size(self.left) if self.by_bytes else f"{self.left} events"
        if self.left == 1 and not self.by_bytes:
            limit = "1 event"
        detail = f"after {limit}" + (" and half an event" if self.mid_event else "")
        self.cut = _STOPS[settings["how"]](detail)
        self.armed = False
        """The cut point has passed; mid-event: waiting for the event to cut in half."""

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> None:
        given = [key for key in ("bytes", "events") if settings.get(key) is not None]
        if not given:
            raise ParamError("give `bytes` or `events` (the cut point)", field="bytes")
        if len(given) == 2:
            raise ParamError("give `bytes` or `events`, not both", field="events")

    def needs_events(self) -> bool:
        return True

    def start(self, now: float) -> list[Action]:
        return self._reached() if self.left == 0 else []

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        if self.armed and piece.event is not None:
            return [Deliver(Piece(piece.data[: len(piece.data) // 2]), now), self.cut]
        if self.exact and 0 < self.left < len(piece.data):
            return [Deliver(Piece(piece.data[: self.left]), now), self.cut]
        actions: list[Action] = [Deliver(piece, now)]
        if not self.armed:
            self.left -= len(piece.data) if self.by_bytes else piece.event is not None
            if self.left <= 0:
                actions += self._reached()
        return actions

    def _reached(self) -> list[Action]:
        self.armed = self.mid_event
        return [] if self.mid_event else [self.cut]
