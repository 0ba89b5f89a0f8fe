"""The journal: one JSON object per line, per connection, written as things happen.

Each line is written and flushed on its own, so a crash loses at most the line being
written. Times are `t`, seconds since the proxy started (trio's clock, so tests in
virtual time get exact values), and `ts`, the wall-clock time for people.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import trio

from sseproxy.sse import Framer

__all__ = ["Journal", "Tally"]

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

    async def wait_for(self, kind: str, count: int = 1) -> list[Record]:
        """Wait until `count` records of `kind` were kept (tests wait on events, not time)."""
        while len(found := self.of_kind(kind)) < count:
            await self._written.wait()
        return found

    def of_kind(self, kind: str) -> list[Record]:
        return [record for record in self.records if record["kind"] == kind]


@dataclass
class Tally:
    """What crossed one direction: bytes, and SSE events when framing is switched on."""

    framer: Framer | None = None
    octets: int = 0
    events: int = 0
    first_id: str | None = None
    last_id: str | None = None

    def observe(self, data: bytes) -> None:
        self.octets += len(data)
        if self.framer is None:
            return
        for block in self.framer.feed(data):
            if block.event is not None:
                self.events += 1
                if block.event.id and self.first_id is None:
                    self.first_id = block.event.id
            if block.last_event_id != (self.last_id or ""):
                self.last_id = block.last_event_id

    def summary(self, prefix: str) -> dict[str, Any]:
        fields: dict[str, Any] = {f"bytes_{prefix}": self.octets}
        if self.framer is not None:
            fields[f"events_{prefix}"] = self.events
            fields["first_id"] = self.first_id
            fields["last_id"] = self.last_id
        return fields
