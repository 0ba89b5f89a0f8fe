"""A run at a time scale: the report compares silences with the timeouts as they ran
(scaled) and shows the real-time value beside them."""

from __future__ import annotations

from sseproxy.report import analyse, journal_from_records, render_text
from sseproxy.scenario import parse_scenario
from tests.report.fixtures import Record, rec, stream

SCENARIO = parse_scenario(
    '[scenario]\nname = "slow"\n\n[[faults]]\ntype = "idle-timeout"\ntimeout = "60s"\n'
)


def started(**fields: object) -> Record:
    return rec("started", "-", 0.0, scenario="slow", **fields)


def cut_after(conn: str, start: float, seconds: float) -> list[Record]:
    return stream(
        conn,
        start,
        start + seconds,
        by="proxy",
        reason="idle-timeout",
        scenario="slow",
        faults=["idle-timeout"],
        longest_gap_down=seconds,
    )


def test_a_tenth_shows_scaled_and_real_times() -> None:
    records = [started(time_scale=0.1), *cut_after("c1", 1.0, 6.0), *cut_after("c2", 8.0, 6.0)]
    report = analyse(journal_from_records(records), SCENARIO)
    (check,) = report.heartbeats[0].checks
    assert check.timeout == 6.0  # what the run ran with
    assert check.verdict == "cut"
    assert "idle-timeout 6 s (60 s at real time)" in check.sentence
    assert report.totals.time_scales == [0.1]
    text = render_text(report)
    assert "time scale 0.1" in text.splitlines()[0]


def test_real_time_says_nothing_of_it() -> None:
    records = [started(), *cut_after("c1", 1.0, 60.0)]
    report = analyse(journal_from_records(records), SCENARIO)
    (check,) = report.heartbeats[0].checks
    assert "at real time" not in check.sentence and "idle-timeout 60 s" in check.sentence
    assert "time scale" not in render_text(report)


def test_a_change_of_scale_during_the_run_is_noted() -> None:
    records = [
        started(time_scale=0.1),
        *cut_after("c1", 1.0, 6.0),
        rec("time-scale", "-", 10.0, factor=0.5, by="control", scenario="slow"),
        *cut_after("c2", 11.0, 30.0),
    ]
    report = analyse(journal_from_records(records), SCENARIO)
    assert report.totals.time_scales == [0.1, 0.5]
    assert any("time scale changed" in note for note in report.notes)
