"""The report as one self-contained HTML file: tables, and a timeline drawn in the browser.

Nothing is fetched: the CSS and the script are inline, and the timeline's data is a JSON
block in the page that the script turns into SVG (one `rect.bar` per connection), so the
file can be mailed, attached to a ticket or opened offline.
"""

from __future__ import annotations

import dataclasses
import html
import json
from collections.abc import Sequence

from sseproxy.report.model import CHAIN_COLUMNS, Report
from sseproxy.report.page import PAGE, SCRIPT, STYLE
from sseproxy.report.stats import BUCKETS, NUMERIC, Summary, human_duration
from sseproxy.words import plural

__all__ = ["MAX_ROWS", "render_html"]

MAX_ROWS = 1000
"""Rows of the long tables (clients, every reconnect) in the page; --json has them all."""


def _e(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return html.escape(f"{value:g}")
    return html.escape(str(value))


def _pct(share: float) -> str:
    return f"{share * 100:.0f} %" if share >= 0.01 or share == 0 else f"{share * 100:.1f} %"


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], cls: str = "") -> str:
    if not rows:
        return ""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in rows)
    klass = f' class="{cls}"' if cls else ""
    return f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Raw(str):
    """Already HTML: not escaped again."""


def _td(value: object) -> str:
    text = value if isinstance(value, Raw) else _e(value)
    numeric = isinstance(value, int | float) or (
        isinstance(value, str) and not isinstance(value, Raw) and NUMERIC.match(value) is not None
    )
    return f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>"


def _stats(name: str, s: Summary) -> list[object]:
    h = human_duration
    return [name, s.count, h(s.min), h(s.p50), h(s.p90), h(s.p99), h(s.max)]


def _histogram_cell(count: int, most: int) -> Raw:
    width = 0 if not most else round(100 * count / most)
    return Raw(f'<div class="hist"><span style="width:{width}%"></span><b>{count}</b></div>')


def _swatch(colour: str) -> Raw:
    return Raw(f'<i class="sw" style="background:{html.escape(colour)}"></i>')


def render_html(report: Report) -> str:
    t, c, d, r = report.totals, report.closes, report.durations, report.reconnects
    colours = report.timeline.colours
    parts: list[str] = []
    rate = "-" if c.disconnect_rate is None else _pct(c.disconnect_rate)
    cards = [
        ("connections", str(t.connections)),
        ("streams", str(t.streams)),
        ("failed attempts", str(t.failed_attempts)),
        ("still open", str(t.still_open)),
        ("disconnect rate", rate),
        ("reconnects", str(r.reconnects)),
        ("events lost", str(r.resume.lost)),
        ("events replayed", str(r.resume.replayed)),
    ]
    parts.append(
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>' for k, v in cards)
        + "</div>"
    )
    if report.summary:
        parts.append(
            '<ul class="summary">' + "".join(f"<li>{_e(s)}</li>" for s in report.summary) + "</ul>"
        )
    parts.append(
        '<h2>Timeline</h2><p class="hint">One row per client (address and user agent) or '
        "session (with a lane per stream open beside another); one bar per stream or "
        "stream attempt (outlined dark red: it failed), "
        "coloured by why it closed; grey ticks: other requests. &#9660; a fault fired; dashed: "
        "the gap before a reconnect (red: events lost, orange: replayed). Hover for details."
        "</p>"
    )
    if report.timeline.hidden_rows:
        parts.append(
            f'<p class="hint">{report.timeline.hidden_rows} more clients are not drawn.</p>'
        )
    parts.append('<div id="legend"></div><div id="timeline-box"><svg id="timeline"></svg></div>')

    parts.append(f"<h2>Closes ({_e(c.population)})</h2>")
    parts.append(f'<p class="para"><b>Disconnect rate {_e(rate)}.</b> {_e(c.explanation)}</p>')
    parts.append(
        _table(
            ["", "cause (by/reason)", "side", "count", "share", "p50 life", "what it means"],
            [
                [
                    _swatch(colours.get(x.cause, "#fff")),
                    x.cause,
                    x.side,
                    x.count,
                    _pct(x.share),
                    human_duration(x.p50_duration),
                    x.explanation + (f' ("{x.example_detail}")' if x.example_detail else ""),
                ]
                for x in c.rows
            ],
        )
    )
    if c.failed:
        parts.append("<h3>Failed stream attempts (not disconnects)</h3>")
        parts.append(
            _table(["status", "cause", "count"], [[f.status, f.cause, f.count] for f in c.failed])
        )

    parts.append("<h2>Reconnects</h2>")
    parts.append("".join(f'<p class="para">{_e(s)}</p>' for s in r.sentences))
    parts.append(_table(CHAIN_COLUMNS, [x.cells() for x in r.chain_rows if x.reconnects]))
    if r.hops:
        shown = "" if len(r.hops) <= MAX_ROWS else f", the first {MAX_ROWS}; --json has all"
        parts.append(f"<details><summary>Every reconnect ({len(r.hops)}{shown})</summary>")
        parts.append(
            _table(
                [
                    "from",
                    "to",
                    "delay",
                    "status",
                    "last id given",
                    "Last-Event-ID sent",
                    "first id after",
                    "client",
                    "server",
                    "lost",
                    "replayed",
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
                        h.client_check,
                        h.server_check,
                        h.lost,
                        h.replayed,
                    ]
                    for h in r.hops[:MAX_ROWS]
                ],
                cls="small",
            )
        )
        parts.append("</details>")

    parts.append("<h2>Heartbeats</h2>")
    for hb in report.heartbeats:
        parts.append(
            f"<h3>{_e(hb.path)}</h3><p>{plural(hb.streams, 'stream')}; longest gap between bytes "
            f"{_e(human_duration(hb.longest_gap))}, between events "
            f"{_e(human_duration(hb.longest_event_gap))}; longest stream "
            f"{_e(human_duration(hb.longest_stream))}.</p>"
        )
        parts.append(
            "<ul>"
            + "".join(
                f'<li class="{_e(x.verdict)}"><b>{_e(x.verdict)}</b> {_e(x.sentence)}</li>'
                for x in hb.checks
            )
            + "</ul>"
            if hb.checks
            else "<p>No silence timeout applied to these streams.</p>"
        )

    parts.append(f"<h2>Durations ({_e(d.population)}, closed)</h2>")
    parts.append(
        _table(
            ["", "count", "min", "p50", "p90", "p99", "max"],
            [_stats("all", d.overall), *[_stats(p.cause, p.summary) for p in d.per_cause]],
        )
    )
    labels = [label for label, _low, _high in BUCKETS]
    hist_rows = [("all", d.histogram), *[(p.cause, p.histogram) for p in d.per_cause]]
    parts.append(
        _table(
            ["", *labels],
            [
                [name, *(_histogram_cell(n, max(h.values())) for n in h.values())]
                for name, h in hist_rows
            ],
            cls="histogram",
        )
    )
    if d.still_open.count:
        parts.append(
            f'<p class="hint">Still open at the end: {d.still_open.count}, ages '
            f"{_e(human_duration(d.still_open.min))} to {_e(human_duration(d.still_open.max))}."
            "</p>"
        )

    parts.append("<h2>Clients</h2>")
    if len(report.clients) > MAX_ROWS:
        parts.append(
            f'<p class="hint">The {MAX_ROWS} biggest of {len(report.clients)} groups; '
            "--json has all.</p>"
        )
    parts.append(
        _table(
            [
                "address",
                "family",
                "connections",
                "streams",
                "failed",
                "reconnects",
                "mean life",
                "top cause",
                "user agents",
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
                    "; ".join(g.user_agents),
                ]
                for g in report.clients[:MAX_ROWS]
            ],
        )
    )

    parts.append("<h2>Totals</h2>")
    parts.append(
        _table(["path", "requests", "share"], [[p.name, p.count, _pct(p.share)] for p in t.paths])
    )
    parts.append(
        _table(
            ["status", "responses", "share"],
            [[s.name, s.count, _pct(s.share)] for s in t.statuses],
        )
    )
    if report.members:
        parts.append("<h2>Upstream members</h2>")
        parts.append(
            _table(
                ["member", "exchanges", "streams", "refused", "most common end"],
                [[m.member, m.exchanges, m.streams, m.refused, m.top_end] for m in report.members],
            )
        )
    if report.sessions_lost:
        parts.append("<h2>Sessions lost</h2>")
        parts.append(
            _table(
                ["cause", "sessions", "requests", "lived -> unknown"],
                [[x.cause, len(x.sessions), x.requests, x.top_moves] for x in report.sessions_lost],
            )
        )
    if report.notes:
        parts.append(
            "<h2>Notes</h2><ul>" + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ul>"
        )

    data = json.dumps(dataclasses.asdict(report.timeline), separators=(",", ":"))
    data = data.replace("</", "<\\/").replace("<!--", "<\\!--")
    title = f"sseproxy report: {', '.join(t.journals)}"
    subtitle = (
        f"{plural(t.runs, 'run')}, {human_duration(t.span)}; scenario "
        f"{', '.join(t.scenarios) or 'none'}, seed {', '.join(map(str, t.seeds)) or '-'}"
    )
    if t.time_scales:
        subtitle += f"; time scale {', '.join(f'{f:g}' for f in t.time_scales)}"
    return PAGE.format(
        title=_e(title),
        subtitle=_e(subtitle),
        style=STYLE,
        body="\n".join(p for p in parts if p),
        data=data,
        script=SCRIPT,
    )
