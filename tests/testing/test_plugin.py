"""The pytest plugin: fixtures and `--sseproxy-journal`, run in a pytester sandbox."""

from __future__ import annotations

import json
from importlib.metadata import entry_points

import pytest

pytest_plugins = ["pytester"]

INSTALLED = any(ep.value == "sseproxy.testing.plugin" for ep in entry_points(group="pytest11"))
PLUGIN = [] if INSTALLED else ["-p", "sseproxy.testing.plugin"]

TESTS = """
import httpx

QUERY = "/events?interval=0&heartbeat=0&count=3"
CUT = "[[faults]]\\ntype = 'cut'\\nevents = 1\\nhow = 'end'\\n"

def test_origin(sseproxy_origin):
    assert "id: 3" in httpx.get(sseproxy_origin + QUERY).text

def test_factory(sseproxy_origin, sseproxy_factory):
    proxy = sseproxy_factory(sseproxy_origin, CUT)
    assert "id: 2" not in httpx.get(proxy.url + QUERY).text
    assert proxy.wait_for_closed(1)[0]["events_down"] == 1

def test_fails(sseproxy_factory):
    proxy = sseproxy_factory()
    httpx.get(proxy.url + QUERY)
    proxy.wait_for_closed(1)
    assert False, "the client lost an event"

def test_fails_with_two_proxies(sseproxy_factory):
    sseproxy_factory()
    sseproxy_factory()
    assert False
"""


def test_fixtures_and_journals_of_failing_tests(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sample=TESTS)
    folder = pytester.path / "journals"
    result = pytester.runpytest_inprocess(*PLUGIN, f"--sseproxy-journal={folder}")
    result.assert_outcomes(passed=2, failed=2)
    kept = sorted(path.name for path in folder.iterdir())
    assert kept == [
        "test_sample.py_test_fails.jsonl",
        "test_sample.py_test_fails_with_two_proxies.1.jsonl",
        "test_sample.py_test_fails_with_two_proxies.2.jsonl",
    ]
    lines = (folder / kept[0]).read_text().splitlines()
    kinds = [json.loads(line)["kind"] for line in lines]
    assert kinds[0] == "started" and "closed" in kinds


def test_without_the_option_nothing_is_written(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_sample=TESTS)
    result = pytester.runpytest_inprocess(*PLUGIN, "-k", "fails")
    result.assert_outcomes(failed=2, deselected=2)
    assert not (pytester.path / "journals").exists()


def test_the_option_is_in_the_help(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_inprocess(*PLUGIN, "--help")
    result.stdout.fnmatch_lines(["*--sseproxy-journal=DIR*"])


def test_the_origin_settings_can_be_overridden(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
import pytest
from sseproxy.testing import OriginSettings

@pytest.fixture(scope="session")
def sseproxy_origin_settings():
    return OriginSettings(interval=0, heartbeat=0, count=2)
"""
    )
    pytester.makepyfile(
        """
import httpx

def test_it(sseproxy_origin):
    assert httpx.get(sseproxy_origin + "/events").text.count("id: ") == 2
"""
    )
    pytester.runpytest_inprocess(*PLUGIN).assert_outcomes(passed=1)


def test_only_the_last_ten_journals_are_kept(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
def test_many(sseproxy_factory):
    for _ in range(12):
        sseproxy_factory()
    assert False
"""
    )
    folder = pytester.path / "kept"
    pytester.runpytest_inprocess(*PLUGIN, f"--sseproxy-journal={folder}").assert_outcomes(failed=1)
    names = sorted(path.name for path in folder.iterdir())
    assert len(names) == 10
    # padded, so that names sort in the order the proxies started: the last is the replay
    assert names[0] == "test_only_the_last_ten_journals_are_kept.py_test_many.01.jsonl"
    assert names[-1] == "test_only_the_last_ten_journals_are_kept.py_test_many.10.jsonl"
    started = [
        json.loads(path.read_text().splitlines()[0])["listen"] for path in sorted(folder.iterdir())
    ]
    assert len(set(started)) == 10
