"""The report as plain-text tables for a terminal (stdout)."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence

from sseproxy.report.model import CHAIN_COLUMNS, Report
from sseproxy.report.stats import BUCKETS, NUMERIC, Summary, human_duration
from sseproxy.words import plural

__all__ = ["render_text", "table"]

WIDTH = 100
LIMIT = 20
"""Rows shown per long table (clients, chains, reconnects); --json has them all."""


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], indent: int = 2) -> list[str]:
    """Columns padded to fit; numbers (and '-') right-aligned, text left-aligned."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [all(_is_number(row[i]) for row in rows) and bool(rows) for i in range(len(headers))]
    lines = []
    for row in [list(headers), *cells]:
        parts = [
            c.rjust(w) if numeric[i] else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append((" " * indent + "  ".join(parts)).rstrip())
    return lines


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _is_number(value: object) -> bool:
    return (
        value is None
        or isinstance(value, int | float)
        or (isinstance(value, str) and NUMERIC.match(value) is not None)
    )


def _pct(share: float) -> str:
    return f"{share * 100:.0f} %" if share >= 0.01 or share == 0 else f"{share * 100:.1f} %"


_UNIT = re.compile(r"(\d) (ms|s|min|h|%)(?![A-Za-z])")


def _wrap(text: str, indent: int = 2, hang: int = 0) -> list[str]:
    """Wrapped to WIDTH, never between a number and its unit."""
    pad = " " * indent
    glued = _UNIT.sub("\\1\u00a0\\2", text)
    lines = textwrap.wrap(
        glued,
        WIDTH,
        initial_indent=pad,
        subsequent_indent=pad + " " * hang,
        break_on_hyphens=False,
    )
    return [line.replace("\u00a0", " ") for line in lines]


def _stats(name: str, s: Summary) -> list[object]:
    h = human_duration
    return [name, s.count, h(s.min), h(s.p50), h(s.p90), h(s.p99), h(s.max)]


def _more(shown: int, total: int) -> list[str]:
    return [f"  ... and {total - shown} more (see --json or --html)"] if total > shown else []


_BY = ("client", "upstream", "proxy")


def render_text(report: Report) -> str:
    t, c, d, r = report.totals, report.closes, report.durations, report.reconnects
    out: list[str] = []
    scenarios = ", ".join(t.scenarios) or "none"
    seeds = ", ".join(str(s) for s in t.seeds) or "-"
    runs = plural(t.runs, "run")
    out += [
        f"sseproxy report: {', '.join(t.journals)} ({runs}, {human_duration(t.span)}; "
        f"scenario {scenarios}, seed {seeds}{_time_scale(t.time_scales)})",
        "",
        *(
            ["SUMMARY", *[line for s in report.summary for line in _wrap(f"- {s}", hang=2)], ""]
            if report.summary
            else []
        ),
        "TOTALS",
        f"  {plural(t.connections, 'connection')}: {plural(t.streams, 'stream')}, "
        f"{plural(t.failed_attempts, 'failed stream attempt')}, "
        f"{plural(t.other_requests, 'other request')}, {t.no_request} without a request"
        + (f", {t.tcp} TCP" if t.tcp else ""),
        f"  {t.closed} closed, {t.still_open} still open at the end; "
        f"{plural(t.requests, 'request')}",
    ]
    if t.upstream_connect is not None:
        u = t.upstream_connect
        out.append(
            f"  upstream connect time p50 {human_duration(u.p50)}, max {human_duration(u.max)}"
        )
    if t.paths:
        out += [
            "",
            *table(
                ["path", "requests", "share"], [[p.name, p.count, _pct(p.share)] for p in t.paths]
            ),
        ]
    if t.statuses:
        out += [
            "",
            *table(
                ["status", "responses", "share"],
                [[s.name, s.count, _pct(s.share)] for s in t.statuses],
            ),
        ]
    if t.listeners:
        out += ["", *table(["listener", "connections"], [[x.name, x.count] for x in t.listeners])]
    if report.members:
        out += [
            "",
            "UPSTREAM MEMBERS",
            *table(
                ["member", "exchanges", "streams", "refused", "most common end"],
                [[m.member, m.exchanges, m.streams, m.refused, m.top_end] for m in report.members],
            ),
        ]
    if report.sessions_lost:
        out += [
            "",
            "SESSIONS LOST (a member answered 404 for a session it did not know)",
            *table(
                ["cause", "sessions", "requests", "lived -> unknown"],
                [[x.cause, len(x.sessions), x.requests, x.top_moves] for x in report.sessions_lost],
            ),
        ]
    if t.proxies:
        rows = [
            [p.name, p.connections, *(p.closed_by.get(by, 0) for by in _BY), p.top_reason]
            for p in t.proxies
        ]
        headers = ["proxy", "connections", *(f"closed by {by}" for by in _BY), "top cause"]
        out += ["", *table(headers, rows)]

    out += ["", f"CLOSES ({c.population})"]
    if c.rows:
        out += table(
            ["cause (by/reason)", "side", "count", "share", "p50 life", "detail (example)"],
            [
                [
                    x.cause,
                    x.side,
                    x.count,
                    _pct(x.share),
                    human_duration(x.p50_duration),
                    x.example_detail,
                ]
                for x in c.rows
            ],
        )
        out.append("")
        for x in c.rows:
            out += _wrap(f"{x.cause}: {x.explanation}", 4)
        out += [
            "",
            *table(
                ["side", "count", "share"], [[s.name, s.count, _pct(s.share)] for s in c.by_side]
            ),
        ]
    if c.failed:
        out += ["", "  failed stream attempts (not disconnects):"]
        out += table(["status", "cause", "count"], [[f.status, f.cause, f.count] for f in c.failed])
    rate = "-" if c.disconnect_rate is None else _pct(c.disconnect_rate)
    out += ["", f"  Disconnect rate {rate}:", *_wrap(c.explanation, 4)]

    out += ["", f"DURATIONS ({d.population}, closed)"]
    heads = ["", "count", "min", "p50", "p90", "p99", "max"]
    rows = [_stats("all", d.overall), *[_stats(p.cause, p.summary) for p in d.per_cause]]
    out += table(heads, rows)
    labels = [label for label, _low, _high in BUCKETS]
    hist = [
        ["all", *d.histogram.values()],
        *[[p.cause, *p.histogram.values()] for p in d.per_cause],
    ]
    out += ["", *table(["", *labels], hist)]
    if d.still_open.count:
        out.append(
            f"  still open: {d.still_open.count}, ages {human_duration(d.still_open.min)} to "
            f"{human_duration(d.still_open.max)}"
        )

    out += ["", "CLIENTS (by address and user agent family)"]
    shown = report.clients[:LIMIT]
    out += table(
        [
            "address",
            "family",
            "conns",
            "streams",
            "failed",
            "reconnects",
            "mean life",
            "top cause",
            "user agent",
        ],
        [
            [
                g.host,
                g.family,
                g.connections,
                g.streams,
                g.failed,
                g.reconnects,
                human_duration(g.mean_lifetime),
                g.top_cause,
                g.user_agents[0][:40]
                + (f" (+{len(g.user_agents) - 1})" if len(g.user_agents) > 1 else ""),
            ]
            for g in shown
        ],
    )
    out += _more(len(shown), len(report.clients))

    out += ["", "RECONNECTS"]
    for sentence in r.sentences:
        out += _wrap(sentence)
    out += _wrap(
        f"(A reconnect is the same client, or session, connecting again within "
        f"{human_duration(r.window)} after its previous connection closed.)"
    )
    chains = [x for x in r.chain_rows if x.reconnects][:LIMIT]
    if chains:
        out.append("")
        out += table(CHAIN_COLUMNS, [x.cells() for x in chains])
        out += _more(len(chains), r.chains_with_reconnects)
    odd = [h for h in r.hops if h.lost or h.replayed or h.client_check in ("missing", "mismatch")]
    odd.sort(key=lambda h: -(h.lost + h.replayed))
    if odd:
        out += ["", "  reconnects that did not resume exactly:"]
        out += table(
            [
                "from",
                "to",
                "delay",
                "status",
                "last id given",
                "Last-Event-ID",
                "first id",
                "result",
            ],
            [
                [
                    h.previous,
                    h.next,
                    human_duration(h.delay),
                    h.status,
                    h.expected_id,
                    h.sent_id,
                    h.first_id,
                    _result(h.server_check, h.lost, h.replayed, h.client_check),
                ]
                for h in odd[:LIMIT]
            ],
        )
        out += _more(min(len(odd), LIMIT), len(odd))

    out += ["", "HEARTBEATS (longest silence per path vs. the scenario's timeouts)"]
    if not report.heartbeats:
        out.append("  no streams")
    for hb in report.heartbeats:
        out.append(
            f"  {hb.path}: {plural(hb.streams, 'stream')}; longest gap between bytes "
            f"{human_duration(hb.longest_gap)}, between events "
            f"{human_duration(hb.longest_event_gap)}; longest stream "
            f"{human_duration(hb.longest_stream)}"
        )
        for check in hb.checks:
            out += _wrap(f"[{check.verdict}] {check.sentence}", 4)
        if not hb.checks:
            out.append("    no silence timeout applied to these streams")
    if report.notes:
        out += ["", "NOTES"]
        for note in report.notes:
            out += _wrap(f"- {note}", hang=2)
    return "\n".join(out) + "\n"


def _time_scale(factors: list[float]) -> str:
    return f", time scale {', '.join(f'{f:g}' for f in factors)}" if factors else ""


def _result(server: str, lost: int, replayed: int, client: str) -> str:
    parts = []
    if client == "missing":
        parts.append("no Last-Event-ID sent")
    elif client == "mismatch":
        parts.append("wrong Last-Event-ID")
    if lost:
        parts.append(f"{lost} lost")
    if replayed:
        parts.append(f"{replayed} replayed")
    if not lost and not replayed and server not in ("ok", "failed"):
        parts.append(server)
    return ", ".join(parts)
