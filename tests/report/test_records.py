"""Reading journals back: tolerant of cut lines, several runs, old and new fields."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sseproxy.errors import ConfigError
from sseproxy.report.reader import build, journal_from_records, read_journals, settle_races
from sseproxy.report.records import base_path
from tests.report.fixtures import rec, stream


def lines(records: list[dict[str, object]]) -> list[str]:
    return [json.dumps(r) + "\n" for r in records]


def test_a_line_cut_by_kill_9_is_counted_not_fatal(tmp_path: Path) -> None:
    text = "".join(lines(stream("c1", 0, 5, events=2, first_id="1", last_id="2")))
    text += '{"t": 6.0, "kind": "opened", "conn": "c2", "cli'  # the line being written
    path = tmp_path / "j.jsonl"
    path.write_text(text + "\n\n[1, 2]\n" + '{"kind": "opened", "conn": "c9"}\n')
    journals = read_journals([str(path)])
    assert journals.unreadable == 3  # cut line, not an object, no time
    (conn,) = journals.connections
    assert (conn.key, conn.cause, conn.duration, conn.last_id) == (
        "c1",
        "client/client-closed",
        5.0,
        "2",
    )


def test_missing_and_unreadable_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        read_journals([str(tmp_path / "nope.jsonl")])
    with pytest.raises(ConfigError, match="is a directory"):
        read_journals([str(tmp_path)])


def test_runs_appended_to_one_file_keep_their_connections_apart() -> None:
    first = [
        {"t": 0.0, "ts": "2026-01-01T10:00:00.000+00:00", "kind": "started", "conn": "-"},
        *stream("c1", 1, 4),
    ]
    second = [
        {"t": 0.0, "ts": "2026-01-01T10:01:00.000+00:00", "kind": "started", "conn": "-"},
        *stream("c1", 2, 3),
    ]
    for r in second[1:]:
        r["ts"] = "2026-01-01T10:01:02.000+00:00"
    journals = build([("j", lines(first + second))])
    assert journals.runs == 2
    a, b = journals.connections
    assert (a.key, b.key) == ("run 1/c1", "run 2/c1")
    # placed by wall clock: the second run started 60 s after the first
    assert (a.opened, a.closed_at, b.opened, b.closed_at) == (1.0, 4.0, 62.0, 63.0)


def test_runs_without_wall_clock_follow_each_other() -> None:
    first = [{"t": 0.0, "kind": "started", "conn": "-"}, *stream("c1", 1, 10)]
    second = [{"t": 0.0, "kind": "started", "conn": "-"}, *stream("c1", 2, 3)]
    for r in first + second:
        r.pop("ts", None)
    a, b = build([("j", lines(first + second))]).connections
    assert (a.opened, b.opened) == (1.0, 12.0)


def test_fields_from_older_and_newer_journals() -> None:
    records = [
        rec("opened", "c1", 0.0, client="::1", client_port=5001, listener="main"),
        rec(
            "request",
            "c1",
            0.1,
            req=1,
            method="GET",
            path="/sse?sessionId=a",
            query="sessionId=a",
            session="a",
            user_agent="curl/8.4.0",
            future_field=[1, 2],
        ),
        rec("upstream", "c1", 0.2, upstream="http://10.0.0.9:8080", connect_time=0.05),
        rec("response", "c1", 0.3, status=200, content_type="text/event-stream; charset=utf-8"),
        rec("event", "c1", 1.0, id="1", type="message", size=20),
        rec("event", "c1", 31.0, id="2", type="message", size=20),
        rec("a-kind-from-the-future", "c1", 32.0, anything=True),
        rec(
            "closed",
            "c1",
            40.0,
            by="upstream",
            reason="upstream-end",
            longest_gap_down=30.0,
            longest_gap_up=99.0,
            longest_event_gap=30.0,
            first_id="1",
            last_id="2",
            events_down=2,
        ),
        rec("opened", "c2", 50.0),  # nothing else known: still open, no client
        rec("opened", "c3", 50.0, client="[::1]:5000"),  # older journals: host:port in one
    ]
    journals = journal_from_records(records)
    c1, c2, c3 = journals.connections
    assert (c1.host, c1.port, c1.listener, c1.session) == ("::1", 5001, "main", "a")
    assert (c1.path, c1.upstream, c1.upstream_connect) == ("/sse", "http://10.0.0.9:8080", 0.05)
    assert c1.main_request is not None and c1.main_request.is_event_stream
    assert [e.id for e in c1.events] == ["1", "2"]
    assert (c1.duration, c1.longest_gap, c1.longest_event_gap) == (40.0, 30.0, 30.0)
    assert (c2.is_open, c2.host, c2.main_request, c2.cause) == (True, "unknown", None, "open")
    assert (c3.host, c3.port) == ("::1", 5000)
    assert journals.end == 50.0


def test_a_response_without_its_request_gets_a_placeholder() -> None:
    records = [
        rec("opened", "c1", 0.0, client="1.2.3.4:5"),
        rec("response", "c1", 0.0, status=400, origin="proxy"),
        rec("closed", "c1", 0.0, by="proxy", reason="bad-request"),
    ]
    (conn,) = journal_from_records(records).connections
    assert conn.main_request is not None
    assert (conn.main_request.status, conn.main_request.status_by_proxy) == (400, True)


def test_client_close_right_after_a_fault_close_is_the_faults() -> None:
    records = [
        *stream("c1", 0, 45, by="client", reason="client-closed"),
        rec("fault", "c1", 45.0, fault="watchdog", action="close", detail="no event for 45s"),
        *stream("c2", 0, 100, by="client", reason="client-closed"),
        rec("fault", "c2", 10.0, fault="lag", action="note", detail="held"),
    ]
    journals = journal_from_records(records)
    c1, c2 = journals.connections
    assert (c1.cause, c1.detail, c1.journaled_cause) == (
        "proxy/watchdog",
        "no event for 45s",
        "client/client-closed",
    )
    assert (c2.cause, c2.journaled_cause) == ("client/client-closed", None)
    assert any("c1" in note for note in journals.notes)
    assert settle_races(journals.connections) == []  # nothing left to change


@pytest.mark.parametrize(
    ("target", "path"), [("/events?x=1", "/events"), ("/", "/"), ("?a", "/"), ("/a/b", "/a/b")]
)
def test_base_path(target: str, path: str) -> None:
    assert base_path(target) == path
