"""stall: the flow goes silent with the socket open, as a cloud load balancer drops it.

Azure Load Balancer, AWS NAT gateways and stateful firewalls forget an idle flow without
sending an RST: from then on nothing gets through, yet neither end sees the connection
close, so a client without its own read timeout waits forever. Once active (the common
`after` or `window` says when), the stall holds every byte, and the end of the stream,
for `duration` (absent: for good), and then either releases all of it in order and
carries on (the path came back, as TCP retransmission would deliver it), or closes, or
resets. When the fault's window closes, what it holds is released.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Close, Deliver, End, Fault, Note, Piece, Reset, Wake
from sseproxy.params import Param, ParamError
from sseproxy.units import format_duration

_STOPS: dict[str, Callable[[str], Action]] = {"close": Close, "reset": Reset}


@register
class Stall(Fault):
    name = "stall"
    summary = "Hold all data with the socket open for `duration`, then release, close or reset."
    params = (
        Param(
            "duration",
            "duration",
            "How long nothing gets through (absent: for good).",
            optional=True,
            minimum=0.001,
        ),
        Param(
            "then",
            "choice",
            "After `duration`: release what was held and go on, or close (FIN) or reset "
            "(RST), losing it.",
            default="release",
            choices=("release", "close", "reset"),
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.duration: float | None = settings.get("duration")
        self.then: str = settings["then"]
        self.stalled = False
        self.held: list[Piece] = []
        self.held_bytes = 0
        self.ended = False
        """The stream ended upstream while stalled: the end is held too."""

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> None:
        if settings["then"] != "release" and settings.get("duration") is None:
            raise ParamError(f"`then = {settings['then']!r}` needs a `duration`", field="then")

    def start(self, now: float) -> list[Action]:
        self.stalled = True
        wake = [] if self.duration is None else [Wake(now + self.duration)]
        return [Note("stalled: holding all data, socket open"), *wake]

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        if self.stalled:
            self.held.append(piece)
            self.held_bytes += len(piece.data)
            return []
        return [Deliver(piece, now)]

    def holding(self) -> int:
        """A dropped flow pushes back on the sender: held bytes count as in flight."""
        return self.held_bytes

    def on_eof(self, now: float) -> list[Action]:
        if self.stalled:
            self.ended = True
            return []
        return [End()]

    def on_timer(self, now: float) -> list[Action]:
        if self.then == "release":
            return self.stop(now)
        return [_STOPS[self.then](f"stalled for {format_duration(self.duration or 0.0)}")]

    def stop(self, now: float) -> list[Action]:
        """Deliver what is held, in order, and let data flow again."""
        actions: list[Action] = [Note(f"released {self.held_bytes} bytes")] if self.held else []
        actions += [Deliver(piece, now) for piece in self.held]
        self.stalled, self.held, self.held_bytes = False, [], 0
        if self.ended:
            self.ended = False
            actions.append(End())  # the source's own end, passed on late
        return actions
