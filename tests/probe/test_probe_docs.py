"""docs/probe.md shows what the commands print of the run kept in docs/probe-example/.

The recipe's run was kept: nginx's config and logs, both probes' `--json`, and both
journals of the run through sseproxy. The page's outputs must be what the current code
prints of them, so a change of wording or of analysis shows here (the recipe itself runs
in test_recipe.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from sseproxy.cli import main
from sseproxy.probe.output import render_text
from sseproxy.probe.verdicts import Thresholds, check

DOCS = Path(__file__).resolve().parents[2] / "docs"
RUN = DOCS / "probe-example"
PAGE = (DOCS / "probe.md").read_text(encoding="utf-8")


def shown_after(command: str) -> list[str]:
    """The lines the page shows after `$ command`, up to the next command or block end."""
    start = PAGE.index(f"$ {command}\n") + len(command) + 3
    block = PAGE[start : PAGE.index("\n```", start)]
    return block.split("\n$ ", 1)[0].split("\n")


def probe_text(name: str) -> str:
    result = json.loads((RUN / name).read_text(encoding="utf-8"))
    result.pop("verdicts")
    return render_text(result, check(result, Thresholds(max_drops=0)))


def report(*args: str) -> str:
    result = CliRunner().invoke(main, ["report", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_nginx_config_is_the_one_run() -> None:
    conf = (RUN / "nginx.conf").read_text(encoding="utf-8")
    assert f"```nginx\n{conf}```" in PAGE


def test_the_probe_through_nginx_is_what_probe_prints() -> None:
    shown = shown_after(
        "sseproxy probe http://127.0.0.1:8000/events --clients 3 --duration 11s --max-drops 0"
    )
    assert "\n".join(shown) + "\n" == probe_text("probe-nginx.json")


def test_the_log_report_is_what_report_prints_of_that_nginx_logs() -> None:
    shown = shown_after("sseproxy report --nginx-log access.log --nginx-error-log error.log")
    logs = (
        "--nginx-log",
        str(RUN / "nginx-access.log"),
        "--nginx-error-log",
        str(RUN / "nginx-error.log"),
    )
    printed = report(*logs).split("\n")
    assert shown[1:] == printed[1 : len(shown)]  # the first line names the files as given
    assert printed[len(shown) :] == [""]


def test_the_run_through_sseproxy_is_what_probe_and_report_print() -> None:
    """Shown in part: every line shown is printed, in order ('...' leaves lines out)."""
    probe = shown_after(
        "sseproxy probe http://127.0.0.1:8080/events --clients 3 --duration 11s --max-drops 0 "
        "--journal probe.jsonl"
    )
    merged = shown_after("sseproxy report probe.jsonl run.jsonl")
    printed = probe_text("probe-sseproxy.json").split("\n")
    assert_in_order(probe, printed)
    assert_in_order(
        merged[1:], report(str(RUN / "probe.jsonl"), str(RUN / "run.jsonl")).split("\n")
    )
    assert re.fullmatch(r"sseproxy report: probe\.jsonl, run\.jsonl \(2 runs, .*\)", merged[0])


def assert_in_order(shown: list[str], printed: list[str]) -> None:
    at = 0
    for line in shown:
        if line == "...":
            continue
        assert line in printed[at:], (
            f"docs/probe.md shows a line the command no longer prints: {line!r}"
        )
        at = printed.index(line, at) + 1
