"""A probe's journal merged with the proxy's: matched by client port and time."""

from __future__ import annotations

import json
from typing import Any

from sseproxy.report.reader import build

TS = "2026-12-01T10:00:{:06.3f}+00:00"


def _line(t: float, kind: str, conn: str, **fields: Any) -> str:
    return json.dumps({"t": t, "ts": TS.format(t), "kind": kind, "conn": conn, **fields})


def _probe_conn(conn: str, t: float, port: int, seen: str) -> list[str]:
    return [
        _line(t, "opened", conn, client="127.0.0.1", client_port=port, listener="probe"),
        _line(t, "request", conn, method="GET", path="/events", session="probe-1"),
        _line(t, "response", conn, status=200, content_type="text/event-stream"),
        _line(t + 3, "closed", conn, by="upstream", reason="upstream-closed", seen_as=seen),
    ]


def _proxy_conn(conn: str, t: float, port: int) -> list[str]:
    return [
        _line(t, "opened", conn, client="127.0.0.1", client_port=port, listener="x"),
        _line(t, "request", conn, method="GET", path="/events"),
        _line(t, "response", conn, status=200, content_type="text/event-stream"),
        _line(t + 3, "closed", conn, by="proxy", reason="idle-timeout"),
    ]


PROBE = [
    _line(0.0, "started", "-", role="probe"),
    *_probe_conn("c1", 1.0, 40001, "incomplete chunked body"),
    *_probe_conn("c2", 6.0, 40002, "incomplete chunked body"),
    *_probe_conn("c3", 20.0, 40001, "RST (connection reset)"),  # port reused, later
    *_probe_conn("c4", 30.0, 40009, "clean end"),  # went elsewhere
]
PROXY = [
    _line(0.0, "started", "-"),
    *_proxy_conn("c1", 1.002, 40001),
    *_proxy_conn("c2", 6.001, 40002),
    *_proxy_conn("c3", 22.5, 40001),  # too far from the probe's c3
]


def test_matched_connections_count_once_with_both_views() -> None:
    journals = build([("probe.jsonl", PROBE), ("proxy.jsonl", PROXY)])
    by_key = {c.key: c for c in journals.connections}
    assert sorted(by_key) == ["run 1/c3", "run 1/c4", "run 2/c1", "run 2/c2", "run 2/c3"]
    assert by_key["run 2/c1"].seen_by_client == "incomplete chunked body"
    assert by_key["run 2/c1"].session == "probe-1"
    assert by_key["run 2/c3"].seen_by_client is None  # 2.5 s apart: not the same one
    (note,) = [n for n in journals.notes if "merged" in n]
    assert "2 of 4 probe connections matched" in note
    assert "proxy/idle-timeout seen as incomplete chunked body 2" in note


def test_a_probe_journal_alone_or_a_proxy_journal_alone_is_unchanged() -> None:
    assert len(build([("probe.jsonl", PROBE)]).connections) == 4
    assert len(build([("proxy.jsonl", PROXY)]).connections) == 3
    assert not [n for n in build([("p", PROBE)]).notes if "merged" in n]
