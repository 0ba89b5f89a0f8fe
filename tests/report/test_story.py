"""The user story's situation, replayed: the report names each drop and the events lost.

nginx (proxy_read_timeout 60 s) with 30 s comment heartbeats never cuts a stream; the Java
clients' 45 s event watchdog does, on every quiet spell, and since they reconnect without
Last-Event-ID they lose what was published while they were away (during the deployment).
The browsers resume and lose nothing. docs/example-journal.jsonl is one such run.
"""

from __future__ import annotations

from pathlib import Path

from trio.testing import MockClock

from sseproxy.report import Report, analyse, journal_from_records, read_journals, render_text
from tests.report.story import DOCS, run_story, story_scenario


def findings(report: Report) -> dict[str, object]:
    """What must hold in every run of the story (the journal's order may differ)."""
    t, c, r = report.totals, report.closes, report.reconnects
    return {
        "totals": (t.connections, t.streams, t.failed_attempts, t.other_requests, t.still_open),
        "closes": [(row.cause, row.side, row.count) for row in c.rows],
        "failed": [(f.status, f.cause, f.count) for f in c.failed],
        "resume": (
            r.reconnects,
            r.resume.sent_ok,
            r.resume.sent_missing,
            r.resume.lost,
            r.resume.replayed,
        ),
        "lost by client": {row.label: row.lost for row in r.chain_rows},
        "verdicts": [(x.fault, x.verdict) for hb in report.heartbeats for x in hb.checks],
    }


async def test_the_story(autojump_clock: MockClock) -> None:
    report = analyse(journal_from_records(await run_story()), story_scenario())
    found = findings(report)
    closes = {cause: (side, n) for cause, side, n in found["closes"]}  # type: ignore[attr-defined]
    assert closes["proxy/client-watchdog"][0] == "client (fault)"
    assert closes["proxy/deploy-reset"][0] == "intermediary (fault)"
    assert closes["proxy/client-watchdog"][1] > closes["client/client-closed"][1]
    assert "proxy/proxy_read_timeout" not in closes  # the comment heartbeats keep nginx happy
    assert found["verdicts"] == [("proxy_read_timeout", "ok"), ("client-watchdog", "cut")]
    (hb,) = report.heartbeats
    assert (hb.longest_gap, hb.longest_event_gap) == (30.0, 90.0)  # heartbeats, quiet spells
    assert [status for status, _cause, _n in found["failed"]] == ["503"]  # type: ignore[attr-defined]
    lost = found["lost by client"]
    assert isinstance(lost, dict)
    assert all(n > 0 for label, n in lost.items() if "java" in label)
    assert all(n == 0 for label, n in lost.items() if "browser" in label)
    assert report.closes.disconnect_rate is not None and report.closes.disconnect_rate <= 1
    text = " ".join(render_text(report).split())
    assert "Comment heartbeats do not reset it: only events do." in text
    assert "at most 30 s between bytes, idle-timeout 60 s (proxy_read_timeout): kept alive" in text
    assert "between events, client-watchdog 45 s: streams that quiet are cut" in text

    # the committed example is a run of this story
    example = Path(DOCS / "example-journal.jsonl")
    assert example.is_file(), f"{example} is missing (.gitignore has *.jsonl: git add -f it)"
    committed = analyse(read_journals([str(example)]), story_scenario())
    assert findings(committed) == found
