"""What the journal says, per connection: the reader's output, the analysis's input.

Every field is optional (older journals lack some, newer ones add more); see `reader`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Connection", "EventSeen", "FaultFired", "Journals", "Record", "Request", "base_path"]

Record = dict[str, Any]


def base_path(target: str) -> str:
    """'/events?x=1' -> '/events': requests are grouped without their query string."""
    return target.split("?", 1)[0] or "/"


@dataclass
class Request:
    """One request/response exchange on a connection (HTTP mode)."""

    t: float
    req: int | None = None
    method: str | None = None
    target: str = ""
    query: str | None = None
    last_event_id: str | None = None
    accept: str | None = None
    """The request's Accept header: an EventSource asks for text/event-stream."""
    user_agent: str | None = None
    session: str | None = None
    faults: tuple[str, ...] = ()
    status: int | None = None
    content_type: str | None = None
    ttfb: float | None = None
    status_by_proxy: bool = False
    ended_by: str | None = None
    ended_reason: str | None = None
    ended_detail: str | None = None
    ended_at: float | None = None
    duration: float | None = None
    """From the `ended` record: how long the exchange lasted."""
    member: str | None = None
    """The pool member that served it (the `upstream` record's `member`)."""
    failed_members: list[str] = field(default_factory=list)
    """Pool members that refused it first (`upstream-failed` records)."""
    session_answered: str | None = None
    """The session its response opened or named (`response.session`: Mcp-Session-Id)."""

    @property
    def path(self) -> str:
        return base_path(self.target)

    @property
    def full_target(self) -> str:
        """The target as the client sent it (newer journals keep the query apart)."""
        if self.query and "?" not in self.target:
            return f"{self.target}?{self.query}"
        return self.target

    @property
    def is_event_stream(self) -> bool:
        """A 2xx response that is `text/event-stream`: the stream was established."""
        return (
            self.status is not None
            and 200 <= self.status < 300
            and (self.content_type or "").lower().startswith("text/event-stream")
        )


@dataclass(frozen=True)
class FaultFired:
    t: float
    fault: str
    action: str = ""
    detail: str = ""
    direction: str = ""
    exchange: int = 0
    """How many requests the connection had sent when it fired (its exchange, from 1)."""


@dataclass(frozen=True)
class EventSeen:
    """One event delivered to the client (journals written with `--journal-events`)."""

    t: float
    id: str | None = None
    type: str | None = None
    size: int | None = None
    exchange: int = 0
    """How many requests the connection had sent when it was delivered (from 1)."""


@dataclass
class Connection:
    """Everything the journal says about one client connection."""

    key: str
    """Unique across all journals given: 'c3', or 'run 2/c3' when there are several runs."""
    conn: str
    run: int
    opened: float
    """Time on the report's common axis (seconds), see the module docstring."""
    client: str | None = None
    host: str = "unknown"
    port: int | None = None
    listener: str | None = None
    mode: str | None = None
    proxy: str | None = None
    """The named proxy it came through, when one process ran several (`run --config`)."""
    scenario: str | None = None
    seed: int | None = None
    requests: list[Request] = field(default_factory=list)
    faults: list[FaultFired] = field(default_factory=list)
    events: list[EventSeen] = field(default_factory=list)
    upstream: str | None = None
    upstream_connect: float | None = None
    member: str | None = None
    """TCP mode: the pool member of the connection (HTTP: per request)."""
    failed_members: list[str] = field(default_factory=list)
    closed_at: float | None = None
    by: str | None = None
    reason: str | None = None
    detail: str | None = None
    duration: float | None = None
    bytes_down: int | None = None
    bytes_up: int | None = None
    events_down: int | None = None
    first_id: str | None = None
    last_id: str | None = None
    longest_gap: float | None = None
    """Longest silence between bytes toward the client (`closed.longest_gap_down`)."""
    longest_event_gap: float | None = None
    journaled_cause: str | None = None
    """Set when the report blames a fault instead of the journal's client close (see
    `settle_races`): what the closed record said."""
    carrier: str | None = None
    """Set on each stream of a keep-alive connection that carried several (see
    `report.exchanges`): the key of that connection."""
    seen_by_client: str | None = None
    """How the client saw the end, from a probe's journal (`closed.seen_as`, or merged
    in from the probe's journal of the same run: see `report.merge`)."""

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    @property
    def main_request(self) -> Request | None:
        """The request that made this connection what it is: its event stream, else the last."""
        for request in self.requests:
            if request.is_event_stream:
                return request
        return self.requests[-1] if self.requests else None

    @property
    def user_agent(self) -> str | None:
        request = self.main_request
        return request.user_agent if request else None

    @property
    def session(self) -> str | None:
        return next((r.session for r in self.requests if r.session), None)

    @property
    def path(self) -> str | None:
        request = self.main_request
        return request.path if request else None

    @property
    def cause(self) -> str:
        """'by/reason' as journaled ('client/client-closed'), or 'open'."""
        if self.is_open:
            return "open"
        return f"{self.by or '?'}/{self.reason or '?'}"


@dataclass
class Journals:
    """All connections of all journals given, plus what did not fit."""

    connections: list[Connection]
    sources: list[str]
    runs: int
    scenarios: list[str]
    seeds: list[int]
    unreadable: int
    notes: list[str]
    end: float
    """The last time any journal mentions (still-open connections are shown up to here)."""
    started: list[Record] = field(default_factory=list)
    restarts: list[tuple[float, int, str]] = field(default_factory=list)
    """(time, run, member) of each `member-restarted` record: a pool member forgot its sessions."""
    time_scales: list[float] = field(default_factory=list)
    """The time scales the runs ran at (`run --time-scale`, `PUT /time-scale`), in the
    order they appear; empty when no run says (real time)."""
    scenario_files: dict[str, list[str]] = field(default_factory=dict)
    """Scenario name -> where its file may be, best first: next to the journal (by the
    `started` record's `scenario_file`, or as NAME.toml), then the recorded path."""
