"""drop-events: matching SSE blocks never arrive, as when a heartbeat or a message is lost.

Brokers and fan-out layers lose messages (a full Redis pub/sub buffer, a dropped Kafka
consumer rebalance, a CDN dedup gone wrong), and a heartbeat that never comes is how a
client's watchdog gets its first test. The block vanishes whole and everything else
reaches the client byte-exact. `BlockMatch` decides which blocks are hit; `delay-events`
uses it too, so both faults select blocks by the same rules.
"""

from __future__ import annotations

import fnmatch
import random
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from sseproxy.faults import register
from sseproxy.faults.base import Action, Deliver, Fault, Note, Piece
from sseproxy.params import Param, ParamError

__all__ = ["BlockMatch", "DropEvents"]

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"
_EVENT_KEYS = ("event", "id", "data")


class BlockMatch:
    """Which framed blocks a fault acts on; `event`, `id` and `data` must all hold (an event),
    `comments` picks comment-only blocks besides, and `rate` thins the hits out at random."""

    params: ClassVar[tuple[Param, ...]] = (
        Param("event", "str", "Event type glob, e.g. 'heartbeat' or 'update.*'.", optional=True),
        Param("id", "str", "Glob on the lastEventId (inherited when no `id`).", optional=True),
        Param("data", "str", "Python regex searched for in the event's data.", optional=True),
        Param("comments", "bool", "Also hit comment-only blocks (': ping').", default=False),
        Param("rate", "float", "Chance each match is hit.", default=1.0, minimum=0, maximum=1),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        self.rng = rng
        self.type: str | None = settings.get("event")
        self.id: str | None = settings.get("id")
        data: str | None = settings.get("data")
        self.data = re.compile(data) if data is not None else None
        self.comments: bool = settings.get("comments", False)
        self.events = any(settings.get(key) is not None for key in _EVENT_KEYS)
        self.rate: float = settings.get("rate", 1.0)

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> None:
        if not settings.get("comments") and all(settings.get(k) is None for k in _EVENT_KEYS):
            raise ParamError("give at least one of `event`, `id`, `data`, `comments = true`")
        if (data := settings.get("data")) is not None:
            try:
                re.compile(data)
            except re.error as error:
                raise ParamError(f"{data!r} is not a valid regex: {error}", field="data") from None

    def __call__(self, piece: Piece) -> bool:
        """True when `piece` is hit (draws from the rng only for a matching block)."""
        if not piece.framed:
            return False  # a trailing incomplete block: never dispatched, never matched
        event = piece.event
        if event is None:
            hit = self.comments and _comment_only(piece.data)
        else:
            hit = (
                self.events
                and (self.type is None or fnmatch.fnmatchcase(event.type, self.type))
                and (self.id is None or fnmatch.fnmatchcase(event.id, self.id))
                and (self.data is None or self.data.search(event.data) is not None)
            )
        return hit and (self.rate >= 1.0 or self.rng.random() < self.rate)


def _comment_only(raw: bytes) -> bool:
    """True when every non-blank line of the block is a comment (not id/retry/event-only)."""
    lines = [line for line in _LINE_END.split(raw.removeprefix(_BOM)) if line]
    return bool(lines) and all(line.startswith(b":") for line in lines)


@register
class DropEvents(Fault):
    name = "drop-events"
    uses_random = True
    resizes_body = True
    summary = "Drop matching SSE blocks (by event type, id, data or comments), maybe at a `rate`."
    params = BlockMatch.params

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.match = BlockMatch(settings, rng)

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> None:
        BlockMatch.check(settings)

    def needs_events(self) -> bool:
        return True

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        if not self.match(piece):
            return [Deliver(piece, now)]
        event = piece.event
        what = f"event id {event.id!r} type {event.type!r}" if event else "comment block"
        return [Note(f"dropped {what} ({len(piece.data)} bytes)")]
