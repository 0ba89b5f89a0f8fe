"""What a probe saw: one `Attempt` per connection attempt, one `ClientRecord` per client.

Times are seconds since the probe started (trio's clock, so virtual-time tests get exact
values). Gaps count the silence up to the end of the attempt, as the proxy's journal
does, so the silence that got a stream cut is part of its longest gap.

Ids are compared as the stream's own ids (`IdCheck`). When the ids are integers, the
server is assumed to number its events one by one (1, 2, 3...): an id more than one past
the highest seen means events were lost, an id at or below it means an event came again.
Ids that are not integers cannot tell a loss; only an id seen before counts, as repeated:
across reconnects when an earlier connection brought it, else inside the stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

__all__ = ["DROP_KINDS", "KINDS", "Attempt", "ClientRecord", "IdCheck", "Kind"]

Kind = Literal[
    "clean-end", "incomplete", "rst", "watchdog", "status", "refused", "protocol", "run-end"
]
KINDS: Final[tuple[Kind, ...]] = (
    "clean-end",
    "incomplete",
    "rst",
    "watchdog",
    "status",
    "refused",
    "protocol",
    "run-end",
)
DROP_KINDS: Final = KINDS[:-1]
"""Every way an attempt ends except the probe's own stop: these are the drops."""


@dataclass
class Attempt:
    """One connection attempt of one client, from its connect to its end."""

    client: int
    number: int
    """The client's attempt number, from 1."""
    conn: str
    """Its id in the probe's journal (c1, c2... across all clients)."""
    started: float
    delay_before: float | None = None
    """Seconds between the previous attempt's end and this one's start (a reconnect)."""
    local: tuple[str, int] | None = None
    """The client's address and port, once connected (how the proxy's journal sees it)."""
    last_event_id: str | None = None
    """The Last-Event-ID header sent, if any."""
    status: int | None = None
    content_type: str | None = None
    chunked: bool = False
    head_at: float | None = None
    established: bool = False
    """A 200 text/event-stream: EventSource's `open`."""
    bytes: int = 0
    """Body bytes (without the chunked framing)."""
    events: int = 0
    first_event_at: float | None = None
    first_id: str | None = None
    last_id: str | None = None
    last_byte_at: float | None = None
    last_event_at: float | None = None
    longest_byte_gap: float = 0.0
    longest_event_gap: float = 0.0
    ended: float | None = None
    kind: Kind | None = None
    detail: str = ""
    reason: str | None = None
    """For a connect that failed: the journal's reason (upstream-refused, -timeout...)."""
    final: bool = False
    """The spec says stop: no reconnect follows (a status, a wrong content type)."""

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.started

    @property
    def silence(self) -> float | None:
        """Seconds without a byte before the end (from the head when no body byte came)."""
        last = self.last_byte_at if self.last_byte_at is not None else self.head_at
        return None if self.ended is None or last is None else self.ended - last

    def got_bytes(self, now: float, size: int) -> None:
        last = self.last_byte_at if self.last_byte_at is not None else self.head_at
        if last is not None:
            self.longest_byte_gap = max(self.longest_byte_gap, now - last)
        self.last_byte_at = now
        self.bytes += size

    def got_event(self, now: float, event_id: str) -> None:
        last = self.last_event_at if self.last_event_at is not None else self.head_at
        if last is not None:
            self.longest_event_gap = max(self.longest_event_gap, now - last)
        if self.first_event_at is None:
            self.first_event_at = now
            self.first_id = event_id or None
        self.last_event_at = now
        self.events += 1

    def end(self, now: float, kind: Kind, detail: str = "", *, final: bool = False) -> None:
        """The attempt is over; the gaps take in the silence up to now."""
        self.ended, self.kind, self.detail, self.final = now, kind, detail, final
        if self.head_at is not None:
            last = self.last_byte_at if self.last_byte_at is not None else self.head_at
            self.longest_byte_gap = max(self.longest_byte_gap, now - last)
            last = self.last_event_at if self.last_event_at is not None else self.head_at
            self.longest_event_gap = max(self.longest_event_gap, now - last)

    @property
    def label(self) -> str:
        """How the client saw the end, in words ('incomplete chunked body', 'HTTP 503')."""
        if self.kind == "incomplete" and self.head_at is not None:
            return "incomplete chunked body" if self.chunked else "incomplete body"
        if self.kind == "refused" and self.reason == "upstream-tls-error":
            return "TLS handshake failed"
        return _LABELS.get(self.kind or "", self.kind or "open")


_LABELS: Final[dict[str, str]] = {
    "clean-end": "clean end",
    "incomplete": "closed before the response head",
    "rst": "RST (connection reset)",
    "watchdog": "watchdog (no event in time)",
    "status": "status (not a 200 event stream)",
    "refused": "refused (no connection)",
    "protocol": "bad HTTP response",
    "run-end": "probe stopped",
}


class IdCheck:
    """Events lost and repeated, from the ids one client received (see the module doc).

    `observe` is told each event's id and whether its attempt is not the one that gave
    the highest id so far: the loss or repeat is then counted as across a reconnect.
    """

    def __init__(self, resume_from: str = "") -> None:
        self.highest: int | None = _integer(resume_from)
        self._highest_attempt = 0
        self.numeric = True
        """Every id so far was an integer (or there was none)."""
        self._seen: dict[str, int] = {}
        """Once ids are not integers: each id seen, and the attempt that first brought it
        (integers need only the highest)."""
        self._current: tuple[int, set[str]] = (0, set())
        self.lost = 0
        self.duplicated = 0
        self.lost_in_stream = 0
        self.duplicated_in_stream = 0

    def observe(self, event_id: str, attempt: int) -> None:
        if not event_id:
            return
        across = attempt != self._highest_attempt
        number = _integer(event_id)
        if number is None or not self.numeric:
            self.numeric = False
            first = self._seen.setdefault(event_id, attempt)
            if first != attempt or self._seen_twice(event_id, attempt):
                self._count_duplicate(first != attempt)
            return
        if self.highest is not None and number <= self.highest:
            self._count_duplicate(across)
            return
        if self.highest is not None and number > self.highest + 1:
            missing = number - self.highest - 1
            if across:
                self.lost += missing
            else:
                self.lost_in_stream += missing
        self.highest, self._highest_attempt = number, attempt

    def _seen_twice(self, event_id: str, attempt: int) -> bool:
        """Whether this attempt already brought `event_id` (a repeat inside the stream)."""
        number, ids = self._current
        if number != attempt:
            self._current = (attempt, {event_id})
            return False
        if event_id in ids:
            return True
        ids.add(event_id)
        return False

    def _count_duplicate(self, across: bool) -> None:
        if across:
            self.duplicated += 1
        else:
            self.duplicated_in_stream += 1


def _integer(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


@dataclass
class ClientRecord:
    """One client's whole run: its attempts, ids, and its gaps across reconnects."""

    number: int
    ids: IdCheck
    attempts: list[Attempt] = field(default_factory=list)
    started: float | None = None
    ended: float | None = None
    first_event_at: float | None = None
    last_event_at: float | None = None
    longest_event_gap: float = 0.0
    """The longest time without an event, across reconnects, from the client's start to
    its end: what the application behind an EventSource would have waited."""
    state: Literal["waiting", "connecting", "open", "reconnecting", "stopped"] = "waiting"

    def got_event(self, now: float) -> None:
        last = self.last_event_at if self.last_event_at is not None else self.started
        if last is not None:
            self.longest_event_gap = max(self.longest_event_gap, now - last)
        if self.first_event_at is None:
            self.first_event_at = now
        self.last_event_at = now

    def finish(self, now: float) -> None:
        self.ended, self.state = now, "stopped"
        last = self.last_event_at if self.last_event_at is not None else self.started
        if last is not None:
            self.longest_event_gap = max(self.longest_event_gap, now - last)

    @property
    def time_to_first_event(self) -> float | None:
        if self.first_event_at is None or self.started is None:
            return None
        return self.first_event_at - self.started
