"""The timeline's lanes: streams one client has open at the same time never share a row."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

from sseproxy.report import analyse, journal_from_records, render_html
from sseproxy.report.model import Timeline
from sseproxy.report.timeline import MAX_ROWS
from tests.report.fixtures import Record, stream
from tests.report.test_html import dump_dom, needs_chromium


def timeline_of(records: list[Record]) -> Timeline:
    return analyse(journal_from_records(records)).timeline


def overlapping(timeline: Timeline) -> list[tuple[str, str]]:
    """Pairs of stream bars drawn in one row while both were open."""
    streams = [b for b in timeline.bars if b.kind not in ("request", "no-request")]
    return [
        (a.conn, b.conn)
        for a, b in itertools.combinations(streams, 2)
        if a.row == b.row and a.start < b.end and b.start < a.end
    ]


def test_six_curls_at_once_from_one_address_get_six_lanes() -> None:
    records = [
        r for n in range(6) for r in stream(f"c{n + 1}", n * 0.5, 20 + n, client="10.0.0.1:1")
    ]
    timeline = timeline_of(records)
    assert overlapping(timeline) == []
    assert len({bar.row for bar in timeline.bars}) == 6
    assert len(timeline.rows) == 6
    assert {row.key for row in timeline.rows} == {timeline.rows[0].key}  # one client
    assert [row.lane for row in timeline.rows] == [0, 1, 2, 3, 4, 5]


def test_a_lane_is_reused_once_its_stream_closed_and_clients_keep_their_rows_together() -> None:
    records = [
        *stream("c1", 0, 10, client="10.0.0.1:1"),
        *stream("c2", 1, 5, client="10.0.0.1:2"),  # beside c1: a second lane
        *stream("c3", 2, 30, client="10.0.0.2:1", ua="Mozilla/5.0 Firefox/121"),
        *stream("c4", 6, 8, client="10.0.0.1:3"),  # c2 ended: back in the second lane
        *stream("c5", 12, 14, client="10.0.0.1:4"),  # both ended: the first lane
    ]
    timeline = timeline_of(records)
    assert overlapping(timeline) == []
    row = {bar.conn: bar.row for bar in timeline.bars}
    assert row["c1"] == row["c5"] == 0
    assert row["c2"] == row["c4"] == 1
    assert row["c3"] == 2  # the other client comes after both lanes of the first
    assert [r.lane for r in timeline.rows] == [0, 1, 0]
    assert timeline.rows[0].label == "10.0.0.1 curl"


def test_more_lanes_than_rows_are_drawn_in_the_last_one() -> None:
    records = [r for n in range(MAX_ROWS + 20) for r in stream(f"c{n + 1}", n * 0.01, 100)]
    timeline = timeline_of(records)
    assert len(timeline.rows) == MAX_ROWS
    assert max(bar.row for bar in timeline.bars) == MAX_ROWS - 1


def test_sequential_reconnects_stay_in_one_row() -> None:
    records = [
        *stream("c1", 0, 10, first_id="1", last_id="5", events=5),
        *stream("c2", 11, 20, last_event_id="5", first_id="6", last_id="9", events=4),
        *stream("c3", 21, None, last_event_id="9"),
    ]
    timeline = timeline_of(records)
    assert len(timeline.rows) == 1
    assert {bar.row for bar in timeline.bars} == {0}
    assert len(timeline.gaps) == 2


@needs_chromium
def test_chromium_draws_the_lanes_apart(tmp_path: Path) -> None:
    records = [r for n in range(3) for r in stream(f"c{n + 1}", n, 20 + n)]
    page = tmp_path / "report.html"
    page.write_text(render_html(analyse(journal_from_records(records))))
    dom = dump_dom(page, tmp_path)
    bars = re.findall(r'<rect [^>]*class="bar[^"]*"[^>]*>', dom)
    tops = {re.search(r' y="([^"]+)"', bar).group(1) for bar in bars}  # type: ignore[union-attr]
    assert len(bars) == 3 and len(tops) == 3
