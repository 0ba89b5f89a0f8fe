"""`sseproxy report`: output forms, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sseproxy.report_cli import report_command
from tests.report.fixtures import rec, stream


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    records = [
        *stream(
            "c1",
            0,
            60,
            first_id="1",
            last_id="5",
            events=5,
            by="proxy",
            reason="proxy_read_timeout",
            detail="no byte for 60s",
            scenario="nginx-default",
            faults=["proxy_read_timeout"],
        ),
        rec(
            "fault",
            "c1",
            60.0,
            fault="proxy_read_timeout",
            action="close",
            detail="no byte for 60s",
            scenario="nginx-default",
        ),
        *stream(
            "c2",
            63,
            70,
            last_event_id="5",
            first_id="6",
            last_id="7",
            events=2,
            scenario="nginx-default",
        ),
    ]
    path = tmp_path / "run.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_text_tables(journal: Path) -> None:
    result = CliRunner().invoke(report_command, [str(journal)])
    assert result.exit_code == 0, result.output
    for heading in (
        "TOTALS",
        "CLOSES (streams)",
        "DURATIONS",
        "CLIENTS",
        "RECONNECTS",
        "HEARTBEATS",
    ):
        assert f"\n{heading}" in result.output
    assert "proxy/proxy_read_timeout" in result.output
    assert "idle-timeout 60 s (proxy_read_timeout)" in " ".join(result.output.split())


def test_json_and_html(journal: Path, tmp_path: Path) -> None:
    page = tmp_path / "out" / "r.html"
    page.parent.mkdir()
    result = CliRunner().invoke(report_command, [str(journal), "--json", "--html", str(page)])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)  # nothing but the JSON on stdout
    assert data["reconnects"]["resume"]["sent_ok"] == 1
    assert page.read_text().startswith("<!DOCTYPE html>")


def test_stdin(journal: Path) -> None:
    result = CliRunner().invoke(report_command, ["-", "--json"], input=journal.read_text())
    assert result.exit_code == 0
    assert json.loads(result.output)["totals"]["connections"] == 2


def test_scenario_option_and_reconnect_window(journal: Path) -> None:
    result = CliRunner().invoke(
        report_command,
        [str(journal), "--json", "--scenario", "idle-3s", "--reconnect-window", "1s"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["reconnects"]["reconnects"] == 0  # 3 s apart, window 1 s
    assert data["reconnects"]["window"] == 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["missing.jsonl"], "journal missing.jsonl: no such file"),
        (["{journal}", "--scenario", "no-such-preset"], "no-such-preset: no such file"),
        (["{journal}", "--html", "/nonexistent-dir/r.html"], "cannot write /nonexistent-dir"),
        (["{journal}", "--reconnect-window", "soon"], "'soon' is not a duration"),
    ],
)
def test_errors_are_one_line_and_exit_2(journal: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(report_command, [a.format(journal=journal) for a in args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("content", ["", "\n\n", "not json\n", '{"no": "kind"}\n'])
def test_a_journal_without_a_journal_line_exits_2(tmp_path: Path, content: str) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text(content)
    result = CliRunner().invoke(report_command, [str(empty)])
    assert result.exit_code == 2, result.output
    assert f"{empty}: no journal line" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_usage() -> None:
    assert CliRunner().invoke(report_command, []).exit_code == 2
    text = CliRunner().invoke(report_command, ["--help"]).output
    assert "sseproxy report run.jsonl --html report.html" in text


def test_registered_in_the_main_command() -> None:
    from sseproxy.cli import main

    if "report" not in main.commands:
        pytest.skip("cli.py does not register `report` yet")
    assert main.commands["report"] is report_command
