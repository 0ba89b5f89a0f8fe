"""The journal: one JSON object per line, per connection, written as things happen.

Times are `t`, seconds since the proxy started (trio's clock, so tests in virtual time get
exact values), and `ts`, the wall-clock time for people.

Writing never stalls traffic. A record is stamped, kept and given to subscribers on the
event loop, but its line goes to the file (or stdout) through `LineWriter`: a bounded
backlog drained by a thread that writes and flushes each batch as soon as it arrives.
When the file cannot keep up (`--journal -` piped into a slow reader, a stalled disk)
and the backlog is full, new lines are dropped and counted rather than block the proxy;
once the backlog has drained to half, a `journal-overflow` record says how many lines
were lost and since when. `Journal.aclose` (Ctrl-C, SIGTERM) waits until every line
accepted was written, so a stop loses nothing; a crash loses what was still waiting
(normally nothing: the thread writes as soon as lines arrive).
"""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Self, TextIO

import trio

from sseproxy.faults.base import Piece
from sseproxy.sse import Event, Framer

__all__ = ["BACKLOG", "Journal", "JournalReader", "LineWriter", "Tally"]

Record = dict[str, Any]
BACKLOG = 16 * 1024 * 1024
"""Bytes of journal lines that may wait for a slow file before new lines are dropped."""


class LineWriter:
    """Lines to a text stream from a thread, through a backlog of at most `limit` bytes.

    `put` never blocks: it queues the line, or refuses it (returns False) when the
    backlog is full. The thread starts with the first line and writes whatever has
    queued up in one `write` and one `flush`. A stream that fails (a closed pipe) is
    reported once on stderr; later lines are discarded.
    """

    def __init__(self, stream: TextIO, limit: int = BACKLOG) -> None:
        self.stream = stream
        self.limit = limit
        self.backlog = 0
        """Bytes queued or being written."""
        self.failed: OSError | ValueError | None = None
        self._lines: list[str] = []
        self._ready = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None

    def put(self, line: str) -> bool:
        with self._ready:
            if self._closing or self.backlog + len(line) > self.limit:
                return False
            self.backlog += len(line)
            self._lines.append(line)
            self._ready.notify()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._drain, name="sseproxy-journal", daemon=True
                )
                self._thread.start()
        return True

    def _drain(self) -> None:
        while True:
            with self._ready:
                while not self._lines and not self._closing:
                    self._ready.wait()
                batch, self._lines = self._lines, []
                if not batch:
                    return  # closing, and everything is written
            text = "".join(batch)
            if self.failed is None:
                try:
                    self.stream.write(text)
                    self.stream.flush()
                except (OSError, ValueError) as error:
                    self.failed = error
                    print(f"sseproxy: cannot write the journal: {error}", file=sys.stderr)
            with self._ready:
                self.backlog -= len(text)
                self._ready.notify_all()

    def wait_written(self, timeout: float | None = None) -> bool:
        """Block until every queued line is written (or `timeout`); True when it was."""
        with self._ready:
            return self._ready.wait_for(lambda: self.backlog == 0, timeout)

    def close(self) -> None:
        """Write everything queued, then stop the thread (blocks: call it off the loop)."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join()


class Journal:
    """Writes records to a text stream (or nowhere) and keeps them for subscribers.

    `keep` and the subscribers get every record, at once; the stream gets them through
    a `LineWriter` (see the module docstring for what happens when it cannot keep up).
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        scenario: str = "",
        seed: int | None = None,
        keep: bool = False,
        backlog: int = BACKLOG,
    ) -> None:
        self.stream = stream
        self.writer = LineWriter(stream, backlog) if stream is not None else None
        self.dropped = 0
        """Lines the stream missed since the last `journal-overflow` record."""
        self._dropped_since: float | None = None
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
        if self.writer is not None:
            self._put(record)
        if self.keep:
            self.records.append(record)
        for subscriber in self.subscribers:
            subscriber(record)
        self._written.set()
        self._written = trio.Event()
        return record

    def _put(self, record: Record) -> None:
        assert self.writer is not None
        if self.dropped and self.writer.backlog <= self.writer.limit // 2:
            self._overflowed()
        if self.dropped or not self.writer.put(json.dumps(record, separators=(",", ":")) + "\n"):
            if not self.dropped:
                self._dropped_since = record["t"]
            self.dropped += 1

    def _overflowed(self) -> None:
        """Say how many lines the stream missed (a record of its own, kept and seen too)."""
        dropped, self.dropped = self.dropped, 0
        self.write("journal-overflow", "-", dropped=dropped, since=self._dropped_since)

    async def aclose(self) -> None:
        """Write every line accepted (and the count of lines dropped), then stop the writer
        thread. The proxy calls it when it stops, so Ctrl-C and SIGTERM lose nothing."""
        if self.writer is None:
            return
        if self.dropped:
            await trio.to_thread.run_sync(self.writer.wait_written, abandon_on_cancel=True)
            self._overflowed()
        await trio.to_thread.run_sync(self.writer.close, abandon_on_cancel=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

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


@dataclass(slots=True)
class Tally:
    """What crossed one direction: bytes, and SSE events when framing is switched on.

    Gaps are what idle timeouts see: the longest silence between bytes (and between
    events), counting from `start` and up to the moment of the summary, so the silence
    that got a stream cut is included. Every connection has two for its whole life, hence
    the slots.
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

    def count(self, size: int) -> None:
        """Bytes written that no piece carried (TCP mode's splice): bytes and gaps."""
        self._written()
        self.octets += size

    def _written(self) -> float:
        """A write to the peer happened now: the gap since the last one counts."""
        now = trio.current_time()
        if self.last_byte is not None:
            self.longest_gap = max(self.longest_gap, now - self.last_byte)
        self.last_byte = now
        return now

    def observe(self, pieces: Sequence[Piece]) -> None:
        """The pieces of one write to the peer: count their bytes, and their events when
        framing. A block the fault chain already cut is counted without parsing it again."""
        now = self._written()
        framer = self.framer
        for piece in pieces:
            data = piece.data
            self.octets += len(data)
            if framer is None:
                continue
            blocks = piece.blocks
            if blocks is not None and framer.between_blocks:
                framer.skip_blocks(blocks)
                for block in blocks:
                    self._block(block.event, block.last_event_id, len(block.raw), now)
                continue
            if piece.framed and piece.last_id is not None and framer.between_blocks:
                framer.skip_block(data, piece.last_id)
                self._block(piece.event, piece.last_id, len(data), now)
                continue
            for block in framer.feed(data):
                self._block(block.event, block.last_event_id, len(block.raw), now)
        if framer is not None and framer.overflows and not self.noted_overflow:
            self.noted_overflow = True
            if self.on_note is not None:
                self.on_note("an event outgrew the framing bound: relayed, not counted")

    def _block(self, event: Event | None, last_id: str, size: int, now: float) -> None:
        if event is not None:
            self.events += 1
            if self.last_event is not None:
                self.longest_event_gap = max(self.longest_event_gap, now - self.last_event)
            self.last_event = now
            if event.id and self.first_id is None:
                self.first_id = event.id
            if self.on_event is not None:
                self.on_event(event, size)
        if last_id != (self.last_id or ""):
            self.last_id = last_id

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
