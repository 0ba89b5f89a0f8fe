"""The result of a probe: totals, drops by how they were seen, verdicts, text, journal."""

from __future__ import annotations

import json

import pytest

from sseproxy.journal import Journal
from sseproxy.probe.journaling import ProbeJournal
from sseproxy.probe.output import render_text
from sseproxy.probe.summary import summarize
from sseproxy.probe.verdicts import Thresholds, check
from sseproxy.report import analyse, journal_from_records, to_dict
from tests.probe.scripted import REFUSED, resuming, run_probe, settings


async def _idle_cut_run(**kw: object) -> dict[str, object]:
    # 2 clients; every stream: one event, 2 s of silence, then cut mid-body (as nginx's
    # proxy_read_timeout 2s does). Attempts at 0, 5, 10 s: cut at 2 and 7; open at 12.
    probe, _ = await run_probe([resuming(2.0) for _ in range(6)], clients=2, duration=12.0, **kw)
    return summarize(probe)


async def test_drops_are_grouped_by_how_they_were_seen_with_their_silence(
    autojump_clock: object,
) -> None:
    result = await _idle_cut_run()
    totals = result["totals"]
    assert isinstance(totals, dict)
    assert (totals["attempts"], totals["connects"], totals["drops"]) == (6, 6, 4)
    assert totals["drops_by"] == {"incomplete chunked body": 4}
    assert totals["open_at_end"] == 2
    assert totals["ids"] == {
        "numeric": True,
        "lost": 0,
        "duplicated": 0,
        "lost_in_stream": 0,
        "duplicated_in_stream": 0,
    }
    assert totals["reconnect_delays"] == {"count": 4, "p50": 3.0, "p90": 3.0, "max": 3.0}
    assert totals["durations"] == {"count": 4, "p50": 2.0, "p90": 2.0, "max": 2.0}
    assert totals["longest_event_gap"] == 5.0  # 2 s silence + 3 s reconnect
    (group,) = result["drops"]  # type: ignore[misc]
    assert group["silence_before"]["p50"] == 2.0
    assert "every one after ~2.0 s without a byte" in group["pattern"]
    json.dumps(result)  # all of it is JSON


async def test_failed_verdicts_name_the_drops_and_their_cause(autojump_clock: object) -> None:
    result = await _idle_cut_run()
    verdicts = check(result, Thresholds(max_drops=0, max_gap=4.0, no_loss=True, min_duration=10.0))
    lines = {v.option: (v.ok, v.line) for v in verdicts}
    assert lines["max-drops"] == (
        False,
        "--max-drops 0: 4 drops: 4 incomplete chunked body "
        "(each ~2.0 s after the last byte: an idle timeout)",
    )
    assert lines["max-gap"][0] is False and "5.0 s" in lines["max-gap"][1]
    assert lines["no-loss"][0] is True
    assert lines["min-duration"] == (
        False,
        "--min-duration 10s: 4 of 4 streams ended sooner (shortest 2.0 s: incomplete chunked body)",
    )
    text = render_text(result, verdicts)
    assert "FAIL --max-drops 0: 4 drops" in text
    assert "ok   --no-loss" in text
    assert "4  incomplete chunked body, 2.0 s after the last byte" in text


async def test_thresholds_that_hold_pass(autojump_clock: object) -> None:
    result = await _idle_cut_run()
    verdicts = check(result, Thresholds(max_drops=4, max_gap=5.0, min_duration=2.0))
    assert all(v.ok for v in verdicts), verdicts


async def test_no_loss_fails_when_ids_skip_and_when_they_are_not_integers(
    autojump_clock: object,
) -> None:
    probe, _ = await run_probe([resuming(1.0)], duration=2.0, last_event_id="5")
    (verdict,) = check(summarize(probe), Thresholds(no_loss=True))
    assert verdict.ok  # it resumed at 6

    probe, _ = await run_probe([resuming(1.0)], duration=2.0, last_event_id="3")
    probe.records[0].ids.observe("9", 1)  # as if 5..8 never came after 4
    (verdict,) = check(summarize(probe), Thresholds(no_loss=True))
    assert not verdict.ok and "4 events lost (0 across reconnects, 4 inside" in verdict.line

    probe.records[0].ids.observe("x9", 1)
    (verdict,) = check(summarize(probe), Thresholds(no_loss=True))
    assert not verdict.ok and "not integers" in verdict.line


async def test_the_probe_journal_reads_as_a_proxy_journal(autojump_clock: object) -> None:
    journal = Journal(keep=True)
    hooks = ProbeJournal(journal, settings(clients=2, duration=12.0))
    await run_probe([REFUSED, *(resuming(2.0) for _ in range(6))], hooks, clients=2, duration=12.0)
    kinds = [r["kind"] for r in journal.records]
    assert kinds[0] == "started" and journal.records[0]["role"] == "probe"
    report = to_dict(analyse(journal_from_records(journal.records), None))
    row, *_ = report["closes"]["rows"]
    assert (row["cause"], row["count"], row["p50_duration"]) == ("upstream/upstream-closed", 4, 2.0)
    resume = report["reconnects"]["resume"]
    assert (resume["sent_ok"], resume["server_ok"], resume["lost"]) == (3, 3, 0)
    assert report["reconnects"]["chains"] == 2  # one per probe client (its session)
    # its user agent (sseproxy-probe/VERSION) is a family of its own
    assert {c["family"] for c in report["clients"]} == {"probe"}
    closed = [r for r in journal.records if r["kind"] == "closed"]
    reasons = [r["reason"] for r in closed]
    assert (reasons.count("upstream-closed"), reasons.count("upstream-refused")) == (4, 1)
    assert reasons.count("client-closed") == 1  # open when the probe stopped
    assert {r["seen_as"] for r in closed if r["reason"] == "upstream-closed"} == {
        "incomplete chunked body"
    }
    cut = next(r for r in closed if r["reason"] == "upstream-closed")
    assert cut["longest_gap_down"] == pytest.approx(2.0)


def test_id_check_integers_and_not() -> None:
    from sseproxy.probe.record import IdCheck

    ids = IdCheck("2")
    for event_id, attempt in [("3", 1), ("5", 1), ("4", 2), ("6", 2), ("9", 3), ("", 3)]:
        ids.observe(event_id, attempt)
    assert (ids.lost_in_stream, ids.duplicated, ids.lost, ids.numeric) == (1, 1, 2, True)

    words = IdCheck()
    for event_id, attempt in [("a", 1), ("b", 1), ("a", 2), ("b", 2), ("c", 2), ("c", 2)]:
        words.observe(event_id, attempt)
    assert (words.numeric, words.duplicated, words.duplicated_in_stream) == (False, 2, 1)


async def test_the_text_lists_at_most_20_clients(autojump_clock: object) -> None:
    probe, _ = await run_probe([resuming(9.0) for _ in range(25)], clients=25, duration=1.0)
    text = render_text(summarize(probe), [])
    assert "(5 more clients: --json has them all)" in text
    assert "\n    20  " in text and "\n    21  " not in text
