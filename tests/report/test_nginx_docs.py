"""The nginx-log docs paste the format the parser reads, and show what the report says."""

from __future__ import annotations

import re
from pathlib import Path

from sseproxy.nginx_format import LOG_FORMAT
from sseproxy.report.nginx_analysis import analyse_nginx
from sseproxy.report.nginx_errors import read_error_log
from sseproxy.report.nginx_log import read_access_log
from sseproxy.report.nginx_render import render_nginx_text

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_the_line_to_paste_is_the_one_the_parser_reads() -> None:
    for page in (ROOT / "README.md", DOCS / "nginx-log.md", DOCS / "probe.md"):
        assert LOG_FORMAT in page.read_text(encoding="utf-8"), page


def test_the_example_output_is_what_the_report_says_of_the_example_logs() -> None:
    access = read_access_log(str(DOCS / "example-nginx-access.log"))
    errors = read_error_log(str(DOCS / "example-nginx-error.log"))
    current = render_nginx_text(analyse_nginx(access, errors))
    page = (DOCS / "nginx-log.md").read_text(encoding="utf-8")
    shown = re.search(r"\n```\n(sseproxy report --nginx-log: .*?)\n```\n", page, re.DOTALL)
    assert shown is not None
    body = shown.group(1).split("\n", 1)[1]  # the first line names the files as run
    assert body.strip() in current, "docs/nginx-log.md shows an old report of the example logs"
