"""docs/testing.md: its quick start is a real test, under 20 lines: it passes a correct
client and catches one that reconnects without Last-Event-ID under every seed."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

DOCS = Path(__file__).parents[2] / "docs" / "testing.md"
INSTALLED = any(ep.value == "sseproxy.testing.plugin" for ep in entry_points(group="pytest11"))
PLUGIN = [] if INSTALLED else ["-p", "sseproxy.testing.plugin"]

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


# The same client with the bug the quick start is there to catch: it reconnects, but
# without Last-Event-ID (and gives up after a few attempts, to keep this test short).
NAIVE = """
import httpx
from httpx_sse import SSEError, connect_sse


def read_events(url, attempts=5):
    ids = []
    with httpx.Client(timeout=5) as client:
        for _ in range(attempts):
            try:
                with connect_sse(client, "GET", url) as source:
                    for event in source.iter_sse():
                        ids.append(int(event.id))
            except (httpx.TransportError, SSEError):
                continue
            if ids and ids[-1] == 20:
                break
    return ids
"""

# Stop at the first failing example (no shrinking) and keep no example database, so that
# each seed is tried on its own and the test stays short.
FIRST_FAILURE = """
from hypothesis import Phase, settings

settings.register_profile(
    "first-failure", database=None, phases=[Phase.explicit, Phase.generate],
    report_multiple_bugs=False,
)
settings.load_profile("first-failure")
"""

# The quick start's test, run once per seed (what `--hypothesis-seed N` does).
UNDER_SEEDS = """

import pytest
from hypothesis import seed

_quick_start = test_my_client_loses_and_repeats_nothing
del test_my_client_loses_and_repeats_nothing


@pytest.mark.parametrize("n", range(SEEDS))
def test_under_seed(n):
    seed(n)(_quick_start)()
"""


def example(heading: str) -> str:
    """The first Python block after `heading` in docs/testing.md."""
    text = DOCS.read_text(encoding="utf-8")
    section = text[text.index(heading) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None
    return match.group(1)


def quick_start() -> str:
    return example("## Quick start")


def test_the_quick_start_is_under_20_lines_and_passes(pytester: pytest.Pytester) -> None:
    code = quick_start()
    assert len([line for line in code.splitlines() if line.strip()]) < 20
    pytester.mkpydir("my_app")
    pytester.path.joinpath("my_app", "sse.py").write_text(CLIENT)
    pytester.makepyfile(test_quick_start=code)
    pytester.syspathinsert()
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_the_quick_start_catches_a_client_without_last_event_id_under_every_seed(
    pytester: pytest.Pytester,
) -> None:
    pytester.mkpydir("my_app")
    pytester.path.joinpath("my_app", "sse.py").write_text(NAIVE)
    pytester.makeconftest(FIRST_FAILURE)
    pytester.makepyfile(test_quick_start=quick_start() + UNDER_SEEDS.replace("SEEDS", "20"))
    pytester.syspathinsert()
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=20)
    # each one a falsified example, not an error (hypothesis' CI profile prints each twice)
    assert result.stdout.str().count("Falsifying example") >= 20


# A trio client for the in-memory example: the correct one of tests/testing/clients.py.
TRIO_CLIENT = """
from tests.testing.clients import reconnecting_client


async def my_client(connect):
    return await reconnecting_client(connect, want=600)
"""


def test_the_in_memory_example_runs_when_copied_into_a_project(pytester: pytest.Pytester) -> None:
    """No `trio_mode` in the project's configuration: the example's marker is enough."""
    pytester.mkpydir("my_app")
    pytester.path.joinpath("my_app", "sse.py").write_text(TRIO_CLIENT)
    pytester.makepyfile(test_in_memory=example("### In memory, in virtual time"))
    pytester.syspathinsert()
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_fresh_proxy_per_example_inside_given(pytester: pytest.Pytester) -> None:
    """The documented way passes hypothesis' health checks, with a proxy per example."""
    pytester.mkpydir("my_app")
    pytester.path.joinpath("my_app", "sse.py").write_text(CLIENT)
    code = example("### A fresh proxy per example")
    assert "sseproxy_factory" not in code and "with run_proxy(" in code
    pytester.makepyfile(test_per_example=code)
    pytester.syspathinsert()
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", *PLUGIN)
    result.assert_outcomes(passed=1)
    # the factory fixture, by contrast, is refused inside @given
    pytester.makepyfile(
        test_factory=code.replace("(sseproxy_origin, scenario)", "(sseproxy_factory, scenario)")
        .replace("with run_proxy(sseproxy_origin, scenario) as proxy:", "if True:")
        .replace("proxy.url", "sseproxy_factory(None, scenario).url")
    )
    refused = pytester.runpytest_inprocess("-p", "no:cacheprovider", *PLUGIN, "test_factory.py")
    refused.assert_outcomes(failed=1)
    assert "function_scoped_fixture" in refused.stdout.str()
