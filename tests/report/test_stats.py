"""Percentiles, duration buckets, user-agent families and human durations."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sseproxy.report.stats import (
    BUCKETS,
    UA_FAMILIES,
    bucket_of,
    histogram,
    human_duration,
    percentile,
    summarize,
    ua_family,
)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([4, 1, 3, 2], 0) == 1 and percentile([4, 1, 3, 2], 100) == 4
    assert percentile([10], 99) == 10
    assert percentile([0, 10], 90) == 9.0
    assert percentile(list(range(101)), 99) == 99


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=2, max_size=60))
def test_percentile_agrees_with_statistics_inclusive(values: list[float]) -> None:
    cuts = statistics.quantiles(values, n=100, method="inclusive")  # p1 .. p99
    for q in (1, 10, 50, 90, 99):
        assert percentile(values, q) == pytest.approx(cuts[q - 1], rel=1e-9, abs=1e-6)
    assert min(values) <= percentile(values, 50) <= max(values)


def test_percentile_refuses_nothing_and_out_of_range() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary() -> None:
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert (s.count, s.min, s.p50, s.max, s.mean) == (4, 1.0, 2.5, 4.0, 2.5)
    assert s.p90 == pytest.approx(3.7) and s.p99 == pytest.approx(3.97)
    assert summarize([]).count == 0 and summarize([]).p50 is None


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [
        (0.0, "<1 s"),
        (0.999, "<1 s"),
        (1.0, "1-10 s"),
        (9.99, "1-10 s"),
        (10.0, "10-60 s"),
        (59.999, "10-60 s"),
        (60.0, "1-5 min"),  # an idle timeout of exactly 60 s lands with the minutes
        (299.9, "1-5 min"),
        (300.0, "5-10 min"),
        (599.0, "5-10 min"),
        (600.0, ">10 min"),
        (86400.0, ">10 min"),
        (math.inf, ">10 min"),
    ],
)
def test_buckets(seconds: float, bucket: str) -> None:
    assert bucket_of(seconds) == bucket


def test_histogram_has_every_bucket_in_order() -> None:
    counts = histogram([0.5, 5, 5, 45, 61, 3600])
    assert list(counts) == [label for label, _low, _high in BUCKETS]
    assert list(counts.values()) == [1, 2, 1, 1, 0, 1]
    assert sum(histogram([]).values()) == 0


@pytest.mark.parametrize(
    ("agent", "family"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/120.0.0.0 Safari/537.36",
            "browser",
        ),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "browser"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1",
            "browser",
        ),
        ("curl/8.4.0", "curl"),
        ("curl/7.88.1", "curl"),
        ("python-httpx/0.27.0", "python httpx"),
        ("python-requests/2.31.0", "python requests"),
        ("Python/3.11 aiohttp/3.9.1", "python aiohttp"),
        ("Python-urllib/3.11", "python"),
        ("Java-http-client/17.0.9", "java"),
        ("Java/1.8.0_392", "java"),
        ("Apache-HttpClient/5.2.1 (Java/17.0.9)", "java"),
        ("okhttp/4.12.0", "java"),
        ("ReactorNetty/1.1.13", "java"),
        ("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "node"),
        ("axios/1.6.2", "node"),
        ("undici", "node"),
        ("node", "other"),  # a bare word is too little to go on
        ("Go-http-client/1.1", "go"),
        ("Go-http-client/2.0", "go"),
        ("PostmanRuntime/7.36.0", "other"),
        ("sseproxy-probe/0.1.0", "probe"),  # `sseproxy probe`'s clients
        ("sseproxy-probe", "probe"),
        ("", "other"),
        (None, "other"),
    ],
)
def test_user_agent_families(agent: str | None, family: str) -> None:
    assert ua_family(agent) == family
    assert family in UA_FAMILIES


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.0, "0 ms"),
        (0.35, "350 ms"),
        (4.25, "4.2 s"),
        (4.0, "4 s"),
        (45.0, "45 s"),
        (60.0, "60 s"),
        (99.0, "99 s"),
        (185.0, "3 min 05 s"),
        (600.0, "10 min"),
        (7440.0, "2 h 04 min"),
        (math.inf, "inf"),
    ],
)
def test_human_duration(seconds: float | None, text: str) -> None:
    assert human_duration(seconds) == text
