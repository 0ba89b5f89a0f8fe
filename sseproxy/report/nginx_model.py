"""What `sseproxy report --nginx-log` says, as plain dataclasses (text, JSON and HTML read
these; `dataclasses.asdict()` is the `--json` output, so field names are an interface).

Times are seconds; `start` and `end` of a request are seconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sseproxy.report.model import Timeline
from sseproxy.report.stats import Summary

__all__ = [
    "CauseRow",
    "ClientRow",
    "ClusterRow",
    "NginxReport",
    "NginxTotals",
    "ReconnectSummary",
    "RequestRow",
    "StatusRow",
    "UpstreamRow",
]


@dataclass
class NginxTotals:
    access_log: str
    error_log: str | None
    error_log_info: bool | None
    """The error log has info-level lines (clients going away are logged); None: no log."""
    lines: int
    unreadable_lines: int
    requests: int
    """Every request in the access log."""
    selected: int
    """The ones that look like SSE streams (see `selection`)."""
    selection: str
    streams: int
    """Selected requests answered 2xx: a stream started."""
    failed: int
    first: str
    last: str
    """ISO 8601 times of the first request's start and the last one's end."""
    causes_from: str
    """"from the error log" or "inferred from durations and statuses"."""


@dataclass
class CauseRow:
    cause: str
    side: str
    """client, server (the upstream), nginx (one of its timeouts), limit (at a known limit,
    no error log), not nginx (at a known limit, and the error log has no nginx timeout),
    or unknown."""
    source: str
    """error log, status, or inferred."""
    count: int
    share: float
    p50_duration: float | None
    meaning: str
    example: str
    """An error-log message (or the limit) behind this cause."""


@dataclass
class StatusRow:
    status: int
    count: int
    share: float
    meaning: str


@dataclass
class ClusterRow:
    centre: float
    low: float
    high: float
    count: int
    share: float
    limit: float | None
    """The known limit it sits at, in seconds."""
    known_as: str
    """Who has that limit (the likeliest few of `sources`), or what the error log (or the
    504s in the pile) says cut these requests."""
    sources: list[str]
    """Everything known to have that limit: presets' faults, documented defaults, --limit."""
    presets: list[str]
    reproduce: str
    """An `sseproxy run --scenario ...` that reproduces the pile ('' when nothing does)."""
    causes: dict[str, int]
    statuses: dict[str, int]


@dataclass
class ClientRow:
    family: str
    requests: int
    streams: int
    clients: int
    """Distinct addresses."""
    p50_duration: float | None
    top_cause: str
    user_agents: list[str]


@dataclass
class UpstreamRow:
    upstream: str
    requests: int
    share: float
    streams: int
    status_502: int
    status_504: int
    failed_tries: int
    """Times nginx tried it, failed, and went on to the next upstream."""
    clients: int
    networks: int
    """Distinct client /24 networks: what `ip_hash` keys on (the first three octets)."""
    p50_duration: float | None
    top_cause: str
    pool: list[str]
    """The upstreams that served paths under the same first segment (itself included):
    one pool, as far as the log can tell, whose balance can be judged."""


@dataclass
class ReconnectSummary:
    window: float
    reconnects: int
    """Requests by a client (address and user agent) within `window` of its previous one."""
    clients: int
    delay: Summary


@dataclass
class RequestRow:
    line: int
    start: float
    end: float
    duration: float
    client: str
    family: str
    method: str
    target: str
    status: int
    upstream: str
    connection: int
    cause: str
    side: str
    source: str
    detail: str


@dataclass
class NginxReport:
    totals: NginxTotals
    causes: list[CauseRow]
    statuses: list[StatusRow]
    durations: Summary
    histogram: dict[str, int]
    clusters: list[ClusterRow]
    clients: list[ClientRow]
    upstreams: list[UpstreamRow]
    reconnects: ReconnectSummary
    timeline: Timeline
    summary: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    requests: list[RequestRow] = field(default_factory=list)
