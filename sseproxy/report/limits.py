"""Known limits that end long-lived requests, and durations clustered next to them.

A stream cut by a timeout lasts about as long as the timeout (an idle timeout: the time
to the last byte plus the timeout, which for a quiet stream is the timeout), so a pile of
requests that all lasted 60 s points at something with a 60 s limit. The limits come
from the presets (every `timeout` or `limit` of a fault that acts on the response: nginx
60 s, ALB 60 s, Cloudflare 100 s, Heroku 30 s and 55 s, the user story's 300 s and 600 s
...), so a new preset adds its limit here without a code change; `DOCUMENTED` adds the
few from docs/REFERENCES that have no preset, and `--limit` the user's own.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sseproxy.errors import SseproxyError
from sseproxy.scenario import load_scenario, preset_names
from sseproxy.units import parse_duration

__all__ = [
    "DOCUMENTED",
    "Cluster",
    "Limit",
    "Source",
    "clusters",
    "known_limits",
    "nearest",
    "parse_limit",
    "tolerance",
]

LIMIT_PARAMS = ("timeout", "limit")
"""Fault parameters that are a limit on how long something may take."""


@dataclass(frozen=True)
class Source:
    """One thing with this limit: a preset's fault, a documented default, or the user's."""

    label: str
    preset: str | None = None
    fault_type: str | None = None


@dataclass
class Limit:
    seconds: float
    sources: list[Source] = field(default_factory=list)

    @property
    def presets(self) -> list[str]:
        return list(dict.fromkeys(s.preset for s in self.sources if s.preset))

    @property
    def label(self) -> str:
        return "; ".join(s.label for s in self.sources)


DOCUMENTED: tuple[tuple[float, str], ...] = (
    (29.0, "AWS API Gateway REST integration timeout"),
    (30.0, "CloudFront origin response timeout; Azure Front Door origin response timeout"),
    (60.0, "AWS CLB idle timeout"),
    (300.0, "Node.js requestTimeout; undici bodyTimeout; MCP SDK sse_read_timeout; aiohttp total"),
    (900.0, "Cloudflare idle connection (520)"),
    (3600.0, "Envoy HCM idle_timeout"),
)
"""Limits from docs/REFERENCES that no preset carries (seconds, who)."""


@functools.cache
def _preset_sources() -> tuple[tuple[float, Source], ...]:
    found: list[tuple[float, Source]] = []
    for name in preset_names():
        try:
            scenario = load_scenario(name)
        except SseproxyError:  # a broken preset is the preset tests' business
            continue
        for spec in scenario.faults:
            if spec.direction == "up":  # times the request, not the stream
                continue
            for param in LIMIT_PARAMS:
                value = spec.settings.get(param)
                if isinstance(value, int | float) and value > 0:
                    label = f"{name}: {spec.name}" + (
                        f" ({spec.type})" if spec.name != spec.type else ""
                    )
                    found.append((float(value), Source(label, name, spec.type)))
    return tuple(found)


def known_limits(extra: Iterable[tuple[float, str]] = ()) -> list[Limit]:
    """Every known limit, one per value, sorted; `extra` first (the user knows best)."""
    by_value: dict[float, Limit] = {}
    entries = [(s, Source(f"{label} (--limit)")) for s, label in extra]
    entries += list(_preset_sources())
    entries += [(s, Source(label)) for s, label in DOCUMENTED]
    for seconds, source in entries:
        by_value.setdefault(seconds, Limit(seconds)).sources.append(source)
    return sorted(by_value.values(), key=lambda limit: limit.seconds)


def parse_limit(text: str) -> tuple[float, str]:
    """`--limit 300s` or `--limit 300s=our nginx proxy_read_timeout`."""
    value, _, label = text.partition("=")
    return parse_duration(value.strip(), bare_seconds=True), label.strip() or "your limit"


def tolerance(seconds: float) -> float:
    """How far from a limit a duration may be and still be its doing: timers fire a little
    late (nginx's by up to 300 ms on purpose), and the access log's start is to a second
    only for long ones."""
    return max(0.5, 0.05 * seconds)


def _width(seconds: float) -> float:
    """How wide a pile may grow from its shortest duration: `$request_time` is to the
    millisecond, and timers that fire a little late (nginx's lazy timers: 300 ms) or a
    client's reconnect jitter spread a limit's requests by about that."""
    return max(0.1 if seconds < 1 else 0.35, 0.03 * seconds)


def nearest(seconds: float, limits: Sequence[Limit]) -> Limit | None:
    close = [x for x in limits if abs(seconds - x.seconds) <= tolerance(x.seconds)]
    return min(close, key=lambda x: abs(seconds - x.seconds), default=None)


@dataclass
class Cluster:
    low: float
    high: float
    members: list[int]
    """Indexes into the durations given."""
    centre: float
    limit: Limit | None


MIN_SHARE = 0.1
"""A pile away from every known limit is shown when it holds this share of the requests."""


NEIGHBOURHOOD = (0.8, 1.25)
"""Around a pile, the durations from 0.8 to 1.25 times its start are its background."""


def _stands_out(count: int, start: float, ordered: Sequence[float]) -> bool:
    """The pile holds at least three times what the durations around it would put in a span
    of its width, plus one: thousands of clients closing tabs at random times make a few
    requests last 600 s by chance, and that is no pile at the 600 s limit."""
    low, high = start * NEIGHBOURHOOD[0], start * NEIGHBOURHOOD[1]
    around = bisect.bisect_right(ordered, high) - bisect.bisect_left(ordered, low) - count
    width = _width(start)
    span = max(high - low - width, width)
    return count >= 3 * around * width / span + 1


def clusters(
    durations: Sequence[float],
    limits: Sequence[Limit],
    telling: Callable[[list[int]], bool] = lambda members: False,
) -> list[Cluster]:
    """Piles of nearly equal durations, largest first.

    Sorted durations are cut where the next one is further from the pile's first than
    `_width` allows, so a pile is never wider than a timer's slack and durations spread
    evenly make no pile. A pile is kept when it stands out from the durations around it
    (`_stands_out`) and either sits at a known limit, or is `telling` (its members have a
    cause that names a limit), or holds MIN_SHARE of everything (and at least 3).
    """
    order = sorted(range(len(durations)), key=lambda i: durations[i])
    ordered = [durations[i] for i in order]
    piles: list[list[int]] = []
    for i in order:
        if piles and durations[i] - durations[piles[-1][0]] <= _width(durations[piles[-1][0]]):
            piles[-1].append(i)
        else:
            piles.append([i])
    found = []
    for pile in piles:
        values = sorted(durations[i] for i in pile)
        centre = values[len(values) // 2]
        limit = nearest(centre, limits)
        big = len(pile) >= max(3, MIN_SHARE * len(durations))
        named = len(pile) >= 2 and (limit is not None or telling(pile))
        if (named or big) and _stands_out(len(pile), values[0], ordered):
            found.append(Cluster(values[0], values[-1], sorted(pile), centre, limit))
    return sorted(found, key=lambda c: (-len(c.members), c.centre))
