"""lifetime: a limit on the whole request, which ends a stream even while data flows.

Envoy's route timeout (15 s by default) covers the *complete* response and is "not
compatible with streaming responses"; Google Cloud's backend service timeout (30 s),
Cloud Run's request timeout (300 s) and API gateways behave alike. Counted from the
request (or from when the fault becomes active); before the response headers the proxy
answers `status` instead.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Close, End, Fault, Reset, Wake
from sseproxy.params import Param
from sseproxy.units import format_duration

_STOPS: dict[str, Callable[[str, int | None], Action]] = {
    "close": Close,
    "reset": Reset,
    "end": End,
}


@register
class Lifetime(Fault):
    name = "lifetime"
    summary = "End the stream `limit` after the request, even while data flows."
    params = (
        Param("limit", "duration", "Longest a request may last, response included.", minimum=0.001),
        Param(
            "action",
            "choice",
            "How a started response ends: close (no clean end), reset "
            "(RST), or end (a clean end, as Spring's async timeout does).",
            default="close",
            choices=("close", "reset", "end"),
        ),
        Param(
            "status",
            "int",
            "Answered instead when the limit comes before the response "
            "headers (Envoy and GCP answer 504).",
            default=504,
            minimum=100,
            maximum=599,
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.limit: float = settings["limit"]
        self.action: str = settings["action"]
        self.status: int = settings["status"]

    def start(self, now: float) -> list[Action]:
        return [Wake(now + self.limit)]

    def on_timer(self, now: float) -> list[Action]:
        detail = f"limit of {format_duration(self.limit)} reached"
        return [_STOPS[self.action](detail, self.status)]
