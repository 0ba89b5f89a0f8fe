"""Small, pure helpers of the report: percentiles, duration buckets, user-agent families.

Percentiles interpolate linearly between the two nearest ranks (numpy's default, and
`statistics.quantiles(method="inclusive")`): p50 of 1, 2, 3, 4 is 2.5, and p0/p100 are
the minimum and maximum, so a percentile never lies outside the data.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "BUCKETS",
    "NUMERIC",
    "UA_FAMILIES",
    "Summary",
    "bucket_of",
    "histogram",
    "human_duration",
    "percentile",
    "summarize",
    "ua_family",
]

BUCKETS: tuple[tuple[str, float, float], ...] = (
    ("<1 s", 0.0, 1.0),
    ("1-10 s", 1.0, 10.0),
    ("10-60 s", 10.0, 60.0),
    ("1-5 min", 60.0, 300.0),
    ("5-10 min", 300.0, 600.0),
    (">10 min", 600.0, math.inf),
)
"""(label, low, high): a duration d is in the bucket where low <= d < high."""


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) of non-empty `values`, linearly interpolated."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q!r} is not between 0 and 100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def bucket_of(seconds: float) -> str:
    """The histogram bucket of a duration (negative durations count as '<1 s')."""
    for label, _low, high in BUCKETS:
        if seconds < high:
            return label
    return BUCKETS[-1][0]  # NaN ends up here; journals never hold one


def histogram(values: Sequence[float]) -> dict[str, int]:
    """How many values fall in each bucket, every bucket present, in order."""
    counts = {label: 0 for label, _low, _high in BUCKETS}
    for value in values:
        counts[bucket_of(value)] += 1
    return counts


@dataclass(frozen=True)
class Summary:
    """Distribution of some durations, in seconds (None everywhere when there are none)."""

    count: int
    min: float | None = None
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None
    mean: float | None = None


def summarize(values: Sequence[float]) -> Summary:
    if not values:
        return Summary(0)
    return Summary(
        count=len(values),
        min=min(values),
        p50=percentile(values, 50),
        p90=percentile(values, 90),
        p99=percentile(values, 99),
        max=max(values),
        mean=sum(values) / len(values),
    )


# -- user agents --------------------------------------------------------------------------

UA_FAMILIES = (
    "probe",
    "browser",
    "curl",
    "python httpx",
    "python requests",
    "python aiohttp",
    "python",
    "java",
    "node",
    "go",
    "other",
)

_UA_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern, re.IGNORECASE))
    for family, pattern in (
        ("probe", r"^sseproxy-probe\b"),
        ("curl", r"^curl/|\blibcurl\b"),
        ("python httpx", r"\bpython-httpx/|\bhttpx\b"),
        ("python requests", r"\bpython-requests/"),
        ("python aiohttp", r"\baiohttp/"),
        ("python", r"\bpython-urllib|\bpython/|\bpython-[a-z]+/"),
        (
            "java",
            r"\bjava/|\bapache-httpclient/|\bokhttp/|\breactor-?netty/|\bjetty/|"
            r"\bjava-http-client/|\bspring\b|\bvert\.x\b",
        ),
        ("node", r"\bnode(\.js)?/|\bnode-fetch/|\baxios/|\bundici\b|\bgot \("),
        ("go", r"^go-http-client/|\bgo/\d|^go "),
        ("browser", r"^mozilla/\d"),
    )
)


def ua_family(user_agent: str | None) -> str:
    """probe (`sseproxy probe`'s own clients), browser, curl, python httpx/requests/aiohttp
    (or plain python), java, node, go, other.

    Tools come first: bots and libraries that also start with 'Mozilla/' say who they are
    later in the string, browsers never mention curl or okhttp.
    """
    if not user_agent:
        return "other"
    for family, pattern in _UA_RULES:
        if pattern.search(user_agent):
            return family
    return "other"


# -- for people ---------------------------------------------------------------------------

NUMERIC = re.compile(r"^-?[0-9][0-9.]*( ?(ms|s|min|h|%)( [0-9]+ (s|min))?)?$|^-$")
"""A table cell to right-align: a number, a duration from `human_duration`, a share."""


def human_duration(seconds: float | None) -> str:
    """'-', '350 ms', '4.2 s', '45 s', '3 min 05 s', '2 h 04 min'."""
    if seconds is None or math.isnan(seconds):
        return "-"
    if seconds == math.inf:
        return "inf"
    if seconds < 0:
        return "-" + human_duration(-seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        text = f"{seconds:.1f}"
        return f"{text.removesuffix('.0')} s"
    if seconds < 99.5:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min" if rest == 0 else f"{minutes} min {rest:02d} s"
    hours, rest = divmod(round(seconds) // 60, 60)
    return f"{hours} h" if rest == 0 else f"{hours} h {rest:02d} min"
