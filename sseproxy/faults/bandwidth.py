"""bandwidth: a thin pipe; bytes leave at `rate` per second, however fast they come in.

A congested mobile link, `tc qdisc tbf`, toxiproxy's `bandwidth` toxic or the "Slow 3G"
preset of browser devtools: big events take seconds to arrive, and a client that measures
its own timeouts from the first byte of an event, or a server that buffers without limit
when its client reads slowly, shows it. Pacing is plain, without a bucket to burst from:
from the moment the pipe last fell idle, the k-th byte is due k/rate seconds later (never
before it arrived), so no span of time carries more than `rate` times its length.
Nothing is dropped; a small in-flight limit makes the link stop reading, so the slowness
reaches the sender as backpressure instead of piling up in the proxy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Deliver, Fault, Piece
from sseproxy.params import Param

TICK = 0.05
"""Seconds of transfer per slice: data arrives in steps of rate * TICK bytes."""
MAX_SLICE = 64 * 1024


@register
class Bandwidth(Fault):
    name = "bandwidth"
    summary = "Pace the stream at `rate` bytes per second, with backpressure (a thin pipe)."
    params = (
        Param(
            "rate",
            "size",
            "bytes per second, e.g. '10KiB'",
            minimum=1,
            extra={"time": "per-second"},
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.rate: int = settings["rate"]
        self.slice = max(1, min(int(self.rate * TICK), MAX_SLICE))
        self.since = -math.inf
        """When the pipe last fell idle: bytes are paced from here."""
        self.sent = 0
        """Bytes due since `since`."""

    def in_flight_limit(self) -> int:
        return max(self.rate // 4, 1024)

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        if self.since + self.sent / self.rate < now:  # idle: pace from now, no saved credit
            self.since, self.sent = now, 0
        if len(piece.data) <= self.slice:
            self.sent += len(piece.data)
            return [Deliver(piece, self.since + self.sent / self.rate)]
        actions: list[Action] = []
        for offset in range(0, len(piece.data), self.slice):
            part = piece.data[offset : offset + self.slice]
            self.sent += len(part)
            actions.append(Deliver(Piece(part), self.since + self.sent / self.rate))
        return actions
