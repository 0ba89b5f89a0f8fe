"""`sseproxy ctl scenario load` of a file with many mistakes: every one, a line each, as
`scenarios validate` words them (issue 15 item 4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from sseproxy.cli import main
from tests.test_ctl import Live, _live
from tests.test_scenario import TEN_MISTAKES


@pytest.fixture
def live() -> Iterator[Live]:
    yield from _live()


def test_scenario_load_prints_every_error(live: Live, tmp_path: Path) -> None:
    bad = tmp_path / "ten.toml"
    bad.write_text(TEN_MISTAKES)
    refused = live.ctl("scenario", "load", str(bad))
    assert refused.exit_code == 1
    validated = CliRunner().invoke(main, ["scenarios", "validate", str(bad)])
    expected = [line.replace("invalid  ", "Error: ", 1) for line in validated.output.splitlines()]
    assert refused.output.splitlines() == expected
    assert len(expected) == 10
    assert live.names() == ["latency"]  # kept
