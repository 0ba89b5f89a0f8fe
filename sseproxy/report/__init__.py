"""`sseproxy report`: why streams died, from the proxy's own journal.

    journals = read_journals(["run.jsonl"])
    report = analyse(journals)            # a `Report` (dataclasses; asdict() is the JSON)
    print(render_text(report))
    Path("report.html").write_text(render_html(report))

Modules: `reader` reads journals into `records` (a `Connection` each); `analysis` (with
`reconnects`, `heartbeats`, `causes`, `timeline`) builds the `model`; `text` and `html`
(with `page`, the page's CSS and script) render it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sseproxy.report.analysis import analyse
from sseproxy.report.html import render_html
from sseproxy.report.model import Report
from sseproxy.report.reader import journal_from_records, read_journals
from sseproxy.report.records import Journals
from sseproxy.report.text import render_text

__all__ = [
    "Journals",
    "Report",
    "analyse",
    "journal_from_records",
    "read_journals",
    "render_html",
    "render_json",
    "render_text",
    "to_dict",
]

JSON_VERSION = 1


def to_dict(report: Report) -> dict[str, Any]:
    return {"version": JSON_VERSION, **dataclasses.asdict(report)}


def render_json(report: Report) -> str:
    return json.dumps(to_dict(report), indent=2, allow_nan=False) + "\n"
