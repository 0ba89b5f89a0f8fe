"""One stream per exchange: a keep-alive connection that carried several streams.

An HTTP/1.1 client may send its next `GET /events` on the connection whose stream just
ended (the server ended the response cleanly, or a fault did with `end`). Counted per
connection, those streams would be one stream and at most one disconnect, which hides
every end but the last from the closes, the durations, the reconnects and the disconnect
rate. `streams_of` splits such a connection into one `Connection` per stream exchange,
from the request's own records: its `ended` record (who ended it, why, when), and the
`event` and `fault` records that fall within it. What the journal only counts per
connection is known for a part when it is exact: the first id for the first stream, the
last id and the close for the last one; byte counts and gaps stay unknown (None).

A request the proxy answered itself with an error (its 502, 503 or 504, after which the
connection stays for the next request, as behind nginx) is an attempt of its own too, so
a client that tries again on the same connection shows one failed attempt per answer.
"""

from __future__ import annotations

from dataclasses import replace

from sseproxy.report.records import Connection, Request

__all__ = ["streams_of"]


def _attempt(request: Request) -> bool:
    """An exchange counted on its own: an event stream, or the proxy's own error answer."""
    answered = request.status_by_proxy and (request.status or 0) >= 400
    return request.is_event_stream or answered


def _segments(requests: list[Request]) -> list[list[Request]]:
    """Requests grouped so that each group holds one attempt (requests before the first
    attempt join the first group; the others join the attempt before them)."""
    groups: list[list[Request]] = []
    for request in requests:
        if _attempt(request) or not groups:
            if groups and not any(_attempt(r) for r in groups[-1]):
                groups[-1].append(request)  # the leading non-stream requests
            else:
                groups.append([request])
        else:
            groups[-1].append(request)
    return groups


def _server_ended(stream: Request, conn: Connection) -> bool:
    """The last stream was ended by the server (or answered by the proxy) before the
    connection closed: whoever closed the idle connection afterwards did not end it."""
    return (
        (stream.ended_by == "upstream" or stream.status_by_proxy)
        and stream.ended_at is not None
        and conn.closed_at is not None
        and stream.ended_at < conn.closed_at
        and conn.journaled_cause is None
    )


def streams_of(conn: Connection) -> list[Connection]:
    """`conn` itself, or one `Connection` per attempt when it carried several."""
    if sum(1 for r in conn.requests if _attempt(r)) < 2:
        return [conn]
    groups = _segments(conn.requests)
    with_events = bool(conn.events) or conn.events_down == 0
    parts: list[Connection] = []
    first = 1  # the exchange number (from 1) of the group's first request
    for number, group in enumerate(groups, start=1):
        mine = range(0 if number == 1 else first, first + len(group))  # 0: before any request
        first += len(group)
        last = number == len(groups)
        stream = next(r for r in group if _attempt(r))
        opened = conn.opened if number == 1 else group[0].t
        if last and not _server_ended(stream, conn):
            closed_at, by, reason, detail = conn.closed_at, conn.by, conn.reason, conn.detail
            duration = None if conn.duration is None else conn.duration - (opened - conn.opened)
        else:
            closed_at = stream.ended_at if stream.ended_at is not None else groups[number][0].t
            by, reason, detail = stream.ended_by, stream.ended_reason, stream.ended_detail
            duration = closed_at - opened
        events = [e for e in conn.events if e.exchange in mine]
        ids = [e.id for e in events if e.id]
        first_id = ids[0] if ids else None
        last_id = ids[-1] if ids else None
        if not with_events:
            first_id = conn.first_id if number == 1 else None
            last_id = conn.last_id if last else None
        parts.append(
            replace(
                conn,
                key=f"{conn.key}#{number}",
                opened=opened,
                requests=group,
                faults=[
                    f for f in conn.faults if f.exchange in mine or (number == 1 and not f.exchange)
                ],
                events=events,
                closed_at=closed_at,
                by=by,
                reason=reason,
                detail=detail,
                duration=duration,
                bytes_down=None,
                bytes_up=None,
                events_down=len(events) if with_events else None,
                first_id=first_id,
                last_id=last_id,
                longest_gap=None,
                longest_event_gap=None,
                journaled_cause=conn.journaled_cause if last else None,
                carrier=conn.key,
            )
        )
    return parts
