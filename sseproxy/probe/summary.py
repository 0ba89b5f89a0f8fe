"""A probe's records as one JSON-ready result: totals, drops by how they were seen,
per client, per connection. The text output and the verdicts read only this.

Durations are those of streams (200 event-stream responses) that ended before the probe
stopped; streams still open at its end are counted apart (`open_at_end`), as `report`
does. Statistics are p50/p90/max, percentiles interpolated as in `report`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any, Final

from sseproxy.probe.record import DROP_KINDS, Attempt, ClientRecord
from sseproxy.probe.runner import Probe
from sseproxy.report.stats import percentile

__all__ = ["MEANINGS", "VERSION", "summarize"]

VERSION: Final = 1

MEANINGS: Final[dict[str, str]] = {
    "clean end": "the response ended properly (terminating chunk or full length): "
    "the server, or a proxy ending it cleanly",
    "incomplete chunked body": "the connection closed mid-body without the terminating "
    "chunk: a proxy's timeout (nginx proxy_read_timeout, a load balancer's idle timeout) "
    "or a server that died",
    "incomplete body": "the connection closed before the body's Content-Length was read",
    "closed before the response head": "closed before any response: a proxy that gave up "
    "on its upstream, or a server that crashed",
    "RST (connection reset)": "the connection was reset: a load balancer or firewall "
    "forgetting the flow, a killed server",
    "watchdog (no event in time)": "the client's own --watchdog: no event that long "
    "(comments do not reset it)",
    "status (not a 200 event stream)": "not a 200 text/event-stream: EventSource gives up for good",
    "refused (no connection)": "nothing accepted the connection (refused, unreachable or "
    "timed out): the client retries",
    "TLS handshake failed": "connected, but TLS failed: a certificate the client does not "
    "trust (--ca, --insecure) or for another name, or a server that does not speak TLS",
    "bad HTTP response": "the response was not valid HTTP",
}


def stats(values: Sequence[float]) -> dict[str, Any] | None:
    """count, p50, p90, max (seconds, rounded to ms); None for no values."""
    if not values:
        return None
    return {
        "count": len(values),
        "p50": round(percentile(values, 50), 3),
        "p90": round(percentile(values, 90), 3),
        "max": round(max(values), 3),
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _attempt(a: Attempt) -> dict[str, Any]:
    return {
        "client": a.client,
        "attempt": a.number,
        "conn": a.conn,
        "local": f"{a.local[0]}:{a.local[1]}" if a.local else None,
        "started": _r(a.started),
        "delay_before": _r(a.delay_before),
        "last_event_id": a.last_event_id,
        "status": a.status,
        "content_type": a.content_type,
        "established": a.established,
        "ttfb": _r(a.head_at - a.started) if a.head_at is not None else None,
        "time_to_first_event": _r(a.first_event_at - a.started)
        if a.first_event_at is not None
        else None,
        "bytes": a.bytes,
        "events": a.events,
        "first_id": a.first_id,
        "last_id": a.last_id,
        "longest_byte_gap": _r(a.longest_byte_gap) if a.head_at is not None else None,
        "longest_event_gap": _r(a.longest_event_gap) if a.head_at is not None else None,
        "duration": _r(a.duration),
        "silence_before_end": _r(a.silence),
        "ended": a.kind,
        "seen_as": a.label,
        "detail": a.detail,
    }


def _drop_groups(drops: list[Attempt]) -> list[dict[str, Any]]:
    """Drops by how the client saw them, most frequent first, with their silences."""
    groups: dict[str, list[Attempt]] = {}
    for a in drops:
        groups.setdefault(a.label, []).append(a)
    result = []
    for label, members in sorted(groups.items(), key=lambda item: -len(item[1])):
        silences = [a.silence for a in members if a.silence is not None]
        durations = [a.duration for a in members if a.duration is not None and a.established]
        result.append(
            {
                "seen_as": label,
                "pattern": _pattern(silences),
                "kind": members[0].kind,
                "count": len(members),
                "silence_before": stats(silences),
                "durations": stats(durations),
                "example": members[0].detail,
                "meaning": MEANINGS.get(label, ""),
            }
        )
    return result


def _pattern(silences: list[float]) -> str | None:
    """'every one after ~2.0 s without a byte' when the silences agree: an idle timeout."""
    if len(silences) < 2 or min(silences) < 0.5:
        return None
    low, high = min(silences), max(silences)
    if high - low > max(0.1 * low, 0.25):
        return None
    middle = percentile(silences, 50)
    return (
        f"every one after ~{middle:.1f} s without a byte: the mark of an idle timeout of "
        f"about {middle:.0f} s (nginx proxy_read_timeout, a load balancer's idle timeout)"
    )


def _client(record: ClientRecord) -> dict[str, Any]:
    attempts = record.attempts
    drops = [a for a in attempts if a.kind in DROP_KINDS]
    final = next((a for a in attempts if a.final), None)
    ids = record.ids
    return {
        "client": record.number,
        "attempts": len(attempts),
        "connects": sum(a.established for a in attempts),
        "drops": len(drops),
        "drops_by": dict(Counter(a.label for a in drops)),
        "events": sum(a.events for a in attempts),
        "bytes": sum(a.bytes for a in attempts),
        "lost": ids.lost + ids.lost_in_stream,
        "duplicated": ids.duplicated + ids.duplicated_in_stream,
        "time_to_first_event": _r(record.time_to_first_event),
        "longest_byte_gap": _r(max((a.longest_byte_gap for a in attempts), default=0.0)),
        "longest_event_gap": _r(record.longest_event_gap),
        "reconnect_delays": stats([a.delay_before for a in attempts if a.delay_before is not None]),
        "durations": stats(_stream_durations(attempts)),
        "stopped_for_good": final.label if final is not None else None,
        "stopped_detail": final.detail if final is not None else None,
    }


def _stream_durations(attempts: Sequence[Attempt]) -> list[float]:
    return [
        a.duration
        for a in attempts
        if a.established and a.kind != "run-end" and a.duration is not None
    ]


def summarize(probe: Probe) -> dict[str, Any]:
    """The whole result (what `--json` prints; `version` changes if fields change meaning)."""
    records = probe.records
    attempts = [a for record in records for a in record.attempts]
    drops = [a for a in attempts if a.kind in DROP_KINDS]
    ids = [record.ids for record in records]
    numeric = all(check.numeric for check in ids)
    settings = probe.settings
    ttfe = [r.time_to_first_event for r in records if r.time_to_first_event is not None]
    return {
        "version": VERSION,
        "url": str(settings.target),
        "clients": settings.clients,
        "duration": settings.duration,
        "ramp": settings.ramp,
        "watchdog": settings.watchdog,
        "elapsed": _r(probe.elapsed),
        "stopped_early": probe.stopped_early,
        "totals": {
            "attempts": len(attempts),
            "connects": sum(a.established for a in attempts),
            "drops": len(drops),
            "drops_by": dict(Counter(a.label for a in drops)),
            "open_at_end": sum(a.established and a.kind == "run-end" for a in attempts),
            "stopped_for_good": sum(any(a.final for a in r.attempts) for r in records),
            "events": sum(a.events for a in attempts),
            "bytes": sum(a.bytes for a in attempts),
            "ids": {
                "numeric": numeric,
                "lost": sum(c.lost for c in ids) if numeric else None,
                "duplicated": sum(c.duplicated for c in ids),
                "lost_in_stream": sum(c.lost_in_stream for c in ids) if numeric else None,
                "duplicated_in_stream": sum(c.duplicated_in_stream for c in ids),
            },
            "time_to_first_event": stats(ttfe),
            "reconnect_delays": stats(
                [a.delay_before for a in attempts if a.delay_before is not None]
            ),
            "durations": stats(_stream_durations(attempts)),
            "longest_byte_gap": _r(max((a.longest_byte_gap for a in attempts), default=0.0)),
            "longest_event_gap": _r(max((r.longest_event_gap for r in records), default=0.0)),
        },
        "drops": _drop_groups(drops),
        "per_client": [_client(record) for record in records],
        "connections": [_attempt(a) for a in attempts],
    }
