"""reset: abort the connection with a TCP RST, as a crashing peer or a firewall would.

When to fire is the fault's common `after` field (connection time), or a count of
`bytes` or `events` passed since then; exactly that many reach the peer before the RST.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Deliver, Fault, Piece, Reset
from sseproxy.params import Param, ParamError
from sseproxy.units import format_size
from sseproxy.words import plural


@register
class ResetFault(Fault):
    name = "reset"
    summary = "Send a TCP RST once active (see `after`), or after `bytes` or `events` passed."
    params = (
        Param("bytes", "size", "Reset once this many bytes have passed.", optional=True),
        Param(
            "events",
            "int",
            "Reset once this many SSE events have passed.",
            optional=True,
            minimum=0,
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.bytes_left: int | None = settings.get("bytes")
        self.events_left: int | None = settings.get("events")
        if self.bytes_left is not None:
            self.detail = f"after {format_size(self.bytes_left)}"
        elif self.events_left is not None:
            self.detail = f"after {plural(self.events_left, 'event')}"
        else:
            self.detail = "reset"

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> None:
        if settings.get("bytes") is not None and settings.get("events") is not None:
            raise ParamError("give `bytes` or `events`, not both", field="events")

    def needs_events(self) -> bool:
        return self.events_left is not None

    def start(self, now: float) -> list[Action]:
        if self.bytes_left is None and self.events_left is None:
            return [Reset(self.detail)]
        if self.bytes_left == 0 or self.events_left == 0:
            return [Reset(self.detail)]
        return []

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        if self.bytes_left is not None:
            if len(piece.data) < self.bytes_left:
                self.bytes_left -= len(piece.data)
                return [Deliver(piece, now)]
            head = Piece(piece.data[: self.bytes_left])
            self.bytes_left = 0
            return [Deliver(head, now), Reset(self.detail)]
        if self.events_left is not None and piece.event is not None:
            self.events_left -= 1
            if self.events_left == 0:
                return [Deliver(piece, now), Reset(self.detail)]
        return [Deliver(piece, now)]
