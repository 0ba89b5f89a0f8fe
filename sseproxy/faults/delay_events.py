"""delay-events: matching SSE blocks arrive `delay` ± `jitter` late, the rest wait behind.

A heartbeat held up in a broker queue or behind a slow fan-out arrives late, and because
an SSE stream is one TCP stream, everything after it arrives late too: this is how a
client's heartbeat watchdog fires on a stream that never actually went silent upstream.
Blocks are chosen as in `drop-events`; order and bytes are kept.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Deliver, Fault, Piece
from sseproxy.faults.drop_events import BlockMatch
from sseproxy.params import Param


@register
class DelayEvents(Fault):
    name = "delay-events"
    uses_random = True
    summary = "Delay matching SSE blocks by `delay` ± `jitter`; later blocks queue behind them."
    params = (
        Param("delay", "duration", "How late each matching block arrives.", minimum=0),
        Param(
            "jitter",
            "duration",
            "Random spread around `delay` (uniform, per block, from the connection's seed).",
            default=0.0,
            minimum=0,
        ),
        *BlockMatch.params,
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.match = BlockMatch(settings, rng)
        self.delay: float = settings["delay"]
        self.jitter: float = settings["jitter"]
        self.last = -math.inf  # when the latest delivered block is due: nothing overtakes it

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> None:
        BlockMatch.check(settings)

    def needs_events(self) -> bool:
        return True

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        due = now
        if self.match(piece):
            spread = self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
            due = now + max(0.0, self.delay + spread)
        self.last = max(self.last, due)
        return [Deliver(piece, self.last)]
