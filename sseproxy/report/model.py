"""What a report says, as plain dataclasses: the text, JSON and HTML outputs all read these.

Times are seconds. Every list is already sorted for reading (largest counts first).
`dataclasses.asdict(report)` is the `--json` output, so field names here are an interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sseproxy.report.members import MemberRow
from sseproxy.report.sessions import SessionLosses
from sseproxy.report.stats import Summary, human_duration

__all__ = [
    "Bar",
    "Chain",
    "ClientGroup",
    "CloseRow",
    "Closes",
    "Count",
    "Durations",
    "FailedRow",
    "Gap",
    "Heartbeat",
    "Hop",
    "Marker",
    "ProxyRow",
    "ReasonDurations",
    "Reconnects",
    "Report",
    "Resume",
    "Row",
    "Timeline",
    "TimeoutCheck",
    "Totals",
]


@dataclass
class Count:
    name: str
    count: int
    share: float = 0.0


@dataclass
class Totals:
    journals: list[str]
    runs: int
    scenarios: list[str]
    seeds: list[int]
    unreadable_lines: int
    span: float
    connections: int
    closed: int
    still_open: int
    streams: int
    """Connections whose response was a 2xx `text/event-stream`: established streams."""
    failed_attempts: int
    """Requests for a stream path (or with Last-Event-ID) that got no stream."""
    other_requests: int
    no_request: int
    tcp: int
    requests: int
    paths: list[Count]
    statuses: list[Count]
    listeners: list[Count]
    upstream_connect: Summary | None
    time_scales: list[float] = field(default_factory=list)
    """`Journals.time_scales`: the runs' time scales, when not real time."""
    proxies: list[ProxyRow] = field(default_factory=list)
    """One row per named proxy, when the journal has several (`run --config`)."""


@dataclass
class ProxyRow:
    name: str
    connections: int
    closed_by: dict[str, int]
    """Closed connections by who closed them: client, upstream, proxy."""
    top_reason: str


@dataclass
class CloseRow:
    cause: str
    """'by/reason' as journaled."""
    by: str
    reason: str
    side: str
    """Who it stands for: client, server, intermediary (fault), client (fault), proxy
    shutdown, proxy."""
    fault_type: str | None
    count: int
    share: float
    p50_duration: float | None
    example_detail: str
    explanation: str


@dataclass
class FailedRow:
    status: str
    cause: str
    count: int


@dataclass
class Closes:
    population: str
    """'streams' (when the journal has any) or 'connections'."""
    established: int
    closed: int
    still_open: int
    rows: list[CloseRow]
    by_side: list[Count]
    failed: list[FailedRow]
    disconnect_rate: float | None
    explanation: str


@dataclass
class ReasonDurations:
    cause: str
    summary: Summary
    histogram: dict[str, int]


@dataclass
class Durations:
    population: str
    overall: Summary
    histogram: dict[str, int]
    per_cause: list[ReasonDurations]
    still_open: Summary
    """Ages of the connections still open at the end (lower bounds of their durations)."""


@dataclass
class ClientGroup:
    host: str
    family: str
    user_agents: list[str]
    connections: int
    streams: int
    failed: int
    reconnects: int
    mean_lifetime: float | None
    top_cause: str


@dataclass
class Hop:
    """One reconnect: connection `previous` was followed by `next` from the same client."""

    chain: str
    previous: str
    next: str
    delay: float
    expected_id: str | None
    """The last event id the client had been given before reconnecting."""
    sent_id: str | None
    """The `Last-Event-ID` it sent."""
    first_id: str | None
    """The first event id the server sent on the new connection."""
    client_check: str
    """ok, missing, mismatch, or none (no id had been given yet)."""
    server_check: str
    """ok, skipped, repeated, no-events, not-numeric, fresh (nothing to resume) or failed."""
    lost: int
    replayed: int
    status: str = ""
    """The new connection's response status ('200', '503', 'no response')."""


@dataclass
class Chain:
    key: str
    label: str
    connections: list[str]
    reconnects: int
    failed: int
    delay_p50: float | None
    delay_max: float | None
    lost: int
    replayed: int

    def cells(self) -> list[object]:
        """The row both renderers show (text and HTML), in `CHAIN_COLUMNS` order."""
        return [
            self.label,
            len(self.connections),
            self.reconnects,
            self.failed,
            human_duration(self.delay_p50),
            human_duration(self.delay_max),
            self.lost,
            self.replayed,
        ]


CHAIN_COLUMNS = [
    "client or session",
    "conns",
    "reconnects",
    "failed",
    "delay p50",
    "delay max",
    "events lost",
    "events replayed",
]


@dataclass
class Resume:
    reconnects: int
    with_id_to_resume: int
    sent_ok: int
    sent_missing: int
    sent_mismatch: int
    server_ok: int
    skipped: int
    lost: int
    repeated: int
    replayed: int
    no_events: int
    not_numeric: int
    lost_inside_streams: int | None
    """Ids skipped inside one connection (needs the journal's `event` records)."""


@dataclass
class Reconnects:
    window: float
    """A connection opened longer than this after the previous one closed is a new visit."""
    chains: int
    chains_with_reconnects: int
    reconnects: int
    delays: Summary
    resume: Resume
    sentences: list[str]
    chain_rows: list[Chain]
    hops: list[Hop]


@dataclass
class TimeoutCheck:
    fault: str
    type: str
    timeout: float | None
    counts: str
    """'bytes' or 'events': what resets the timer."""
    streams: int
    """Streams of this path that had the fault."""
    fired: int
    verdict: str
    """cut, ok or unknown."""
    sentence: str


@dataclass
class Heartbeat:
    path: str
    streams: int
    longest_gap: float | None
    longest_event_gap: float | None
    longest_stream: float | None
    checks: list[TimeoutCheck]


@dataclass
class Row:
    key: str
    label: str
    lane: int = 0
    """0 for a client's first row; 1, 2, ... for the lanes of streams open beside others."""


@dataclass
class Bar:
    conn: str
    row: int
    start: float
    end: float
    open: bool
    kind: str
    cause: str
    path: str
    status: str
    detail: str
    events: int | None
    first_id: str | None
    last_id: str | None


@dataclass
class Marker:
    row: int
    t: float
    conn: str
    fault: str
    action: str
    detail: str


@dataclass
class Gap:
    row: int
    start: float
    end: float
    previous: str
    next: str
    verdict: str
    lost: int
    replayed: int


@dataclass
class Timeline:
    end: float
    rows: list[Row]
    bars: list[Bar]
    markers: list[Marker]
    gaps: list[Gap]
    colours: dict[str, str]
    hidden_rows: int


@dataclass
class Report:
    totals: Totals
    closes: Closes
    durations: Durations
    clients: list[ClientGroup]
    reconnects: Reconnects
    heartbeats: list[Heartbeat]
    timeline: Timeline
    notes: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    """The findings in a few sentences: top causes, heartbeat verdicts, losses."""
    members: list[MemberRow] = field(default_factory=list)
    """A row per upstream pool member (none for a lone upstream)."""
    sessions_lost: list[SessionLosses] = field(default_factory=list)
    """Sessions a pool member did not know (404), by cause (`report.sessions`)."""
