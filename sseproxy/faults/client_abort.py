"""client-abort: the proxy hangs up on both sides, as a client that is done would.

curl piped into `head`, a closed browser tab, a test that got its ten events: clients
leave mid-stream all the time, and the server must notice (free the subscription, stop
the producer) without a clean end of the response. When is the common `after` field
(connection time), or `events` counted from then; exactly that many events get through.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Close, Deliver, Fault, Piece
from sseproxy.params import Param
from sseproxy.words import plural


@register
class ClientAbort(Fault):
    name = "client-abort"
    summary = "Close both sides as a departing client would: once active, or after `events`."
    params = (
        Param(
            "events",
            "int",
            "Close once this many SSE events have passed (counted from `after`).",
            optional=True,
            minimum=0,
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.events_left: int | None = settings.get("events")
        self.detail = "client abort"
        if self.events_left is not None:
            self.detail += f" after {plural(self.events_left, 'event')}"

    def needs_events(self) -> bool:
        return self.events_left is not None

    def start(self, now: float) -> list[Action]:
        return [Close(self.detail)] if not self.events_left else []

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        if self.events_left is None or piece.event is None:
            return [Deliver(piece, now)]
        self.events_left -= 1
        if self.events_left == 0:
            return [Deliver(piece, now), Close(self.detail)]
        return [Deliver(piece, now)]
