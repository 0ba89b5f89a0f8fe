"""The HTML report: self-contained, and its timeline really renders in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import trio
from click.testing import CliRunner
from trio.testing import MockClock

from sseproxy import origin
from sseproxy.report import Report, analyse, journal_from_records, render_html
from sseproxy.report_cli import report_command
from tests.report.fixtures import rec, stream
from tests.report.scripted import origin_upstream, scripted_proxy, sse_client

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
]

SCENARIO = """
[scenario]
name = "mixed"
[[faults]]
type = "reset"
events = 3
match = { headers = { user-agent = "curl*" } }
[[faults]]
type = "idle-timeout"
timeout = "20s"
"""


async def scripted_report() -> Report:
    """A run with resets, an idle timeout and an open stream, in virtual time."""
    quiet = origin.OriginSettings(interval=1, heartbeat=0)
    async with scripted_proxy(SCENARIO, origin_upstream(quiet)) as sp:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(
                lambda: sse_client(sp, "10.0.0.1:1", "curl/8.4.0", connections=3, resume=True)
            )
            nursery.start_soon(
                lambda: sse_client(
                    sp,
                    "10.0.0.2:1",
                    "Mozilla/5.0 Firefox/121",
                    connections=2,
                    resume=True,
                    target="/events?interval=30",
                )
            )
        sp.client("10.0.0.3:1")  # connects, sends nothing: still open at the end
        await sp.journal.wait_for("closed", 5)
        await trio.sleep(1)
        records = list(sp.journal.records)
    return analyse(journal_from_records(records, "scripted.jsonl"))


def test_the_page_is_self_contained_and_escapes_its_data() -> None:
    records = stream(
        "c1", 0, 5, ua="</script><script>alert(1)</script>", first_id="1", last_id="2", events=2
    )
    page = render_html(analyse(journal_from_records(records)))
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert "<script>alert(1)</script>" not in page
    assert page.count("</script>") == 2  # the data block and the code, nothing injected
    assert "&lt;/script&gt;" in page  # the tables show it, escaped


@needs_chromium
async def test_chromium_draws_one_bar_per_connection(
    autojump_clock: MockClock, tmp_path: Path
) -> None:
    report = await scripted_report()
    bars = report.timeline.bars
    assert len(bars) == 6 and len(report.timeline.rows) == 3
    assert report.timeline.markers and report.timeline.gaps
    page = tmp_path / "report.html"
    page.write_text(render_html(report))
    dom = await trio.to_thread.run_sync(dump_dom, page, tmp_path)
    drawn = re.findall(r'<rect [^>]*class="bar[^"]*"[^>]*data-conn="([^"]+)"', dom)
    assert sorted(drawn) == sorted(b.conn for b in bars)
    assert len(re.findall(r'<path [^>]*class="marker"', dom)) == len(report.timeline.markers)
    assert len(re.findall(r'<line [^>]*class="gap', dom)) == len(report.timeline.gaps)
    for cause in {b.cause for b in bars if b.kind not in ("request", "no-request")}:
        assert f" {cause} (" in dom  # the legend names every colour
    labels = re.findall(r"<text [^>]*>([^<]*)</text>", dom)
    assert "10.0.0.1 curl" in labels and "10.0.0.2 browser" in labels


@needs_chromium
def test_chromium_screenshot_of_the_cli_output(tmp_path: Path) -> None:
    journal = tmp_path / "j.jsonl"
    records = [
        *stream("c1", 0, 60, first_id="1", last_id="5", events=5),
        *stream("c2", 61, 90, last_event_id="5", first_id="9", last_id="9", events=1),
        rec("fault", "c2", 90.0, fault="cut", action="close", detail="x"),
    ]
    journal.write_text("".join(__import__("json").dumps(r) + "\n" for r in records))
    page = tmp_path / "r.html"
    result = CliRunner().invoke(report_command, [str(journal), "--html", str(page)])
    assert result.exit_code == 0, result.output
    assert f"HTML report: {page}" in result.output
    png = tmp_path / "shot.png"
    run_chromium([f"--screenshot={png}", "--window-size=1400,1000", page.as_uri()], tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def run_chromium(args: list[str], tmp: Path) -> str:
    assert CHROMIUM is not None
    profile = tmp / "chromium-profile"
    done = subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def dump_dom(page: Path, tmp: Path) -> str:
    return run_chromium(["--dump-dom", page.as_uri()], tmp)
