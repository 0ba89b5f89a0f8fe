"""Hand-written journal records, for the cases a scripted run cannot produce on purpose."""

from __future__ import annotations

from typing import Any

Record = dict[str, Any]


def rec(kind: str, conn: str, t: float, **fields: Any) -> Record:
    return {
        "t": t,
        "ts": "2026-01-01T00:00:00.000+00:00",
        "kind": kind,
        "conn": conn,
        **fields,
        "scenario": fields.pop("scenario", "none"),
        "seed": 1,
    }


def stream(
    conn: str,
    start: float,
    end: float | None,
    *,
    client: str = "10.0.0.1:5000",
    ua: str = "curl/8.4.0",
    path: str = "/events",
    last_event_id: str | None = None,
    status: int = 200,
    content_type: str = "text/event-stream",
    first_id: str | None = None,
    last_id: str | None = None,
    events: int | None = None,
    by: str = "client",
    reason: str = "client-closed",
    detail: str | None = None,
    faults: list[str] | None = None,
    **closed: Any,
) -> list[Record]:
    """The records of one connection with one request (still open when `end` is None)."""
    request: Record = {"req": 1, "method": "GET", "path": path, "user_agent": ua}
    if last_event_id is not None:
        request["last_event_id"] = last_event_id
    if faults:
        request["faults"] = faults
    records = [
        rec("opened", conn, start, client=client, mode="http"),
        rec("request", conn, start, **request),
        rec("response", conn, start, status=status, content_type=content_type, ttfb=0.0),
    ]
    if end is not None:
        fields: Record = {
            "by": by,
            "reason": reason,
            "duration": end - start,
            "requests": 1,
            "bytes_down": 100,
            **closed,
        }
        if detail is not None:
            fields["detail"] = detail
        if events is not None:
            fields.update(events_down=events, first_id=first_id, last_id=last_id)
        records.append(rec("closed", conn, end, **fields))
    return records
