"""The report's sentences: counted nouns agree with their numbers, and every sentence
comes from the journal being reported (no fixed figures, nothing from outside)."""

from __future__ import annotations

import json
import re

from sseproxy.report import analyse, render_html, render_text
from sseproxy.report.reader import build
from tests.report.fixtures import rec, stream

BAD_PLURAL = re.compile(
    r"\b1 (streams|connections|attempts|faults|journal lines|reconnects|clients|events|"
    r"requests|resumes|resumed connections|times)\b|\b0 times\b|\b1 [a-z ]*?were\b"
)
OUTSIDE = ("user story", "146", "180 'cancelled'", "123 'established'")


def one_of_each() -> str:
    """A journal with one of everything the report counts, and one unreadable line."""
    records = [
        *stream("c1", 0, 10, first_id="1", last_id="4", events=4, by="proxy", reason="cut"),
        rec("fault", "c1", 10, fault="cut", action="close", detail="after 4 events"),
        *stream("c2", 11, 12, status=503, content_type="text/plain", last_event_id="4"),
        *stream("c3", 13, None, first_id="1", last_id="1", events=1),
    ]
    return "".join(json.dumps(r) + "\n" for r in records) + '{"t": 1, "kind\n'


def test_one_of_each_is_said_in_the_singular() -> None:
    report = analyse(build([("one.jsonl", one_of_each().splitlines(keepends=True))]))
    text = render_text(report)
    flat = " ".join(text.split())
    assert BAD_PLURAL.search(flat) is None, BAD_PLURAL.search(flat)
    assert "1 journal line could not be read" in flat
    assert "1 attempt never became a stream" in flat
    assert "1 attempt failed and was not counted" in flat
    assert "not sent back as Last-Event-ID once" in flat
    html = " ".join(re.sub(r"<[^>]+>", " ", render_html(report)).split())
    assert BAD_PLURAL.search(html) is None, BAD_PLURAL.search(html)


def test_no_fixed_sentence_or_outside_text_in_any_report() -> None:
    for journal in (one_of_each(), ""):
        report = analyse(build([("j.jsonl", journal.splitlines(keepends=True))]))
        for output in (render_text(report), render_html(report)):
            for phrase in OUTSIDE:
                assert phrase not in output


def test_the_counting_hint_comes_from_the_journal() -> None:
    report = analyse(build([("one.jsonl", one_of_each().splitlines(keepends=True))]))
    # 2 streams, 1 ended, 1 failed attempt: counting it with the ended one gives 1 of 2
    assert "counting it with the 1 that ended would give 100 %" in report.closes.explanation
