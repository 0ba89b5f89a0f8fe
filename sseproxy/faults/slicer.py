"""slicer: cut every piece into small slices, optionally `delay` apart (toxiproxy's slicer).

A server, proxy or network is free to split a stream anywhere, and small TCP segments,
Nagle off, or an HTTP chunk per write do it often. SSE parsers that assume one read holds
whole lines or whole events break here: a `data:` line split in two, a CRLF whose CR and
LF arrive in different reads (the spec says that is one line end, not two), a multi-byte
UTF-8 character cut in half. Slice sizes are drawn per slice from the connection's seed,
so a failing run replays exactly.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Deliver, Fault, Piece
from sseproxy.params import Param, ParamError
from sseproxy.units import format_size


@register
class Slicer(Fault):
    name = "slicer"
    uses_random = True
    summary = "Split the stream into slices of `size` ± `variation` bytes, `delay` apart."
    params = (
        Param("size", "size", "Average slice size.", default=16, minimum=1),
        Param(
            "variation",
            "size",
            "Random spread around `size` (uniform, per slice, from the connection's seed).",
            default=8,
            minimum=0,
        ),
        Param("delay", "duration", "Time between two slices.", default=0.0, minimum=0),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.size: int = settings["size"]
        self.variation: int = settings["variation"]
        self.delay: float = settings["delay"]
        self.last = -math.inf

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> None:
        size, variation = settings["size"], settings["variation"]
        if variation >= size:
            raise ParamError(
                f"`variation` ({format_size(variation)}) must be smaller than `size` "
                f"({format_size(size)}): a slice has at least one byte",
                field="variation",
            )

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        if not piece.data:
            return [Deliver(piece, max(now, self.last))]
        actions: list[Action] = []
        data, offset = piece.data, 0
        while offset < len(data):
            size = self.rng.randint(self.size - self.variation, self.size + self.variation)
            self.last = max(now, self.last + self.delay)
            if offset == 0 and size >= len(data):
                # fits whole: keep its framing, and its edges
                return [Deliver(replace(piece, boundary=True), self.last)]
            actions.append(Deliver(Piece(data[offset : offset + size], boundary=True), self.last))
            offset += size
        return actions
