"""buffer: hold the body back, as buffering proxies, gateways and antivirus scanners do.

nginx (`proxy_buffering on`, the default) holds a response in 4k/8k buffers unless the
upstream sends `X-Accel-Buffering: no`; compression middleware holds 32 KiB blocks;
corporate gateways hold `text/event-stream` until the stream ends (`until = "close"`), or
deliver each event only when the next arrives (`mode = "one-behind"`). Nothing is lost:
what is held is delivered, in order, when the buffer fills, `flush` passes, or it ends.
A buffer that holds until the end keeps at most 64 MiB (`HOLD_LIMIT`); past it, it
releases what it holds and passes the rest through, so memory stays bounded.

With `hold_head`, the head's bytes count toward `size`, as in nginx, whose first buffer
receives the upstream's status line and headers before the body: 270-byte events every
200 ms through 4k buffers go out when event 15 arrives (2.8 s), not event 16 (3.0 s)
(docs/fidelity.md, 4c).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import (
    Action,
    Deliver,
    End,
    Fault,
    Note,
    Piece,
    ResponseHead,
    Wake,
)
from sseproxy.params import Param, ParamError
from sseproxy.units import format_size

HOLD_LIMIT = 64 * 1024 * 1024
"""Most a buffer holding until the end (or one event behind) keeps; past it, it gives up
and lets the stream through, as scanning gateways do past their maximum scan size."""
ASIDE = "upstream sent X-Accel-Buffering: no: passing the stream unbuffered (respect_accel)"


@register
class Buffer(Fault):
    name = "buffer"
    summary = "Hold the body until `size` bytes are held, `flush` passes, or the stream ends."
    params = (
        Param(
            "size",
            "size",
            "Deliver once this many bytes are held.",
            default=4096,
            minimum=1,
            maximum=4 * 1024 * 1024,
        ),  # the link stops reading at 4 MiB held
        Param(
            "flush",
            "duration",
            "Also deliver what is held this long after the first held byte (none: only when full).",
            optional=True,
            minimum=0.001,
        ),
        Param(
            "until",
            "choice",
            "size: deliver when full (or flushed); close: hold everything until the stream ends.",
            default="size",
            choices=("size", "close"),
        ),
        Param(
            "mode",
            "choice",
            "bytes: buffer bytes; one-behind: deliver each SSE event only "
            "when the next one arrives.",
            default="bytes",
            choices=("bytes", "one-behind"),
        ),
        Param(
            "respect_accel",
            "bool",
            "Pass the response through unbuffered when the upstream "
            "sends `X-Accel-Buffering: no`, as nginx does.",
            default=True,
        ),
        Param(
            "hold_head",
            "bool",
            "Hold the response head too, until the first release, its bytes counting "
            "toward `size` (nginx does: an EventSource's `open` waits for the first full "
            "buffer).",
            default=False,
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.size: int = settings["size"]
        self.flush: float | None = settings.get("flush")
        self.until: str = settings["until"]
        self.mode: str = settings["mode"]
        self.respect_accel: bool = settings["respect_accel"]
        self.hold_head: bool = settings.get("hold_head", False)
        self.held: list[Piece] = []
        self.held_bytes = 0
        self.bypass = False

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> None:
        if settings["until"] == "close" and settings.get("flush") is not None:
            raise ParamError('`flush` has no effect with until = "close"', field="flush")

    def needs_events(self) -> bool:
        return self.mode == "one-behind"

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        if piece.head is not None:
            accel = (piece.head.header(b"x-accel-buffering") or b"").strip().lower()
            self.bypass = self.respect_accel and accel == b"no"
            if self.hold_head and not self.bypass:
                return self._hold(piece, head_size(piece.head), now)
            if self.bypass:  # the journal says why a buffer did nothing
                return [Note(ASIDE), Deliver(piece, now)]
            return [Deliver(piece, now)]
        if self.bypass:
            return [Deliver(piece, now)]
        if self.held_bytes + len(piece.data) > HOLD_LIMIT:  # until close, or comments only
            self.bypass = True
            note = Note(f"held {format_size(HOLD_LIMIT)}: passing the stream through")
            return [note, *self._release(now), Deliver(piece, now), Wake(None)]
        if self.mode == "one-behind":
            if piece.event is None and piece.framed:  # comments and id-only blocks wait too
                self.held.append(piece)
                self.held_bytes += len(piece.data)
                return []
            released, self.held, self.held_bytes = self.held, [piece], len(piece.data)
            return [Deliver(p, now) for p in released]
        return self._hold(piece, len(piece.data), now)

    def _hold(self, piece: Piece, size: int, now: float) -> list[Action]:
        first = not self.held
        self.held.append(piece)
        self.held_bytes += size
        if self.until == "size" and self.held_bytes >= self.size:
            return [*self._release(now), Wake(None)]
        if self.flush is not None and first:
            return [Wake(now + self.flush)]
        return []

    def in_flight_limit(self) -> int | None:
        """Holding until the end must not stop the reading that brings the end."""
        return HOLD_LIMIT if self.until == "close" or self.mode == "one-behind" else None

    def holding(self) -> int:
        """What is held pushes back on the sender, as a full proxy buffer stops reading."""
        return self.held_bytes

    def on_abort(self, now: float) -> list[Action]:
        """Cut short: the held body is lost, but a held head still goes out (as in nginx)."""
        heads = [piece for piece in self.held if piece.head is not None]
        return [Deliver(piece, now) for piece in heads]

    def on_timer(self, now: float) -> list[Action]:
        return self._release(now)

    def on_eof(self, now: float) -> list[Action]:
        return [*self._release(now), End()]

    def stop(self, now: float) -> list[Action]:
        return self._release(now)

    def _release(self, now: float) -> list[Action]:
        released, self.held, self.held_bytes = self.held, [], 0
        return [Deliver(piece, now) for piece in released]


def head_size(head: ResponseHead) -> int:
    """The bytes of `head` as a proxy reads them: status line, header lines, blank line
    (names are lower-cased here, but as long as sent; the version is 8 bytes either way)."""
    status_line = len(b"HTTP/1.1 200") + (1 + len(head.reason) if head.reason else 0) + 2
    return status_line + sum(len(k) + len(v) + 4 for k, v in head.headers) + 2
