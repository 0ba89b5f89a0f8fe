"""The HTML page's timeline for nginx's requests: one row per client (and another beside
it while one of its requests overlaps the previous), one bar per request, coloured by
why it ended; the journal report's page draws it (`page.py`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sseproxy.report.model import Bar, Gap, Row, Timeline
from sseproxy.report.nginx_causes import Why
from sseproxy.report.nginx_groups import ua_family
from sseproxy.report.nginx_log import Request

__all__ = ["MAX_ROWS", "timeline"]

MAX_ROWS = 250
"""Timeline rows drawn at most."""

PALETTES = {
    "client": ("#4e79a7", "#7aa6d6", "#2b4f75"),
    "server": ("#59a14f", "#8cd17d", "#3b7a33"),
    "nginx": ("#e15759", "#f28e2b", "#b6392d"),
    "limit": ("#edc948", "#b07aa1"),
    "not nginx": ("#b07aa1", "#d4a6c8"),
    "unknown": ("#9a9a9a", "#bab0ac"),
}


def _lanes(chosen: Sequence[Request]) -> tuple[list[str], list[str], dict[int, int]]:
    """Timeline rows: one per client, and another beside it while one of its requests
    overlaps the previous (tabs, parallel clients behind one address), so no bar hides
    another. Returns (row keys, labels, access-log line -> row)."""
    ends: dict[str, list[float]] = {}
    lane_of: dict[int, tuple[str, int]] = {}
    for r in chosen:  # sorted by start
        client = f"{r.addr} {r.user_agent}"
        lanes = ends.setdefault(client, [])
        lane = next((i for i, end in enumerate(lanes) if end <= r.start), len(lanes))
        if lane == len(lanes):
            lanes.append(r.end)
        lanes[lane] = r.end
        lane_of[r.line] = (client, lane)
    order = {client: n for n, client in enumerate(ends)}
    keys = sorted({v for v in lane_of.values()}, key=lambda k: (order[k[0]], k[1]))[:MAX_ROWS]
    row_of = {key: n for n, key in enumerate(keys)}
    family = {f"{r.addr} {r.user_agent}": f"{r.addr} {ua_family(r.user_agent)}" for r in chosen}
    labels = [family[c] + (f" ({lane + 1})" if lane else "") for c, lane in keys]
    rows = {line: row_of[key] for line, key in lane_of.items() if key in row_of}
    return [f"{c} ({lane + 1})" for c, lane in keys], labels, rows


def timeline(
    chosen: Sequence[Request], whys: Sequence[Why], hops: Sequence[tuple[Request, Request]]
) -> Timeline:
    if not chosen:
        return Timeline(0.0, [], [], [], [], {}, 0)
    t0 = min(r.start for r in chosen)
    keys, labels, row_of = _lanes(chosen)
    rows = [Row(key, label) for key, label in zip(keys, labels, strict=True)]
    colours: dict[str, str] = {}
    used: Counter[str] = Counter()
    bars = []
    for r, w in zip(chosen, whys, strict=True):
        if w.cause not in colours:
            palette = PALETTES.get(w.side, PALETTES["unknown"])
            colours[w.cause] = palette[used[w.side] % len(palette)]
            used[w.side] += 1
        if r.line not in row_of:
            continue
        bars.append(
            Bar(
                conn=f"line {r.line}",
                row=row_of[r.line],
                start=r.start - t0,
                end=r.end - t0,
                open=False,
                kind="stream" if 200 <= r.status < 300 else "failed",
                cause=w.cause,
                path=r.target,
                status=str(r.status),
                detail=w.detail,
                events=None,
                first_id=None,
                last_id=None,
            )
        )
    gaps = [
        Gap(
            row=row_of[b.line],
            start=min(a.end, b.start) - t0,
            end=b.start - t0,
            previous=f"line {a.line}",
            next=f"line {b.line}",
            verdict="",
            lost=0,
            replayed=0,
        )
        for a, b in hops
        if b.line in row_of
    ]
    end = max(r.end for r in chosen) - t0
    hidden = len({(r.addr, r.user_agent) for r in chosen if r.line not in row_of})
    return Timeline(end, rows, bars, [], gaps, colours, hidden)
