"""A row per pool member: what each upstream instance served, refused and how its
exchanges ended (journals of a proxy with several upstreams)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sseproxy.report.records import Connection

__all__ = ["MemberRow", "member_rows"]


@dataclass
class MemberRow:
    member: str
    exchanges: int = 0
    """HTTP exchanges it served (TCP: connections)."""
    streams: int = 0
    """Of which event streams (a 2xx text/event-stream response)."""
    refused: int = 0
    """Connects to it that failed (the pool moved on, or the client got 502)."""
    ends: dict[str, int] = field(default_factory=dict)
    """How its exchanges ended, 'by/reason': how many. (A plain dict: `dataclasses.asdict`
    rebuilds a Counter from its items, counting the pairs, and `--json` then fails.)"""

    @property
    def top_end(self) -> str:
        if not self.ends:
            return "-"
        cause, count = Counter(self.ends).most_common(1)[0]
        return f"{cause} ({count})"

    def ended(self, cause: str) -> None:
        self.ends[cause] = self.ends.get(cause, 0) + 1


def member_rows(conns: Iterable[Connection]) -> list[MemberRow]:
    """One row per member named in the journals, by name; none when no member is named."""
    rows: dict[str, MemberRow] = {}

    def row(name: str) -> MemberRow:
        return rows.setdefault(name, MemberRow(name))

    for conn in conns:
        for name in conn.failed_members:
            row(name).refused += 1
        if not conn.requests and conn.member is not None:  # TCP mode
            r = row(conn.member)
            r.exchanges += 1
            if not conn.is_open:
                r.ended(conn.cause)
        for request in conn.requests:
            for name in request.failed_members:
                row(name).refused += 1
            if request.member is None:
                continue
            r = row(request.member)
            r.exchanges += 1
            r.streams += request.is_event_stream
            if request.ended_by is not None:
                r.ended(f"{request.ended_by}/{request.ended_reason or '?'}")
    return [rows[name] for name in sorted(rows)]
