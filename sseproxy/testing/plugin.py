"""The pytest plugin (entry point `pytest11: sseproxy`): fixtures and `--sseproxy-journal`.

Fixtures:

* `sseproxy_origin`: the base URL of the built-in SSE server, one per session (events at
  `{url}/events`; a query string such as `?interval=0&count=20` shapes each stream);
  override `sseproxy_origin_settings` to change its defaults;
* `sseproxy_factory`: `sseproxy_factory(upstream=None, scenario=None, **options)`
  starts a proxy (`run_proxy` arguments) and returns its `ThreadedProxy`; every proxy
  started is stopped after the test. Works in sync, asyncio and trio tests.

`--sseproxy-journal DIR` writes the journal of every proxy a failing test started
(through the fixtures, `open_proxy`, `run_proxy` or `memory_proxy`) to
`DIR/<test id>.jsonl` (JSON Lines; `.<n>.jsonl` when it started several, keeping the
last 10 and numbering them `.01` ... `.10` so that they sort in order: with hypothesis,
the last is the replay of the minimal failing example).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Generator, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from sseproxy.journal import Journal
from sseproxy.origin import OriginSettings
from sseproxy.testing import _proxy
from sseproxy.testing._proxy import ScenarioLike
from sseproxy.testing._threaded import ThreadedProxy, run_origin, run_proxy

__all__ = [
    "ProxyFactory",
    "sseproxy_factory",
    "sseproxy_origin",
    "sseproxy_origin_settings",
]

ProxyFactory = Callable[..., ThreadedProxy]
KEPT_JOURNALS = 10
_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sseproxy")
    group.addoption(
        "--sseproxy-journal",
        metavar="DIR",
        default=None,
        help="Keep the sseproxy journals (JSON Lines) of failing tests in DIR.",
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(_REPORTS, {})[report.when] = report
    return report


@pytest.fixture(scope="session")
def sseproxy_origin_settings() -> OriginSettings:
    """What `sseproxy_origin` serves by default (override this fixture to change it)."""
    return OriginSettings()


@pytest.fixture(scope="session")
def sseproxy_origin(sseproxy_origin_settings: OriginSettings) -> Iterator[str]:
    """Base URL of the built-in SSE server (events at `{url}/events`), one per session."""
    with run_origin(sseproxy_origin_settings) as url:
        yield url


@pytest.fixture
def sseproxy_factory() -> Iterator[ProxyFactory]:
    """`factory(upstream=None, scenario=None, **options)` -> a started `ThreadedProxy`."""
    with ExitStack() as stack:

        def start(
            upstream: str | None = None, scenario: ScenarioLike = None, **options: Any
        ) -> ThreadedProxy:
            return stack.enter_context(run_proxy(upstream, scenario, **options))

        yield start


@pytest.fixture(autouse=True)
def _sseproxy_journals(request: pytest.FixtureRequest) -> Iterator[None]:
    folder = request.config.getoption("sseproxy_journal", None)
    if folder is None:
        yield
        return
    journals: list[Journal] = []
    _proxy._watchers.append(journals.append)
    try:
        yield
    finally:
        _proxy._watchers.remove(journals.append)
    reports = request.node.stash.get(_REPORTS, {})
    if journals and any(report.failed for report in reports.values()):
        _keep(Path(folder), request.node.nodeid, journals[-KEPT_JOURNALS:])


def _keep(folder: Path, nodeid: str, journals: list[Journal]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid).strip("_")
    width = len(str(len(journals)))  # .01 ... .10: names sort in the order proxies started
    for index, journal in enumerate(journals, start=1):
        name = f"{stem}.jsonl" if len(journals) == 1 else f"{stem}.{index:0{width}}.jsonl"
        lines = [json.dumps(record, separators=(",", ":")) for record in list(journal.records)]
        (folder / name).write_text("".join(line + "\n" for line in lines), encoding="utf-8")
