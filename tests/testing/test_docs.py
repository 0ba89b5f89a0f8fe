"""docs/testing.md: its quick start is a real test, under 20 lines, and it passes."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOCS = Path(__file__).parents[2] / "docs" / "testing.md"
INSTALLED = any(ep.value == "sseproxy.testing.plugin" for ep in entry_points(group="pytest11"))

# What a user's client could be: httpx-sse, resuming with Last-Event-ID.
CLIENT = """
import httpx
from httpx_sse import SSEError, connect_sse


def read_events(url, attempts=40):
    ids, last_id = [], ""
    with httpx.Client(timeout=5) as client:
        for _ in range(attempts):
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with connect_sse(client, "GET", url, headers=headers) as source:
                    for event in source.iter_sse():
                        ids.append(int(event.id))
                        last_id = event.id
            except (httpx.TransportError, SSEError):
                continue
            if ids and ids[-1] == 20:
                break
    return ids
"""


def quick_start() -> str:
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index("## Quick start") :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def test_the_quick_start_is_under_20_lines_and_passes(pytester: pytest.Pytester) -> None:
    code = quick_start()
    assert len([line for line in code.splitlines() if line.strip()]) < 20
    pytester.mkpydir("my_app")
    pytester.path.joinpath("my_app", "sse.py").write_text(CLIENT)
    pytester.makepyfile(test_quick_start=code)
    pytester.syspathinsert()
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
