"""`sseproxy probe`'s command line: usage errors, help, the status line."""

from __future__ import annotations

import io

import pytest
import trio
from click.testing import CliRunner

from sseproxy.cli import main
from sseproxy.probe.output import Progress
from tests.probe.scripted import resuming, run_probe


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ftp://example.com/sse"], "give a URL starting with http://, https://"),
        (["http:///events"], "no host"),
        (["http://127.0.0.1:1/", "--header", "no colon"], "write NAME:VALUE"),
        (["http://127.0.0.1:1/", "--duration", "0s"], "--duration must be more than 0"),
        (["http://127.0.0.1:1/", "--watchdog", "soon"], "is not a duration"),
        (["http://127.0.0.1:1/", "--journal", "-"], "--journal: give a file"),
        (["http://127.0.0.1:1/", "--journal", "/nonexistent/dir/j.jsonl"], "cannot write"),
        (["http://127.0.0.1:1/", "--insecure"], "--ca and --insecure need an https:// URL"),
        (["http://127.0.0.1:1/", "--ca", "ca.pem"], "--ca and --insecure need an https:// URL"),
        (["https://127.0.0.1:1/", "--ca", "/nonexistent.pem"], "--ca /nonexistent.pem: no such"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["probe", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output


def test_help_has_examples() -> None:
    result = CliRunner().invoke(main, ["probe", "--help"])
    assert result.exit_code == 0
    assert "sseproxy probe http://127.0.0.1:8080/events --clients 10" in result.output
    assert "sseproxy probe https://localhost:8443/events --ca ca.pem" in result.output
    options = ("--max-drops", "--max-gap", "--no-loss", "--min-duration", "--watchdog", "--ca")
    for option in (*options, "--insecure"):
        assert option in result.output


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_the_status_line_is_rewritten_in_place_on_a_terminal(autojump_clock: object) -> None:
    shown, piped = _Terminal(), io.StringIO()
    terminal, pipe = Progress(shown), Progress(piped)
    probe, _ = await run_probe([resuming(2.0), resuming(9.0)], duration=6.0)
    for progress in (terminal, pipe):
        progress(probe)
        progress.clear()
    text = shown.getvalue()
    assert text.startswith("\rprobe ")
    assert "open 0/1" in text and "connects 2  drops 1  events 2" in text
    assert text.endswith("\r\x1b[K")
    assert piped.getvalue() == ""  # no progress noise in a log or a pipe
    assert trio.current_time() == pytest.approx(6.0)
