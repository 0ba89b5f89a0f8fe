"""The journal: one JSON object per line, per connection, written as things happen.

Each line is written and flushed on its own, so a crash loses at most the line being
written. Times are `t`, seconds since the proxy started (trio's clock, so tests in
virtual time get exact values), and `ts`, the wall-clock time for people.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self, TextIO

import trio

from sseproxy.sse import Event, Framer

__all__ = ["Journal", "JournalReader", "Tally"]

Record = dict[str, Any]


class Journal:
    """Writes records to a text stream (or nowhere) and keeps them for subscribers."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        scenario: str = "",
        seed: int | None = None,
        keep: bool = False,
    ) -> None:
        self.stream = stream
        self.scenario = scenario
        self.seed = seed
        self.origin = trio.current_time()
        self.records: list[Record] = []
        self.keep = keep
        self.subscribers: list[Callable[[Record], None]] = []
        self._written = trio.Event()

    def write(self, kind: str, conn: str, **fields: Any) -> Record:
        record: Record = {
            "t": round(trio.current_time() - self.origin, 6),
            "ts": datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="milliseconds"),
            "kind": kind,
            "conn": conn,
            **{key: value for key, value in fields.items() if value is not None},
            "scenario": self.scenario,
            "seed": self.seed,
        }
        if self.stream is not None:
            self.stream.write(json.dumps(record, separators=(",", ":")) + "\n")
            self.stream.flush()
        if self.keep:
            self.records.append(record)
        for subscriber in self.subscribers:
            subscriber(record)
        self._written.set()
        self._written = trio.Event()
        return record

    def subscribe(self, callback: Callable[[Record], None]) -> Callable[[], None]:
        """Call `callback` with every record from now on; returns the way to stop."""
        self.subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self.subscribers.remove(callback)

        return unsubscribe

    async def wait_for(self, kind: str, count: int = 1) -> list[Record]:
        """Wait until `count` records of `kind` were kept (tests wait on events, not time)."""
        while len(found := self.of_kind(kind)) < count:
            await self._written.wait()
        return found

    def of_kind(self, kind: str) -> list[Record]:
        return [record for record in self.records if record["kind"] == kind]


EventHook = Callable[[Event, int], None]


class JournalReader:
    """Follows one journal at a time: `attach` subscribes `observe`, `detach` stops."""

    _stop: Callable[[], None] | None = None

    def observe(self, record: Record) -> None:
        raise NotImplementedError

    def attach(self, journal: Journal) -> Self:
        self.detach()
        self._stop = journal.subscribe(self.observe)
        return self

    def detach(self) -> None:
        if self._stop is not None:
            self._stop()
            self._stop = None


@dataclass
class Tally:
    """What crossed one direction: bytes, and SSE events when framing is switched on.

    Gaps are what idle timeouts see: the longest silence between bytes (and between
    events), counting from `start` and up to the moment of the summary, so the silence
    that got a stream cut is included.
    """

    framer: Framer | None = None
    on_event: EventHook | None = None
    on_note: Callable[[str], None] | None = None
    """Told once when an event outgrows the framer's bound and is counted no more."""
    noted_overflow: bool = False
    octets: int = 0
    events: int = 0
    first_id: str | None = None
    last_id: str | None = None
    start: float | None = None
    last_byte: float | None = None
    last_event: float | None = None
    longest_gap: float = 0.0
    longest_event_gap: float = 0.0
    framed: bool = False
    """Some response was framed: report events (even if a later one was not SSE)."""

    def begin(self, framer: Framer | None) -> None:
        """A new response starts: frame it (or not) and time gaps from now."""
        self.framer = framer
        self.framed = self.framed or framer is not None
        self.start = self.last_byte = self.last_event = trio.current_time()

    def observe(self, data: bytes) -> None:
        self.octets += len(data)
        now = trio.current_time()
        if self.last_byte is not None:
            self.longest_gap = max(self.longest_gap, now - self.last_byte)
        self.last_byte = now
        if self.framer is None:
            return
        for block in self.framer.feed(data):
            if block.event is not None:
                self.events += 1
                if self.last_event is not None:
                    self.longest_event_gap = max(self.longest_event_gap, now - self.last_event)
                self.last_event = now
                if block.event.id and self.first_id is None:
                    self.first_id = block.event.id
                if self.on_event is not None:
                    self.on_event(block.event, len(block.raw))
            if block.last_event_id != (self.last_id or ""):
                self.last_id = block.last_event_id
        if self.framer.overflows and not self.noted_overflow:
            self.noted_overflow = True
            if self.on_note is not None:
                self.on_note("an event outgrew the framing bound: relayed unparsed, not counted")

    def summary(self, prefix: str) -> dict[str, Any]:
        fields: dict[str, Any] = {f"bytes_{prefix}": self.octets}
        now = trio.current_time()
        if self.last_byte is not None:
            gap = max(self.longest_gap, now - self.last_byte)
            fields[f"longest_gap_{prefix}"] = round(gap, 6)
        if self.framed:
            fields[f"events_{prefix}"] = self.events
            fields["first_id"] = self.first_id
            fields["last_id"] = self.last_id
            if self.last_event is not None:
                gap = max(self.longest_event_gap, now - self.last_event)
                fields["longest_event_gap"] = round(gap, 6)
        return fields
