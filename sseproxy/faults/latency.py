"""latency: every piece arrives `delay` ± `jitter` late, in order, without throttling.

Reading goes on while earlier pieces wait, so a 200 ms delay on a 1 MB/s stream still
carries 1 MB/s: this is a slow network, not a slow link (that is `bandwidth`).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Deliver, End, Fault, Piece, Wake
from sseproxy.params import Param


@register
class Latency(Fault):
    name = "latency"
    uses_random = True
    summary = "Delay every piece by `delay` ± `jitter`, keeping order (a slow network path)."
    params = (
        Param("delay", "duration", "How late each piece arrives.", default=0.2, minimum=0),
        Param(
            "jitter",
            "duration",
            "Random spread around `delay` (uniform, per piece, from the connection's seed).",
            default=0.0,
            minimum=0,
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.delay: float = settings["delay"]
        self.jitter: float = settings["jitter"]
        self.last = -math.inf

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        spread = self.rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        self.last = max(self.last, now + max(0.0, self.delay + spread))
        return [Deliver(piece, self.last)]

    def on_eof(self, now: float) -> list[Action]:
        """The end of the stream (a FIN, a terminating chunk) crosses the slow path too."""
        return [Wake(max(self.last, now + self.delay))]

    def on_timer(self, now: float) -> list[Action]:
        return [End()]
