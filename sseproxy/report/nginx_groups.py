"""The requests grouped: by client family, by upstream, and into reconnects.

`ip_hash` keys on the first three octets of the client's IPv4 address, so each upstream
also counts the client /24 networks it served: a few big networks (an office behind one
NAT, a mobile carrier) on one server is an imbalance the log shows.
"""

from __future__ import annotations

import bisect
import functools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence

from sseproxy.report.nginx_causes import Why
from sseproxy.report.nginx_errors import ErrorEntry
from sseproxy.report.nginx_log import Request
from sseproxy.report.nginx_model import ClientRow, ReconnectSummary, UpstreamRow
from sseproxy.report.stats import percentile, summarize
from sseproxy.report.stats import ua_family as _ua_family

__all__ = ["clients", "median", "reconnects", "ua_family", "upstreams"]

ua_family = functools.lru_cache(maxsize=4096)(_ua_family)
"""A log has many requests from few user agents."""


def median(values: Iterable[float]) -> float | None:
    data = list(values)
    return percentile(data, 50) if data else None


def _area(path: str) -> str:
    """The first segment of a path (`/sse/a/b` -> `/sse`): the upstreams serving the same
    one most likely stand behind one `location` and one `upstream` pool."""
    return "/" + path.lstrip("/").split("/", 1)[0]


def _network(addr: str) -> str:
    parts = addr.split(".")
    return ".".join(parts[:3]) if len(parts) == 4 else addr


def reconnects(
    chosen: Sequence[Request], window: float
) -> tuple[ReconnectSummary, list[tuple[Request, Request]]]:
    by_client: dict[str, list[Request]] = defaultdict(list)
    for r in chosen:
        by_client[f"{r.addr} {r.user_agent}"].append(r)
    hops: list[tuple[Request, Request]] = []
    for mine in by_client.values():
        # Several streams of one address and user agent at once (tabs, clients behind one
        # NAT, a probe's clients): each request follows the latest-ended earlier one that
        # no other request followed yet, so three streams cut together and back together
        # are three reconnects, not one.
        mine.sort(key=lambda r: (r.start, r.line))
        waiting: list[tuple[float, int, Request]] = []  # by end: not yet followed
        for index, following in enumerate(mine):
            slack = 0.01 if following.exact else 1.0  # $time_local: to the second
            at = bisect.bisect_right(waiting, (following.start + slack, math.inf))
            if at and following.start - waiting[at - 1][0] <= window:
                previous = waiting.pop(at - 1)[2]
                hops.append((previous, following))
            bisect.insort(waiting, (following.end, index, following))
    delays = [max(0.0, b.start - a.end) for a, b in hops]
    clients = len({f"{a.addr} {a.user_agent}" for a, _ in hops})
    return ReconnectSummary(window, len(hops), clients, summarize(delays)), hops


def clients(chosen: Sequence[Request], whys: Sequence[Why]) -> list[ClientRow]:
    by_family: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(chosen):
        by_family[ua_family(r.user_agent)].append(i)
    rows = []
    for family, members in by_family.items():
        agents = Counter(chosen[i].user_agent or "(none)" for i in members)
        rows.append(
            ClientRow(
                family=family,
                requests=len(members),
                streams=sum(1 for i in members if 200 <= chosen[i].status < 300),
                clients=len({chosen[i].addr for i in members}),
                p50_duration=median(chosen[i].duration for i in members),
                top_cause=Counter(whys[i].cause for i in members).most_common(1)[0][0],
                user_agents=[a for a, _ in agents.most_common(3)],
            )
        )
    return sorted(rows, key=lambda c: (-c.requests, c.family))


def upstreams(
    chosen: Sequence[Request], whys: Sequence[Why], retries: dict[int, list[ErrorEntry]]
) -> list[UpstreamRow]:
    by_upstream: dict[str, list[int]] = defaultdict(list)
    paths: dict[str, set[str]] = defaultdict(set)
    tried: Counter[str] = Counter()
    for i, r in enumerate(chosen):
        by_upstream[r.upstream or "(none)"].append(i)
        paths[r.upstream or "(none)"].add(_area(r.path))
        tried.update(r.tried)
    n = len(chosen)
    rows = [
        UpstreamRow(
            upstream=upstream,
            requests=len(members),
            share=len(members) / n if n else 0.0,
            streams=sum(1 for i in members if 200 <= chosen[i].status < 300),
            status_502=sum(1 for i in members if chosen[i].status == 502),
            status_504=sum(1 for i in members if chosen[i].status == 504),
            failed_tries=tried.get(upstream, 0),
            clients=len({chosen[i].addr for i in members}),
            networks=len({_network(chosen[i].addr) for i in members}),
            p50_duration=median(chosen[i].duration for i in members),
            top_cause=Counter(whys[i].cause for i in members).most_common(1)[0][0],
            pool=sorted(u for u in by_upstream if paths[u] & paths[upstream] and u != "(none)"),
        )
        for upstream, members in by_upstream.items()
    ]
    return sorted(rows, key=lambda u: (-u.requests, u.upstream))
