"""The timeline's data: one row per client (or session), one bar per connection.

A client that has several streams open at once (six curls from one address, two tabs)
gets a lane per stream running beside another: its streams go in the first lane free
when they open, so bars never overlap; the lanes of one client are adjacent rows.
Plain requests (an MCP POST beside its stream) are ticks in the client's first lane.

Bars are coloured by close cause; the colour families say who closed (blues: the client,
greens: the server, reds and oranges: a fault acting as an intermediary, purples: a
fault acting as the client, grey: the proxy stopping, light grey: still open). Markers
are fault firings; gaps join a connection to the reconnect that followed it.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping

from sseproxy.report.causes import side_of
from sseproxy.report.heartbeats import FaultInfo
from sseproxy.report.model import Bar, Gap, Marker, Row, Timeline
from sseproxy.report.reconnects import Lineage, client_key, client_label
from sseproxy.report.records import Connection

__all__ = ["MAX_ROWS", "timeline"]

MAX_ROWS = 250
"""Rows beyond this (the clients that connected last) are left out of the picture; a
client whose lanes do not all fit draws its extra streams in its last lane."""
_PLAIN = ("request", "no-request")

_PALETTES: Mapping[str, tuple[str, ...]] = {
    "client": ("#4e79a7", "#7aa6d6", "#2b4f75", "#a0c4e8"),
    "server": ("#59a14f", "#8cd17d", "#3b7a33"),
    "intermediary (fault)": ("#e15759", "#f28e2b", "#b6392d", "#ffa95e", "#c9485b"),
    "client (fault)": ("#9c6fb6", "#c29fd6", "#6f4a87"),
    "proxy shutdown": ("#8c8c8c",),
    "proxy": ("#5d5552", "#7b706c"),
}
OPEN_COLOUR = "#d9d9d9"


def _row_key(conn: Connection, found: Lineage) -> str:
    """The chain's row for a stream attempt; for another request, the row of its session's
    streams when it has one (an MCP POST beside its stream), else its client's row."""
    key = found.chain_of.get(conn.key)
    if key is not None:
        return key
    session = f"session {conn.session}" if conn.session else None
    return session if session in found.labels else client_key(conn)


def timeline(
    conns: list[Connection],
    kind: Mapping[str, str],
    found: Lineage,
    end: float,
    faults: Mapping[str, FaultInfo],
) -> Timeline:
    lane_of = _lanes(conns, kind, found, end)
    lanes: dict[str, int] = {}
    for conn in conns:
        key = _row_key(conn, found)
        lanes[key] = max(lanes.get(key, 1), lane_of[conn.key] + 1)
    row_of: dict[str, int] = {}
    rows: list[Row] = []
    hidden: set[str] = set()
    for conn in conns:  # sorted by opening time: rows appear in order of first connection
        key = _row_key(conn, found)
        if key not in row_of and key not in hidden:
            if len(rows) >= MAX_ROWS:
                hidden.add(key)
                continue
            row_of[key] = len(rows)
            label = found.labels.get(key) or client_label(conn)
            lanes[key] = min(lanes[key], MAX_ROWS - len(rows))
            rows += [
                Row(key, label if lane == 0 else f"{label} #{lane + 1}", lane)
                for lane in range(lanes[key])
            ]
    colours: dict[str, str] = {}
    used: dict[str, int] = {}
    bars: list[Bar] = []
    markers: list[Marker] = []
    row_of_conn: dict[str, int] = {}
    for conn in conns:
        key = _row_key(conn, found)
        if key not in row_of:
            continue
        row = row_of[key] + min(lane_of[conn.key], lanes[key] - 1)
        row_of_conn[conn.key] = row
        cause = conn.cause
        if cause not in colours:
            if conn.is_open:
                colours[cause] = OPEN_COLOUR
            else:
                palette = _PALETTES[side_of(conn, faults)[0]]
                n = used.get(palette[0], 0)
                used[palette[0]] = n + 1
                colours[cause] = palette[n % len(palette)]
        main = conn.main_request
        status = "" if main is None or main.status is None else str(main.status)
        bars.append(
            Bar(
                conn=conn.key,
                row=row,
                start=conn.opened,
                end=conn.closed_at if conn.closed_at is not None else end,
                open=conn.is_open,
                kind=kind.get(conn.key, "?"),
                cause=cause,
                path=main.full_target if main else "",
                status=status,
                detail=conn.detail or "",
                events=conn.events_down,
                first_id=conn.first_id,
                last_id=conn.last_id,
            )
        )
        for fired in conn.faults:
            markers.append(Marker(row, fired.t, conn.key, fired.fault, fired.action, fired.detail))
    by_key = {c.key: c for c in conns}
    gaps = []
    for hop in found.hops:
        if hop.next not in row_of_conn:
            continue
        previous = by_key[hop.previous]
        assert previous.closed_at is not None
        verdict = hop.server_check if hop.server_check not in ("fresh", "failed") else ""
        gaps.append(
            Gap(
                row=row_of_conn[hop.next],
                start=min(previous.closed_at, by_key[hop.next].opened),
                end=by_key[hop.next].opened,
                previous=hop.previous,
                next=hop.next,
                verdict=verdict,
                lost=hop.lost,
                replayed=hop.replayed,
            )
        )
    return Timeline(end, rows, bars, markers, gaps, colours, len(hidden))


def _lanes(
    conns: list[Connection], kind: Mapping[str, str], found: Lineage, end: float
) -> dict[str, int]:
    """Each connection's lane within its row: the lowest lane whose stream closed by the
    time it opened (`conns` sorted by opening time); plain requests go in lane 0.
    Heaps keep it O(n log n): one client may hold thousands of streams at once."""
    busy: dict[str, list[tuple[float, int]]] = {}  # row key -> (closes at, lane)
    free: dict[str, list[int]] = {}
    count: dict[str, int] = {}
    lane_of: dict[str, int] = {}
    for conn in conns:
        key = _row_key(conn, found)
        if kind.get(conn.key) in _PLAIN:
            lane_of[conn.key] = 0
            continue
        taken, idle = busy.setdefault(key, []), free.setdefault(key, [])
        while taken and taken[0][0] <= conn.opened:
            heapq.heappush(idle, heapq.heappop(taken)[1])
        if idle:
            lane = heapq.heappop(idle)
        else:
            lane = count.get(key, 0)
            count[key] = lane + 1
        closes = conn.closed_at if conn.closed_at is not None else end
        heapq.heappush(taken, (closes, lane))
        lane_of[conn.key] = lane
    return lane_of
