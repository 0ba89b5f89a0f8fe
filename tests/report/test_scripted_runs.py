"""The report against journals of real (scripted) proxy runs, in virtual time.

Each client's own view (the ids it received on each connection) is the ground truth: the
report, reading only the proxy's journal, must state the same lost and replayed counts.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import trio
from click.testing import CliRunner
from trio.testing import MockClock

from sseproxy import origin
from sseproxy.report import analyse, journal_from_records, render_text
from sseproxy.report_cli import report_command
from tests.report.scripted import (
    event_ids,
    origin_upstream,
    scripted_proxy,
    skipping_upstream,
    sse_client,
    truth,
)


def flat(text: str) -> str:
    """The text with its line wrapping undone."""
    return " ".join(text.split())


RESET_AFTER_3 = '[scenario]\nname = "reset-3"\n\n[[faults]]\ntype = "reset"\nevents = 3\n'


async def test_resuming_client_loses_nothing(autojump_clock: MockClock) -> None:
    async with scripted_proxy(RESET_AFTER_3, origin_upstream()) as sp:
        seen = await sse_client(
            sp, "10.0.0.1:40000", "Mozilla/5.0 Chrome/120", connections=4, resume=True
        )
        await sp.journal.wait_for("closed", 4)
        records = list(sp.journal.records)
    assert seen == [["1", "2", "3"], ["4", "5", "6"], ["7", "8", "9"], ["10", "11", "12"]]
    assert truth(seen) == (0, 0)
    report = analyse(journal_from_records(records))
    r = report.reconnects
    assert (r.reconnects, r.resume.sent_ok, r.resume.server_ok) == (3, 3, 3)
    assert (r.resume.lost, r.resume.replayed, r.resume.skipped, r.resume.repeated) == (0, 0, 0, 0)
    assert [(h.expected_id, h.sent_id, h.first_id) for h in r.hops] == [
        ("3", "3", "4"),
        ("6", "6", "7"),
        ("9", "9", "10"),
    ]
    assert [h.delay for h in r.hops] == [1.0, 1.0, 1.0]
    (row,) = report.closes.rows
    assert (row.cause, row.side, row.fault_type, row.count) == (
        "proxy/reset",
        "intermediary (fault)",
        "reset",
        4,
    )
    assert report.closes.disconnect_rate == 1.0
    (group,) = report.clients
    assert (group.host, group.family, group.connections, group.reconnects) == (
        "10.0.0.1",
        "browser",
        4,
        3,
    )
    text = flat(render_text(report))
    assert "the client sent that id back 3 times." in text
    assert "Server after resuming: continued exactly 3 times." in text
    assert "0 times" not in text


async def test_client_without_last_event_id_gets_replays(autojump_clock: MockClock) -> None:
    async with scripted_proxy(RESET_AFTER_3, origin_upstream()) as sp:
        seen = await sse_client(
            sp, "10.0.0.2:40000", "Java-http-client/17.0.9", connections=4, resume=False, pause=2.5
        )
        await sp.journal.wait_for("closed", 4)
        records = list(sp.journal.records)
    assert seen == [["1", "2", "3"]] * 4  # the origin starts again at 1
    assert truth(seen) == (0, 9)
    report = analyse(journal_from_records(records))
    r = report.reconnects
    assert (r.reconnects, r.resume.sent_missing, r.resume.repeated) == (3, 3, 3)
    assert (r.resume.lost, r.resume.replayed) == (0, 9)
    assert [(h.client_check, h.server_check, h.replayed) for h in r.hops] == [
        ("missing", "repeated", 3)
    ] * 3
    assert r.delays.p50 == 2.5 and r.delays.max == 2.5
    assert report.clients[0].family == "java"
    text = flat(render_text(report))
    assert "repeated 3 times (9 events replayed)" in text
    assert "no Last-Event-ID sent, 3 replayed" in text


async def test_server_that_skips_ids_loses_events(autojump_clock: MockClock) -> None:
    async with scripted_proxy(RESET_AFTER_3, skipping_upstream(skip=2)) as sp:
        seen = await sse_client(
            sp, "10.0.0.3:40000", "python-httpx/0.27.0", connections=3, resume=True
        )
        await sp.journal.wait_for("closed", 3)
        records = list(sp.journal.records)
    assert seen == [["1", "2", "3"], ["6", "7", "8"], ["11", "12", "13"]]
    assert truth(seen) == (4, 0)
    report = analyse(journal_from_records(records))
    r = report.reconnects
    assert (r.resume.sent_ok, r.resume.skipped, r.resume.lost, r.resume.replayed) == (2, 2, 4, 0)
    assert [(h.client_check, h.server_check, h.lost) for h in r.hops] == [("ok", "skipped", 2)] * 2
    assert "skipped ahead 2 times (4 events lost)" in flat(render_text(report))


async def test_three_clients_in_one_run_through_the_cli(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    """All three at once, through a journal file and the command, each chain on its own."""
    journal = io.StringIO()
    async with scripted_proxy(RESET_AFTER_3, origin_upstream(), stream=journal) as sp:
        results: dict[str, list[list[str]]] = {}

        async def run(name: str, address: str, ua: str, resume: bool) -> None:
            results[name] = await sse_client(sp, address, ua, connections=3, resume=resume)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(run, "resumer", "10.0.0.1:1", "Mozilla/5.0 Firefox/121", True)
            nursery.start_soon(run, "forgetter", "10.0.0.2:1", "okhttp/4.12.0", False)
            nursery.start_soon(run, "curl", "10.0.0.3:1", "curl/8.4.0", False)
        await sp.journal.wait_for("closed", 9)
    path = tmp_path / "run.jsonl"
    path.write_text(journal.getvalue())
    result = CliRunner().invoke(report_command, [str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    chains = {row["label"]: row for row in data["reconnects"]["chain_rows"]}
    assert {
        label: (row["reconnects"], row["lost"], row["replayed"]) for label, row in chains.items()
    } == {
        "10.0.0.1 browser": (2, 0, 0),
        "10.0.0.2 java": (2, 0, 6),
        "10.0.0.3 curl": (2, 0, 6),
    }
    assert truth(results["resumer"]) == (0, 0) and truth(results["forgetter"]) == (0, 6)
    assert data["totals"]["streams"] == 9 and data["totals"]["still_open"] == 0
    text = flat(CliRunner().invoke(report_command, [str(path)]).output)
    assert "6 reconnects by 3 of 3 clients" in text
    assert "repeated 4 times (12 events replayed)" in text


async def test_idle_timeout_cuts_and_still_open_streams(autojump_clock: MockClock) -> None:
    """A silent stream cut by the idle timeout; a chatty one still open when the journal ends."""
    scenario = (
        '[scenario]\nname = "idle-20s"\n\n[[faults]]\ntype = "idle-timeout"\ntimeout = "20s"\n'
    )
    quiet = origin.OriginSettings(interval=100, heartbeat=30)
    async with scripted_proxy(scenario, origin_upstream(quiet)) as sp:
        got = await sp.client("10.0.0.9:1").get("/events", [("user-agent", "curl/8.4.0")])
        assert got.ending == "closed"
        sp.client("10.0.0.8:1")  # connects, never sends a request
        await trio.sleep(5)
        records = list(sp.journal.records)
    report = analyse(journal_from_records(records))
    assert report.totals.streams == 1 and report.totals.no_request == 1
    assert report.closes.rows[0].cause == "proxy/idle-timeout"
    assert report.durations.overall.max == 20.0
    (hb,) = report.heartbeats
    (check,) = hb.checks
    assert (check.fault, check.timeout, check.counts, check.fired, check.verdict) == (
        "idle-timeout",
        20.0,
        "bytes",
        1,
        "cut",
    )


async def test_a_half_open_drop_is_blamed_on_the_fault(autojump_clock: MockClock) -> None:
    """`idle-timeout action="drop"` forgets the flow; the client notices only 40 s later,
    by its own read timeout, and closes: the report blames the drop, not the client."""
    scenario = (
        '[scenario]\nname = "drop-20s"\n\n[[faults]]\ntype = "idle-timeout"\n'
        'timeout = "20s"\naction = "drop"\n'
    )
    quiet = origin.OriginSettings(interval=100, heartbeat=0)
    async with scripted_proxy(scenario, origin_upstream(quiet)) as sp:
        client = sp.client("10.0.0.9:1")
        with trio.move_on_after(60):  # the client's read timeout
            await client.get("/events", [("user-agent", "curl/8.4.0")])
        await client.stream.aclose()
        (closed,) = await sp.journal.wait_for("closed")
        records = list(sp.journal.records)
    assert (closed["by"], closed["reason"]) == ("client", "client-closed")  # as journaled
    report = analyse(journal_from_records(records))
    (row,) = report.closes.rows
    assert (row.cause, row.side, row.fault_type) == (
        "proxy/idle-timeout",
        "intermediary (fault)",
        "idle-timeout",
    )
    assert "flow dropped" in row.example_detail
    assert "100 % of the 1 stream that ended: proxy/idle-timeout" in flat(" ".join(report.summary))
    assert any("dropped the flow" in note and "c1" in note for note in report.notes)


async def test_a_keep_alive_connection_that_carries_three_streams(
    autojump_clock: MockClock,
) -> None:
    """Three streams, each ended by the server, one after the other on one connection:
    three streams and three ends in the report, not one."""
    quiet = origin.OriginSettings(interval=1, heartbeat=0)
    async with scripted_proxy("", origin_upstream(quiet)) as sp:
        sp.proxy.settings = replace(sp.proxy.settings, journal_events=True)
        client = sp.client("10.0.0.9:1")
        last = None
        for count in (2, 4, 6):
            headers = [("user-agent", "curl/8.4.0"), ("accept", "text/event-stream")]
            headers += [("last-event-id", last)] if last else []
            got = await client.get(f"/events?count={count}", headers)
            assert got.ending == "end"
            last = event_ids(got.body)[-1]
        await trio.sleep(1)
        await client.stream.aclose()
        await sp.journal.wait_for("closed")
        records = list(sp.journal.records)
    for events in (True, False):
        kept = [r for r in records if events or r["kind"] != "event"]
        report = analyse(journal_from_records(kept))
        t, c = report.totals, report.closes
        assert (t.connections, t.streams, t.requests) == (1, 3, 3)
        assert (c.established, c.closed, c.disconnect_rate) == (3, 3, 1.0)
        assert [(row.cause, row.count) for row in c.rows] == [("upstream/upstream-end", 3)]
        assert report.durations.overall.count == 3 and report.durations.overall.max == 1.0
        assert report.reconnects.reconnects == 2
        (group,) = report.clients
        assert (group.connections, group.streams, group.reconnects) == (1, 3, 2)
        assert [bar.conn for bar in report.timeline.bars] == ["c1#1", "c1#2", "c1#3"]
        assert any("carried several streams" in note for note in report.notes)
        if events:  # with event records the resume of each hop is checked exactly
            assert report.reconnects.resume.server_ok == 2
    assert "3 streams were established and 3 of them ended" in flat(render_text(report))
