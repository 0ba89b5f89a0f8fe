"""response-timeout: no response headers within `timeout`, and the proxy answers a status.

Heroku's router gives an app 30 s to send the first byte (H12, a 503), CloudFront waits
30 s for the origin (504), Azure Front Door 30 s (503/504). After the headers it no
longer applies: that is `idle-timeout` or `lifetime`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Close, Deliver, Fault, Piece, Wake
from sseproxy.params import Param
from sseproxy.units import format_duration


@register
class ResponseTimeout(Fault):
    name = "response-timeout"
    summary = "Answer `status` when the response headers (the first byte) take over `timeout`."
    params = (
        Param(
            "timeout",
            "duration",
            "How long the upstream may take to start responding.",
            minimum=0.001,
        ),
        Param(
            "status",
            "int",
            "What the proxy answers instead (Heroku 503, CloudFront 504).",
            default=504,
            minimum=100,
            maximum=599,
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.timeout: float = settings["timeout"]
        self.status: int = settings["status"]
        self.answered = False
        """The first piece (the response head; in TCP mode, the first byte) came."""

    def start(self, now: float) -> list[Action]:
        if self.answered or self.response_started:
            return []
        return [Wake(now + self.timeout)]

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        if self.answered:
            return [Deliver(piece, now)]
        self.answered = True
        return [Deliver(piece, now), Wake(None)]

    def on_timer(self, now: float) -> list[Action]:
        detail = f"no response within {format_duration(self.timeout)}"
        return [Close(detail, self.status)]
