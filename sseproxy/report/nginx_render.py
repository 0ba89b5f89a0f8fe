"""An `NginxReport` as text tables, JSON, or the self-contained HTML page.

The page is the journal report's page (`page.py`: same frame, style and timeline
script), with one row per client and one bar per request, coloured by why it ended.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from sseproxy.report.html import MAX_ROWS, Raw, _e, _pct, _table
from sseproxy.report.nginx_model import NginxReport
from sseproxy.report.page import PAGE, SCRIPT, STYLE
from sseproxy.report.stats import BUCKETS, human_duration
from sseproxy.report.text import LIMIT, _wrap, table
from sseproxy.words import plural

__all__ = ["JSON_VERSION", "render_nginx_html", "render_nginx_json", "render_nginx_text"]

JSON_VERSION = 1


def render_nginx_json(report: NginxReport) -> str:
    data: dict[str, Any] = {"version": JSON_VERSION, "kind": "nginx", **dataclasses.asdict(report)}
    return json.dumps(data, indent=2, allow_nan=False) + "\n"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def _range(low: float, high: float) -> str:
    shown = (human_duration(low), human_duration(high))
    return shown[0] if shown[0] == shown[1] else f"{shown[0]}-{shown[1]}"


def _cluster_rows(report: NginxReport) -> list[list[object]]:
    return [
        [
            human_duration(c.centre),
            c.count,
            _pct(c.share),
            _range(c.low, c.high),
            ", ".join(f"{k} {v}" for k, v in c.statuses.items()),
            ", ".join(f"{k} {v}" for k, v in c.causes.items()),
            c.known_as or "no known limit",
        ]
        for c in report.clusters
    ]


_CLUSTER_HEADS = ["about", "requests", "share", "range", "statuses", "causes", "known as"]
_CAUSE_HEADS = ["cause", "side", "from", "count", "share", "p50 time"]
_UPSTREAM_HEADS = [
    "upstream",
    "requests",
    "share",
    "streams",
    "502",
    "504",
    "failed tries",
    "clients",
    "/24 nets",
    "p50 time",
    "top cause",
]


def _upstream_cells(report: NginxReport) -> list[list[object]]:
    return [
        [
            u.upstream,
            u.requests,
            _pct(u.share),
            u.streams,
            u.status_502,
            u.status_504,
            u.failed_tries,
            u.clients,
            u.networks,
            human_duration(u.p50_duration),
            u.top_cause,
        ]
        for u in report.upstreams
    ]


def _client_cells(report: NginxReport, limit: int) -> list[list[object]]:
    return [
        [
            c.family,
            c.requests,
            c.streams,
            c.clients,
            human_duration(c.p50_duration),
            c.top_cause,
            c.user_agents[0][:50] if c.user_agents else "",
        ]
        for c in report.clients[:limit]
    ]


_CLIENT_HEADS = ["family", "requests", "streams", "addresses", "p50 time", "top cause", "e.g."]


def _subtitle(report: NginxReport) -> str:
    t = report.totals
    logs = t.access_log + (f" + {t.error_log}" if t.error_log else "")
    span = f"{t.first} to {t.last}" if t.first else "no request"
    return f"{logs} ({span})"


def render_nginx_text(report: NginxReport) -> str:
    t, d = report.totals, report.durations
    out = [f"sseproxy report --nginx-log: {_subtitle(report)}", "", "SUMMARY"]
    out += [line for s in report.summary for line in _wrap(f"- {s}", hang=2)]
    out += ["", f"WHY THEY ENDED ({plural(t.selected, 'request')}; causes {t.causes_from})"]
    out += table(
        _CAUSE_HEADS,
        [
            [c.cause, c.side, c.source, c.count, _pct(c.share), human_duration(c.p50_duration)]
            for c in report.causes
        ],
    )
    out.append("")
    for c in report.causes:
        example = f' ("{c.example}")' if c.example else ""
        out += _wrap(f"{c.cause}: {c.meaning}{example}", 4, 2)
    out += ["", "STATUSES"]
    out += table(
        ["status", "requests", "share", "meaning"],
        [[s.status, s.count, _pct(s.share), s.meaning] for s in report.statuses],
    )
    out += ["", "DURATIONS"]
    h = human_duration
    out += table(
        ["", "count", "min", "p50", "p90", "p99", "max"],
        [["all", d.count, h(d.min), h(d.p50), h(d.p90), h(d.p99), h(d.max)]],
    )
    out += ["", *table([label for label, _l, _h in BUCKETS], [list(report.histogram.values())])]
    out += ["", "PILES OF DURATIONS (next to known limits)"]
    if report.clusters:
        out += table(_CLUSTER_HEADS[:-1], [row[:-1] for row in _cluster_rows(report)])
        out.append("")
        for pile in report.clusters:
            text = f"{human_duration(pile.centre)}: {pile.known_as or 'no known limit'}"
            if pile.reproduce:
                text += f"; reproduce: {pile.reproduce}"
            out += _wrap(text, 4, 2)
    else:
        out.append("  none: the durations do not pile up anywhere")
    out += ["", "CLIENTS (by user agent family)"]
    out += table(_CLIENT_HEADS, _client_cells(report, LIMIT))
    out += ["", "UPSTREAMS ($upstream_addr)"]
    out += table(_UPSTREAM_HEADS, _upstream_cells(report))
    r = report.reconnects
    out += [
        "",
        "RECONNECTS",
        f"  {plural(r.reconnects, 'request')} from {plural(r.clients, 'client')} came within "
        f"{human_duration(r.window)} of the same client's previous one; delay p50 "
        f"{human_duration(r.delay.p50)}, max {human_duration(r.delay.max)}",
    ]
    if report.notes:
        out += ["", "NOTES"]
        for note in report.notes:
            out += _wrap(f"- {note}", hang=2)
    return "\n".join(out) + "\n"


def render_nginx_html(report: NginxReport) -> str:
    t = report.totals
    r = report.reconnects
    cards = [
        ("requests (SSE)", t.selected),
        ("streams", t.streams),
        ("failed", t.failed),
        ("reconnects", r.reconnects),
        ("upstreams", len(report.upstreams)),
    ]
    parts = [
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards)
        + "</div>",
        '<ul class="summary">' + "".join(f"<li>{_e(s)}</li>" for s in report.summary) + "</ul>",
        '<h2>Timeline</h2><p class="hint">One row per client (address and user agent; more '
        "while its requests overlap); one bar per request (outlined dark red: no stream "
        "started), coloured by why it ended; dashed: the gap before the same client came "
        "back. Hover for details.</p>",
    ]
    if report.timeline.hidden_rows:
        parts.append(f'<p class="hint">{report.timeline.hidden_rows} more clients not drawn.</p>')
    parts.append('<div id="legend"></div><div id="timeline-box"><svg id="timeline"></svg></div>')
    parts.append(f'<h2>Why they ended</h2><p class="para">Causes {_e(t.causes_from)}.</p>')
    parts.append(
        _table(
            [*_CAUSE_HEADS, "what it means"],
            [
                [
                    c.cause,
                    c.side,
                    c.source,
                    c.count,
                    _pct(c.share),
                    human_duration(c.p50_duration),
                    c.meaning + (f' ("{c.example}")' if c.example else ""),
                ]
                for c in report.causes
            ],
        )
    )
    parts.append("<h2>Statuses</h2>")
    parts.append(
        _table(
            ["status", "requests", "share", "meaning"],
            [[s.status, s.count, _pct(s.share), s.meaning] for s in report.statuses],
        )
    )
    d = report.durations
    h = human_duration
    parts.append("<h2>Durations</h2>")
    parts.append(
        _table(
            ["count", "min", "p50", "p90", "p99", "max"],
            [[d.count, h(d.min), h(d.p50), h(d.p90), h(d.p99), h(d.max)]],
        )
    )
    parts.append(_table([label for label, _l, _h in BUCKETS], [list(report.histogram.values())]))
    parts.append("<h3>Piles of durations, next to known limits</h3>")
    parts.append(
        _table(
            [*_CLUSTER_HEADS, "reproduce"],
            [
                [*row, Raw(f"<code>{_e(c.reproduce)}</code>") if c.reproduce else ""]
                for row, c in zip(_cluster_rows(report), report.clusters, strict=True)
            ],
        )
        or "<p>None: the durations do not pile up anywhere.</p>"
    )
    parts.append("<h2>Clients</h2>")
    parts.append(_table(_CLIENT_HEADS, _client_cells(report, 1000)))
    parts.append("<h2>Upstreams</h2>")
    parts.append(_table(_UPSTREAM_HEADS, _upstream_cells(report)))
    if report.requests:
        shown = report.requests[:MAX_ROWS]
        more = f", the first {MAX_ROWS}; --json has all" if len(report.requests) > MAX_ROWS else ""
        parts.append(f"<details><summary>Every request ({len(report.requests)}{more})</summary>")
        parts.append(
            _table(
                ["line", "ended", "time", "client", "request", "status", "upstream", "cause"],
                [
                    [
                        r.line,
                        _iso(r.end),
                        human_duration(r.duration),
                        f"{r.client} {r.family}",
                        f"{r.method} {r.target}",
                        r.status,
                        r.upstream,
                        r.cause + (f' ("{r.detail}")' if r.detail else ""),
                    ]
                    for r in shown
                ],
                cls="small",
            )
        )
        parts.append("</details>")
    if report.notes:
        parts.append(
            "<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>"
        )
    data = json.dumps(dataclasses.asdict(report.timeline), separators=(",", ":"))
    data = data.replace("</", "<\\/").replace("<!--", "<\\!--")
    return PAGE.format(
        title=_e("sseproxy report: nginx logs"),
        subtitle=_e(_subtitle(report)),
        style=STYLE,
        body="\n".join(p for p in parts if p),
        data=data,
        script=SCRIPT,
    )
