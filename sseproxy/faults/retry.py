"""retry: rewrite the `retry:` field, the server's say in how soon EventSource reconnects.

A `retry: 0` slipped in by a misconfigured server makes every browser tab reconnect in a
tight loop (the reconnect storm behind many SSE outages), and a gateway that strips unknown
lines leaves clients on their 3 s default. Only the retry lines change; every other byte of
the block, line endings included, reaches the client as sent.

A `retry` line takes effect when the client reads it, not at the blank line (the spec;
`Framer.retry`), so the complete lines of a body's unfinished last block are rewritten
too: `retry: 0\n` and then the end of the body sets a client's reconnection time to 0.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Deliver, Fault, Piece
from sseproxy.params import Param, ParamError

_LINES = re.compile(rb"(\r\n|\r|\n)")  # split keeping each line's ending
_BOM = b"\xef\xbb\xbf"


@register
class Retry(Fault):
    name = "retry"
    resizes_body = True
    summary = "Replace every `retry:` value with `set` ms (or add one), or `strip` retry lines."
    params = (
        Param(
            "set",
            "int",
            "Reconnection time in ms to write instead.",
            optional=True,
            minimum=0,
            extra={"time": "ms"},
        ),
        Param(
            "add", "bool", "With `set`: add it to the first block if that has none.", default=False
        ),
        Param("strip", "bool", "Remove every retry line instead.", default=False),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        value: int | None = settings.get("set")
        self.value = None if value is None else str(value).encode()
        self.add: bool = settings.get("add", False)
        self.first = True
        self.at_line_start = True
        """The next piece starts a line (an unframed piece may continue a cut one)."""

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> None:
        if (settings.get("set") is None) == (not settings.get("strip")):
            raise ParamError("give exactly one of `set` and `strip = true`", field="set")
        if settings.get("add") and settings.get("set") is None:
            raise ParamError("`add` needs `set`: the value to add", field="add")

    def needs_events(self) -> bool:
        return True

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        at_line_start = self.at_line_start
        if piece.data:
            self.at_line_start = piece.data.endswith((b"\n", b"\r"))
        if not piece.framed and not (at_line_start and piece.data):
            return [Deliver(piece, now)]
        first, self.first = self.first, False
        bom = _BOM if first and piece.data.startswith(_BOM) else b""
        parts = _LINES.split(piece.data[len(bom) :])  # line, ending, ..., line, ending, b""
        lines: list[tuple[bytes, bytes]] = []
        found = False
        for line, ending in zip(parts[::2], [*parts[1::2], b""], strict=True):
            name, colon, value = line.partition(b":")
            if name != b"retry" or not ending:  # a line never ended never takes effect
                lines.append((line, ending))
                continue
            found = True
            if self.value is not None:  # keep the writer's "retry:" or "retry: " spelling
                sep = (b": " if value.startswith(b" ") else b":") if colon else b": "
                lines.append((b"retry" + sep + self.value, ending))
        if first and self.add and not found and piece.framed:
            # Just before the blank line that ends the block (lines[-1] is the empty rest
            # after it), ended like that blank line.
            lines.insert(len(lines) - 2, (b"retry: " + (self.value or b""), lines[-2][1]))
        data = bom + b"".join(line + ending for line, ending in lines)
        if data == piece.data:
            return [Deliver(piece, now)]
        return [Deliver(Piece(data, piece.framed, piece.event, last_id=piece.last_id), now)]
