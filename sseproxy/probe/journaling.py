"""A probe's journal: sseproxy's own record kinds, written from the client's side.

So `sseproxy report` reads a probe run as it reads a proxy's: each attempt is a
connection (`opened` with the client's own address and port, `request`, `response`,
`closed`). How the client saw the end becomes the journal's `by`/`reason`, as the proxy
would have written it for its upstream:

| seen as | by | reason |
|---|---|---|
| clean end | upstream | upstream-end |
| incomplete body | upstream | upstream-closed |
| RST | upstream | upstream-reset |
| refused | upstream | upstream-refused (or -timeout, -unreachable) |
| bad HTTP | upstream | upstream-protocol-error |
| status | upstream | upstream-end (the `response` record has the status) |
| watchdog | client | client-watchdog |
| probe stopped | client | client-closed |

`closed` also carries `seen_as` (the probe's words) and `client_port`, which are what
merging with the proxy's journal of the same run matches on. Each client is a session
(`probe-N`), so the report's reconnect chains are per client.
"""

from __future__ import annotations

from typing import Any

from sseproxy.journal import Journal
from sseproxy.probe.record import Attempt
from sseproxy.probe.runner import ProbeSettings

__all__ = ["ProbeJournal", "by_and_reason"]

_BY_KIND = {
    "clean-end": ("upstream", "upstream-end"),
    "incomplete": ("upstream", "upstream-closed"),
    "rst": ("upstream", "upstream-reset"),
    "refused": ("upstream", "upstream-refused"),
    "protocol": ("upstream", "upstream-protocol-error"),
    "status": ("upstream", "upstream-end"),
    "watchdog": ("client", "client-watchdog"),
    "run-end": ("client", "client-closed"),
}


def by_and_reason(attempt: Attempt) -> tuple[str, str]:
    if attempt.reason is not None:
        return "upstream", attempt.reason
    return _BY_KIND.get(attempt.kind or "", ("client", "client-closed"))


class ProbeJournal:
    """The client `Hooks` that write the journal (create it when the probe starts)."""

    def __init__(self, journal: Journal, settings: ProbeSettings) -> None:
        self.journal = journal
        self.requests = 0
        journal.write(
            "started",
            "-",
            role="probe",
            url=str(settings.target),
            clients=settings.clients,
            duration=settings.duration,
            watchdog=settings.watchdog,
            mode="http",
        )

    def opened(self, attempt: Attempt) -> None:
        address: dict[str, Any] = {}
        if attempt.local is not None:
            address = {"client": attempt.local[0], "client_port": attempt.local[1]}
        self.journal.write("opened", attempt.conn, mode="http", listener="probe", **address)

    def requested(
        self, attempt: Attempt, method: str, target: str, headers: dict[str, str]
    ) -> None:
        self.requests += 1
        path, _, query = target.partition("?")
        self.journal.write(
            "request",
            attempt.conn,
            req=self.requests,
            method=method,
            path=path,
            query=query or None,
            session=f"probe-{attempt.client}",
            last_event_id=headers.get("last-event-id"),
            accept=headers.get("accept"),
            user_agent=headers.get("user-agent"),
        )

    def responded(self, attempt: Attempt) -> None:
        ttfb = None if attempt.head_at is None else round(attempt.head_at - attempt.started, 6)
        self.journal.write(
            "response",
            attempt.conn,
            status=attempt.status,
            content_type=attempt.content_type,
            ttfb=ttfb,
        )

    def closed(self, attempt: Attempt) -> None:
        by, reason = by_and_reason(attempt)
        gaps: dict[str, Any] = {}
        if attempt.head_at is not None:
            gaps = {
                "longest_gap_down": round(attempt.longest_byte_gap, 6),
                "longest_event_gap": round(attempt.longest_event_gap, 6),
                "events_down": attempt.events,
                "first_id": attempt.first_id,
                "last_id": attempt.last_id,
            }
        self.journal.write(
            "closed",
            attempt.conn,
            by=by,
            reason=reason,
            detail=attempt.detail or None,
            seen_as=attempt.label,
            client_port=attempt.local[1] if attempt.local else None,
            duration=round(attempt.duration or 0.0, 6),
            bytes_down=attempt.bytes,
            **gaps,
        )
