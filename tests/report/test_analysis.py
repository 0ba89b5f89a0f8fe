"""The analysis on hand-written journals: the cases scripted runs do not reach on purpose."""

from __future__ import annotations

import json
import math

import pytest

from sseproxy.report import analyse, journal_from_records, render_json, render_text, to_dict
from sseproxy.report.analysis import kinds
from sseproxy.scenario import parse_scenario
from tests.report.fixtures import Record, rec, stream


def report_of(records: list[Record], scenario: str | None = None, **options: float):  # type: ignore[no-untyped-def]
    parsed = parse_scenario(scenario, file="given.toml") if scenario else None
    return analyse(journal_from_records(records), parsed, **options)


def flat(text: str) -> str:
    return " ".join(text.split())


def test_kinds_and_a_disconnect_rate_that_cannot_pass_100_percent() -> None:
    """Failed attempts and reconnects are not extra disconnects: the user story's 146 %."""
    records = [
        *stream("c1", 0, 10, first_id="1", last_id="5", events=5),
        *stream(
            "c2",
            11,
            11.5,
            status=502,
            content_type="text/plain",
            by="proxy",
            reason="upstream-refused",
        ),
        *stream(
            "c3",
            12,
            13,
            status=503,
            content_type="text/plain",
            by="upstream",
            reason="upstream-end",
        ),
        *stream("c4", 14, 20, last_event_id="5", first_id="6", last_id="7", events=2),
        *stream("c5", 21, 22, path="/health", content_type="text/plain"),  # another request
        rec("opened", "c6", 23.0, client="10.0.0.2:1"),  # never sent a request
        rec("closed", "c6", 24.0, by="client", reason="client-closed", duration=1.0),
        rec("opened", "c7", 25.0, client="10.0.0.3:1", mode="tcp"),
    ]
    journals = journal_from_records(records)
    assert kinds(journals.connections) == {
        "c1": "stream",
        "c2": "failed",
        "c3": "failed",
        "c4": "stream",
        "c5": "request",
        "c6": "no-request",
        "c7": "tcp",
    }
    report = analyse(journals)
    t, c = report.totals, report.closes
    assert (t.connections, t.streams, t.failed_attempts, t.other_requests, t.no_request, t.tcp) == (
        7,
        2,
        2,
        1,
        1,
        1,
    )
    assert (t.closed, t.still_open) == (6, 1)
    assert [(p.name, p.count) for p in t.paths] == [("/events", 4), ("/health", 1)]
    assert {s.name: s.count for s in t.statuses} == {"200": 3, "502": 1, "503": 1}
    assert (c.population, c.established, c.closed, c.disconnect_rate) == ("streams", 2, 2, 1.0)
    assert [(f.status, f.cause, f.count) for f in c.failed] == [
        ("502", "proxy/upstream-refused", 1),
        ("503", "upstream/upstream-end", 1),
    ]
    assert "cannot exceed 100 %" in c.explanation
    assert "2 attempts never became a stream (502 x1, 503 x1)" in c.explanation
    assert "1 of the 2 streams was a reconnect" in c.explanation
    r = report.reconnects
    # c1 -> c2 (failed) -> c3 (failed) -> c4: the id given on c1 is what c4 must resume
    assert [(h.previous, h.next, h.status) for h in r.hops] == [
        ("c1", "c2", "502"),
        ("c2", "c3", "503"),
        ("c3", "c4", "200"),
    ]
    assert [(h.expected_id, h.sent_id, h.client_check, h.server_check) for h in r.hops] == [
        ("5", None, "missing", "failed"),
        ("5", None, "missing", "failed"),
        ("5", "5", "ok", "ok"),
    ]


def test_resume_check_cases() -> None:
    records = [
        # a client that sends a different id than it was given, and the server follows it
        *stream("a1", 0, 10, client="10.0.0.1:1", first_id="1", last_id="9", events=9),
        *stream(
            "a2",
            11,
            20,
            client="10.0.0.1:2",
            last_event_id="7",
            first_id="8",
            last_id="9",
            events=2,
        ),
        # non-numeric ids: only a repeat of the same id can be told
        *stream("b1", 0, 10, client="10.0.0.2:1", first_id="x", last_id="y", events=2),
        *stream(
            "b2",
            11,
            20,
            client="10.0.0.2:1",
            last_event_id="y",
            first_id="z",
            last_id="z",
            events=1,
        ),
        *stream(
            "b3",
            21,
            30,
            client="10.0.0.2:1",
            last_event_id="z",
            first_id="z",
            last_id="z",
            events=1,
        ),
        # the event records make a replay exact: ids 3, 4 again out of 3..8
        *stream("c1", 0, 10, client="10.0.0.3:1", first_id="1", last_id="4", events=4),
        *stream("c2", 10.5, 20, client="10.0.0.3:1", first_id="3", last_id="8", events=6),
        *[rec("event", "c2", 11.0 + i, id=str(i + 3)) for i in range(6)],
        # a resumed connection that delivered nothing
        *stream("d1", 0, 10, client="10.0.0.4:1", first_id="1", last_id="2", events=2),
        *stream("d2", 12, 20, client="10.0.0.4:1", last_event_id="2", events=0),
    ]
    hops = {h.next: h for h in report_of(records).reconnects.hops}
    assert (hops["a2"].client_check, hops["a2"].server_check, hops["a2"].replayed) == (
        "mismatch",
        "repeated",
        2,
    )
    assert (hops["b2"].server_check, hops["b3"].server_check, hops["b3"].replayed) == (
        "not-numeric",
        "repeated",
        1,
    )
    assert (hops["c2"].client_check, hops["c2"].replayed, hops["c2"].delay) == ("missing", 2, 0.5)
    assert (hops["d2"].client_check, hops["d2"].server_check) == ("ok", "no-events")


def test_ids_skipped_inside_a_stream_need_event_records() -> None:
    records = [
        *stream("c1", 0, 10, first_id="1", last_id="9", events=3),
        *[rec("event", "c1", float(i), id=n) for i, n in enumerate(["1", "2", "9"])],
    ]
    report = report_of(records)
    assert report.reconnects.resume.lost_inside_streams == 6
    assert "Inside streams, 6 ids were skipped." in flat(render_text(report))
    assert report_of(stream("c1", 0, 1)).reconnects.resume.lost_inside_streams is None


def test_chains_by_session_and_by_client_and_tabs() -> None:
    """Two tabs of one browser interleave; a session key follows a client across addresses."""
    ua = "Mozilla/5.0 Firefox/121.0"
    records = [
        *stream("t1", 0, 10, ua=ua, first_id="1", last_id="10", events=10),
        *stream("t2", 1, 11, ua=ua, first_id="1", last_id="11", events=11),
        *stream("t3", 13, 20, ua=ua, last_event_id="10", first_id="11", last_id="12", events=2),
        *stream("t4", 14, 20, ua=ua, last_event_id="11", first_id="12", last_id="13", events=2),
    ]
    hops = report_of(records).reconnects.hops
    assert sorted((h.previous, h.next, h.server_check) for h in hops) == [
        ("t1", "t3", "ok"),
        ("t2", "t4", "ok"),
    ]
    session = [
        *stream("s1", 0, 10, client="10.0.0.1:1", first_id="1", last_id="3", events=3),
        *stream(
            "s2",
            12,
            20,
            client="10.0.9.9:1",
            last_event_id="3",
            first_id="4",
            last_id="5",
            events=2,
        ),
    ]
    session[1]["session"] = session[5]["session"] = "abc"
    report = report_of(session)
    (hop,) = report.reconnects.hops
    assert (hop.chain, hop.previous, hop.next) == ("session abc", "s1", "s2")
    assert report.reconnects.chain_rows[0].label.startswith("abc (10.0.0.1")


def test_a_return_after_the_reconnect_window_is_a_new_visit() -> None:
    records = [
        *stream("c1", 0, 10, first_id="1", last_id="3", events=3),
        *stream("c2", 300, 310, first_id="1", last_id="3", events=3),
    ]
    assert report_of(records).reconnects.reconnects == 0
    (hop,) = report_of(records, reconnect_window=600).reconnects.hops
    assert (hop.delay, hop.replayed) == (290.0, 3)


HEARTBEAT_SCENARIO = """
[scenario]
name = "edge"
[[faults]]
name = "lb-idle"
type = "idle-timeout"
timeout = "20s"
[[faults]]
type = "client-watchdog"
timeout = "45s"
[[faults]]
name = "upload-idle"
type = "idle-timeout"
direction = "up"
timeout = "5s"
"""


def test_heartbeats_with_gap_data() -> None:
    """Gaps as the journal measures them: up to the close, so a cut stream shows the timeout."""
    both = ["lb-idle", "client-watchdog", "upload-idle"]  # the last times the client's bytes
    records = [
        # behind the load balancer: cut after 20 s without a byte
        *stream(
            "c1",
            0,
            20,
            faults=both,
            by="proxy",
            reason="lb-idle",
            detail="no byte for 20s",
            longest_gap=20.0,
            longest_event_gap=20.0,
        ),
        rec("fault", "c1", 20.0, fault="lb-idle", action="close", detail="no byte for 20s"),
        # the same path, not behind it: 30 s between heartbeats
        *stream(
            "c2",
            0,
            95,
            client="10.0.0.7:1",
            faults=["client-watchdog"],
            longest_gap=30.0,
            longest_event_gap=30.0,
        ),
        *stream("c3", 0, 5, path="/fast", faults=both, longest_gap=2.0, longest_event_gap=2.0),
    ]
    report = report_of(records, HEARTBEAT_SCENARIO)
    slow, fast = report.heartbeats
    assert (slow.path, slow.streams, slow.longest_gap) == ("/events", 2, 30.0)
    cut = {c.fault: c for c in slow.checks}
    assert set(cut) == {"lb-idle", "client-watchdog"}  # upload-idle times the other direction
    assert (cut["lb-idle"].verdict, cut["lb-idle"].streams, cut["lb-idle"].fired) == ("cut", 1, 1)
    assert cut["lb-idle"].sentence == (
        "30 s between bytes, idle-timeout 20 s (lb-idle): every stream will be cut "
        "(1 of 1 stream cut)."
    )
    assert cut["client-watchdog"].verdict == "ok"
    assert cut["client-watchdog"].sentence == (
        "at most 30 s between events, client-watchdog 45 s: kept alive (margin 15 s; "
        "0 of 2 streams cut)."
    )
    assert [c.verdict for c in fast.checks] == ["ok", "ok"]
    rows = {row.cause: row for row in report.closes.rows}
    assert (rows["proxy/lb-idle"].side, rows["proxy/lb-idle"].fault_type) == (
        "intermediary (fault)",
        "idle-timeout",
    )


def test_a_timeout_that_cut_every_stream() -> None:
    """Nothing shows the silences it did not cut: the firings are the evidence."""
    records = [
        *stream("c1", 0, 20, faults=["lb-idle"], by="proxy", reason="lb-idle", longest_gap=20.0),
        rec("fault", "c1", 20.0, fault="lb-idle", action="close", detail="no byte for 20s"),
    ]
    (check,) = report_of(records, HEARTBEAT_SCENARIO).heartbeats[0].checks
    assert check.sentence == (
        "idle-timeout 20 s (lb-idle) counting bytes cut 1 of 1 stream: silences of 20 s or more "
        "happen here."
    )


def test_a_timeout_changed_live_is_read_from_its_firings() -> None:
    """`sseproxy ctl faults set proxy_read_timeout --set timeout=2s` on nginx-default: the
    journal names the change only, the firings say what ran."""
    records = [
        *stream(
            "c1",
            0,
            2,
            by="proxy",
            reason="proxy_read_timeout",
            faults=["proxy_read_timeout"],
            longest_gap=2.0,
            scenario="nginx-default",
        ),
        rec(
            "fault",
            "c1",
            2.0,
            fault="proxy_read_timeout",
            action="close",
            detail="no byte for 2s",
            scenario="nginx-default",
        ),
    ]
    (check,) = report_of(records).heartbeats[0].checks
    assert (check.fault, check.timeout, check.fired) == ("proxy_read_timeout", 2.0, 1)
    assert "idle-timeout 2 s (proxy_read_timeout)" in check.sentence


def test_heartbeats_without_gap_data_or_scenario() -> None:
    """No longest_gap, a scenario that is not here: the firings' details still tell."""
    records = [
        *stream(
            "c1",
            0,
            45,
            faults=["watch"],
            by="proxy",
            reason="watch",
            detail="no event for 45s",
            scenario="not-here",
        ),
        rec("fault", "c1", 45.0, fault="watch", action="close", detail="no event for 45s"),
        *stream("c2", 0, 500, client="10.0.0.5:1", faults=["watch"], scenario="not-here"),
    ]
    report = report_of(records)
    (hb,) = report.heartbeats
    (check,) = hb.checks
    assert (check.fault, check.type, check.timeout, check.counts, check.verdict) == (
        "watch",
        "silence timeout",
        45.0,
        "events",
        "cut",
    )
    assert "Comment heartbeats do not reset it" in check.sentence
    assert any("'not-here' is neither a preset nor a file" in note for note in report.notes)
    rows = {row.cause: row for row in report.closes.rows}
    assert (rows["proxy/watch"].side, rows["proxy/watch"].fault_type) == (
        "intermediary (fault)",
        None,
    )


def test_a_preset_named_in_the_journal_is_loaded() -> None:
    records = [
        *stream(
            "c1",
            0,
            3,
            by="proxy",
            reason="idle-timeout",
            detail="no byte for 3s",
            faults=["idle-timeout"],
            scenario="idle-3s",
        ),
        *stream("c2", 0, 2.5, client="10.0.0.2:1", faults=["idle-timeout"], scenario="idle-3s"),
    ]
    report = report_of(records)
    (check,) = report.heartbeats[0].checks
    assert (check.type, check.timeout, check.fired, check.verdict) == (
        "idle-timeout",
        3.0,
        0,
        "unknown",
    )
    assert not any("preset" in note for note in report.notes)


def test_durations_per_cause_and_open_streams() -> None:
    records = [
        *stream("c1", 0, 0.5),
        *stream("c2", 0, 30, client="10.0.0.2:1", by="proxy", reason="reset"),
        *stream("c3", 0, 90, client="10.0.0.3:1"),
        *stream("c4", 0, 700, client="10.0.0.4:1"),
        *stream("c5", 600, None, client="10.0.0.5:1"),
    ]
    d = report_of(records).durations
    assert (d.overall.count, d.overall.min, d.overall.max) == (4, 0.5, 700.0)
    assert d.histogram == {
        "<1 s": 1,
        "1-10 s": 0,
        "10-60 s": 1,
        "1-5 min": 1,
        "5-10 min": 0,
        ">10 min": 1,
    }
    per = {p.cause: p for p in d.per_cause}
    assert per["client/client-closed"].summary.count == 3 and per["proxy/reset"].summary.p50 == 30
    assert (d.still_open.count, d.still_open.max) == (1, 100.0)  # the journal ends at 700


def test_clients_grouped_by_address_and_family() -> None:
    records = [
        *stream("c1", 0, 10, client="10.0.0.1:1", ua="curl/8.4.0"),
        *stream("c2", 12, 20, client="10.0.0.1:2", ua="curl/7.88.1"),
        *stream("c3", 0, 40, client="10.0.0.1:3", ua="Go-http-client/1.1"),
        *stream("c4", 0, 20, client="10.0.0.2:1", ua="Go-http-client/1.1"),
    ]
    groups = {(g.host, g.family): g for g in report_of(records).clients}
    curl = groups[("10.0.0.1", "curl")]
    assert (curl.connections, curl.streams, curl.mean_lifetime) == (2, 2, 9.0)
    assert curl.user_agents == ["curl/8.4.0", "curl/7.88.1"]
    assert curl.reconnects == 0  # two different user agents: two clients
    assert groups[("10.0.0.1", "go")].connections == 1


def test_json_is_complete_and_strict() -> None:
    report = report_of(
        [
            *stream("c1", 0, 10, first_id="1", last_id="2", events=2),
            *stream("c2", 11, None, last_event_id="2"),
        ]
    )
    data = json.loads(render_json(report))
    assert data["version"] == 1
    assert set(data) == {
        "version",
        "totals",
        "closes",
        "durations",
        "clients",
        "reconnects",
        "heartbeats",
        "timeline",
        "notes",
        "summary",
        "members",
        "sessions_lost",
    }
    assert data["reconnects"]["hops"][0]["client_check"] == "ok"
    assert data["timeline"]["bars"][1]["open"] is True
    assert to_dict(report)["totals"]["still_open"] == 1


def test_empty_journal() -> None:
    report = report_of([])
    assert report.totals.connections == 0 and report.closes.disconnect_rate is None
    assert "the journal has no connections" in report.notes
    text = render_text(report)
    assert "No connection was established" in flat(text)
    assert math.isfinite(report.totals.span)


@pytest.mark.parametrize("mode", ["tcp"])
def test_tcp_mode_reports_connections(mode: str) -> None:
    records = [
        rec("opened", "c1", 0.0, client="1.1.1.1:1", mode=mode),
        rec(
            "closed",
            "c1",
            5.0,
            by="upstream",
            reason="upstream-closed",
            duration=5.0,
            bytes_down=10,
            bytes_up=5,
        ),
    ]
    report = report_of(records)
    assert (report.closes.population, report.closes.closed) == ("connections", 1)
    assert report.heartbeats == [] and report.reconnects.reconnects == 0


@pytest.mark.parametrize(
    "reason", ["client-header-timeout", "version-not-supported", "not-implemented"]
)
def test_the_reasons_of_bad_client_input_are_explained(reason: str) -> None:
    from sseproxy.report.causes import EXPLANATIONS

    assert reason in EXPLANATIONS


def test_a_request_for_a_stream_reset_before_any_response_is_a_failed_attempt() -> None:
    # no stream ever succeeded on /feed, so only the Accept header says what it was
    records = [
        rec("opened", "c1", 0.0, client="10.0.0.1:1"),
        rec("request", "c1", 0.0, req=1, method="GET", path="/feed", accept="text/event-stream"),
        rec("closed", "c1", 0.5, by="proxy", reason="reset", duration=0.5),
        rec("opened", "c2", 1.0, client="10.0.0.1:2"),
        rec("request", "c2", 1.0, req=2, method="GET", path="/other", accept="*/*"),
        rec("closed", "c2", 1.5, by="proxy", reason="reset", duration=0.5),
    ]
    assert kinds(journal_from_records(records).connections) == {"c1": "failed", "c2": "request"}


def test_a_cors_preflight_where_streams_come_from_is_no_stream_attempt() -> None:
    records = [
        *stream("c1", 0.0, 5.0, client="10.0.0.1:1", by="proxy", reason="idle-timeout"),
        rec("opened", "c2", 8.0, client="10.0.0.1:2"),
        rec("request", "c2", 8.0, req=2, method="OPTIONS", path="/events", last_event_id="3"),
        rec("closed", "c2", 8.1, by="client", reason="client-closed", duration=0.1),
    ]
    assert kinds(journal_from_records(records).connections) == {"c1": "stream", "c2": "request"}
    report = report_of(records)
    assert (report.totals.failed_attempts, report.reconnects.reconnects) == (0, 0)


async def test_the_journal_records_what_the_request_accepts(autojump_clock: object) -> None:
    from sseproxy.testing import OriginSettings, memory_proxy
    from tests.testing.clients import get_events

    async with memory_proxy(OriginSettings(count=1)) as proxy:
        await get_events(await proxy.connect())
        (request,) = await proxy.wait_for("request")
    assert request["accept"] == "text/event-stream"
