"""Prometheus metrics for the control API's `GET /metrics`, counted from the journal.

`Metrics` is a journal subscriber: it counts what the journal records (connections
opened and closed, by whom and why, requests, responses, faults that fired), so the
numbers agree with `sseproxy report` on the same run. Bytes and events of connections
still open are added at scrape time from `Proxy.live` (a connection's tallies move from
"live" to "closed" in one step, so the counters never go down); the open-connections
gauge is `len(Proxy.live)`.

The output is the Prometheus text exposition format, version 0.0.4.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

from sseproxy.journal import JournalReader

if TYPE_CHECKING:
    from sseproxy.connection import Connection

__all__ = ["CONTENT_TYPE", "DURATION_BUCKETS", "Metrics"]

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
DURATION_BUCKETS: Final = (1.0, 10.0, 60.0, 300.0, 600.0, math.inf)
"""Connection lifetimes in the report's human buckets: <1 s, 1-10 s, 10-60 s, 1-5 min,
5-10 min, >10 min."""

Record = dict[str, Any]
Labels = tuple[tuple[str, str], ...]


class Metrics(JournalReader):
    """Counters fed by journal records; `render` writes them in the text format."""

    def __init__(self) -> None:
        self.opened = 0
        self.closed: Counter[Labels] = Counter()
        self.requests: Counter[Labels] = Counter()
        self.responses: Counter[Labels] = Counter()
        self.faults: Counter[Labels] = Counter()
        self.bytes = {"down": 0, "up": 0}
        self.events = {"down": 0, "up": 0}
        self.durations = [0] * len(DURATION_BUCKETS)
        self.duration_sum = 0.0
        self.records = 0

    def observe(self, record: Record) -> None:
        """The journal subscriber: count one record (never raises on odd values)."""
        self.records += 1
        kind = record.get("kind")
        if kind == "opened":
            self.opened += 1
        elif kind == "closed":
            self.closed[_labels(by=record.get("by"), reason=record.get("reason"))] += 1
            for direction in ("down", "up"):
                self.bytes[direction] += _count(record.get(f"bytes_{direction}"))
                self.events[direction] += _count(record.get(f"events_{direction}"))
            duration = record.get("duration")
            if isinstance(duration, int | float) and math.isfinite(duration) and duration >= 0:
                self.duration_sum += duration
                for i, bound in enumerate(DURATION_BUCKETS):
                    if duration <= bound:
                        self.durations[i] += 1
        elif kind == "request":
            self.requests[_labels(method=record.get("method"))] += 1
        elif kind == "response":
            self.responses[_labels(status=record.get("status"))] += 1
        elif kind == "fault":
            self.faults[_labels(fault=record.get("fault"), action=record.get("action"))] += 1

    def render(
        self,
        live: Iterable[Connection] = (),
        *,
        scenario: str = "",
        seed: int | None = None,
    ) -> str:
        """The metrics page; `live`: the open connections (gauge, bytes and events so far)."""
        open_now = list(live)
        in_flight_bytes = {
            "down": sum(c.down.octets for c in open_now),
            "up": sum(c.up.octets for c in open_now),
        }
        in_flight_events = {
            "down": sum(c.down.events for c in open_now),
            "up": sum(c.up.events for c in open_now),
        }
        out: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: Iterable[str]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)

        family(
            "sseproxy_connections_open",
            "gauge",
            "Client connections open now.",
            [_sample("sseproxy_connections_open", (), len(open_now))],
        )
        family(
            "sseproxy_connections_total",
            "counter",
            "Client connections accepted.",
            [_sample("sseproxy_connections_total", (), self.opened)],
        )
        family(
            "sseproxy_connections_closed_total",
            "counter",
            "Client connections closed, by who closed them (client, upstream, proxy) "
            "and the journal's reason.",
            _samples("sseproxy_connections_closed_total", self.closed),
        )
        family(
            "sseproxy_connection_duration_seconds",
            "histogram",
            "Lifetime of closed client connections.",
            self._histogram("sseproxy_connection_duration_seconds"),
        )
        family(
            "sseproxy_requests_total",
            "counter",
            "HTTP requests received from clients, by method.",
            _samples("sseproxy_requests_total", self.requests),
        )
        family(
            "sseproxy_responses_total",
            "counter",
            "HTTP responses sent to clients (from the upstream or the proxy), by status.",
            _samples("sseproxy_responses_total", self.responses),
        )
        family(
            "sseproxy_bytes_total",
            "counter",
            "Bytes relayed; direction down = server to client, up = client to server.",
            [
                _sample(
                    "sseproxy_bytes_total",
                    (("direction", d),),
                    self.bytes[d] + in_flight_bytes[d],
                )
                for d in ("down", "up")
            ],
        )
        family(
            "sseproxy_events_total",
            "counter",
            "SSE events relayed (counted on text/event-stream responses), by direction.",
            [
                _sample(
                    "sseproxy_events_total",
                    (("direction", d),),
                    self.events[d] + in_flight_events[d],
                )
                for d in ("down", "up")
            ],
        )
        family(
            "sseproxy_faults_fired_total",
            "counter",
            "Fault decisions that changed a stream (journal 'fault' records), by fault name "
            "and action.",
            _samples("sseproxy_faults_fired_total", self.faults),
        )
        family(
            "sseproxy_journal_records_total",
            "counter",
            "Journal records written since the metrics started counting.",
            [_sample("sseproxy_journal_records_total", (), self.records)],
        )
        info: Labels = (("scenario", scenario), ("seed", "" if seed is None else str(seed)))
        family(
            "sseproxy_scenario_info",
            "gauge",
            "The scenario in force (always 1; the labels carry the information).",
            [_sample("sseproxy_scenario_info", info, 1)],
        )
        return "\n".join(out) + "\n"

    def _histogram(self, name: str) -> list[str]:
        lines = [
            _sample(f"{name}_bucket", (("le", _number(bound)),), count)
            for bound, count in zip(DURATION_BUCKETS, self.durations, strict=True)
        ]
        lines.append(_sample(f"{name}_sum", (), self.duration_sum))
        lines.append(_sample(f"{name}_count", (), self.durations[-1]))
        return lines


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _labels(**values: Any) -> Labels:
    return tuple((key, "" if value is None else str(value)) for key, value in values.items())


def _samples(name: str, counter: Counter[Labels]) -> list[str]:
    return [_sample(name, labels, value) for labels, value in sorted(counter.items())]


def _sample(name: str, labels: Labels, value: float) -> str:
    if not labels:
        return f"{name} {_number(value)}"
    text = ",".join(f'{key}="{_escape(val)}"' for key, val in labels)
    return f"{name}{{{text}}} {_number(value)}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))
