"""nginx's logs -> an `NginxReport`: which requests were streams, why each ended, how long
they lasted next to the known limits, which clients and which upstreams.

Why a request ended comes from nginx itself when the error log is given (joined by
connection number, see `nginx_errors`); otherwise from what the access log allows: the
status (499, 502, 504 say who failed) and, for a started stream, a duration that sits at
a known limit. A 200 that lasted some other time could have been ended by either side,
and the report says so rather than guess.
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sseproxy.report.limits import Cluster, Limit, Source, clusters, known_limits
from sseproxy.report.model import Bar, Gap, Row, Timeline
from sseproxy.report.nginx_errors import ErrorEntry, ErrorLog, join
from sseproxy.report.nginx_log import AccessLog, Request
from sseproxy.report.nginx_model import (
    CauseRow,
    ClientRow,
    ClusterRow,
    NginxReport,
    NginxTotals,
    ReconnectSummary,
    RequestRow,
    StatusRow,
    UpstreamRow,
)
from sseproxy.report.stats import histogram, human_duration, percentile, summarize
from sseproxy.report.stats import ua_family as _ua_family
from sseproxy.words import plural

__all__ = ["RECONNECT_WINDOW", "analyse_nginx", "select"]

ua_family = functools.lru_cache(maxsize=4096)(_ua_family)
"""A log has many requests from few user agents."""

RECONNECT_WINDOW = 120.0
MAX_ROWS = 250
"""Timeline rows drawn at most."""

_STATUS_MEANING = {
    499: "the client went away before the response head (nginx's own code)",
    502: "the upstream failed: refused, reset, closed or answered garbage",
    503: "unavailable: nginx's limit_req/limit_conn, or the upstream said so",
    504: "the upstream did not answer in time (proxy_read_timeout, proxy_connect_timeout)",
}
_PALETTES = {
    "client": ("#4e79a7", "#7aa6d6", "#2b4f75"),
    "server": ("#59a14f", "#8cd17d", "#3b7a33"),
    "nginx": ("#e15759", "#f28e2b", "#b6392d"),
    "limit": ("#edc948", "#b07aa1"),
    "not nginx": ("#b07aa1", "#d4a6c8"),
    "unknown": ("#9a9a9a", "#bab0ac"),
}
_NGINX_TWIN = {
    "proxy_read_timeout": ("nginx-default", "proxy_read_timeout"),
    "proxy_read_timeout-before-head": ("nginx-default", "proxy_read_timeout"),
    "send_timeout": ("nginx-default", "send_timeout"),
}
"""Error-log causes that a preset's fault plays, when the pile sits at no known limit."""


@dataclass
class _Why:
    cause: str
    side: str
    source: str
    meaning: str
    detail: str


def select(
    requests: Sequence[Request], paths: Sequence[str], accept: bool
) -> tuple[list[Request], str]:
    """The requests that look like SSE streams, and how they were chosen."""
    if paths:
        chosen = [r for r in requests if any(fnmatch.fnmatchcase(r.path, p) for p in paths)]
        return chosen, f"path {' or '.join(paths)}"
    if accept:
        chosen = [r for r in requests if r.accept and "text/event-stream" in r.accept]
        return chosen, "Accept: text/event-stream"
    return list(requests), "every request (no --path, and $http_accept not logged)"


def _status_why(request: Request) -> _Why | None:
    if request.status == 499:
        return _Why("client-closed-before-head", "client", "status", _STATUS_MEANING[499], "")
    if request.status == 502:
        if request.duration < 0.05:
            return _Why(
                "upstream-refused",
                "server",
                "inferred",
                "502 at once: most likely nothing listened at the upstream",
                "",
            )
        return _Why("upstream-failed", "server", "status", _STATUS_MEANING[502], "")
    if request.status == 504:
        return _Why("upstream-timeout", "server", "status", _STATUS_MEANING[504], "")
    if not 200 <= request.status < 300:
        meaning = _STATUS_MEANING.get(request.status, f"answered {request.status}")
        return _Why(f"status-{request.status}", "server", "status", meaning, "")
    return None


def _why(
    request: Request,
    entry: ErrorEntry | None,
    errors: ErrorLog | None,
    limit: Limit | None,
) -> _Why:
    if entry is not None and entry.cause is not None:
        cause = entry.cause
        key = cause.key
        meaning = cause.meaning
        if key == "client-closed" and request.status == 499:
            key, meaning = "client-closed-before-head", _STATUS_MEANING[499]
        return _Why(key, cause.side, "error log", meaning, entry.message)
    by_status = _status_why(request)
    if by_status is not None:
        return by_status
    if errors is not None and errors.info:
        return _Why(
            "upstream-end",
            "server",
            "error log",
            "no error line although clients' going away is logged (info level): the "
            "upstream ended the response",
            "",
        )
    if limit is not None and errors is not None:  # nginx would have logged its own timeout
        return _Why(
            f"at the {human_duration(limit.seconds)} limit",
            "not nginx",
            "inferred",
            "lasted as long as a known limit, and nginx logged no timeout of its own: "
            "something in front of nginx, the client, or the upstream ending on time: "
            + limit.label,
            "",
        )
    if limit is not None:
        return _Why(
            f"at the {human_duration(limit.seconds)} limit",
            "limit",
            "inferred",
            "lasted as long as a known limit (nginx's, or one in front of it or in the "
            "client): " + limit.label,
            "",
        )
    if errors is not None:
        return _Why(
            "ended-no-error",
            "unknown",
            "error log",
            "no error line: the upstream ended it, or the client went away (logged only "
            "with `error_log ... info`)",
            "",
        )
    return _Why(
        "ended",
        "unknown",
        "inferred",
        "ended by the client or the upstream: only the error log can tell which",
        "",
    )


SHOWN_SOURCES = 3


def _setting(seconds: float) -> float:
    """The round number someone would have configured for a timeout that fired after
    `seconds` (the earliest of a pile: timers fire a little late, rarely early)."""
    if seconds < 10:
        return round(seconds, 1)
    if seconds < 100:
        return float(round(seconds))
    return float(round(seconds / 5) * 5)


def _known_as(limit: Limit, presets: Sequence[str]) -> str:
    """Who has the limit, the likeliest first, a few only (`sources` in the JSON has all)."""
    rank = {name: n for n, name in enumerate(presets)}
    ordered = sorted(limit.sources, key=lambda x: rank.get(x.preset or "", len(rank)))
    shown = "; ".join(x.label for x in ordered[:SHOWN_SOURCES])
    more = len(ordered) - SHOWN_SOURCES
    return shown + (f" and {more} more" if more > 0 else "")


def _reproduce(
    pile: Cluster, whys: Sequence[_Why], statuses: Sequence[int]
) -> tuple[list[str], str, str]:
    """(presets at its limit, an `sseproxy run` that reproduces it, what it is known as)."""
    sides = Counter(w.side for w in whys)
    causes = Counter(w.cause for w in whys)
    side = sides.most_common(1)[0][0]
    top = causes.most_common(1)[0][0]
    if pile.limit is not None and pile.limit.presets:

        def nginx_first(name: str) -> int:
            return 0 if name == "nginx-default" else 1 if name.startswith("nginx") else 2

        # nginx's logs: nginx is the first suspect, unless its error log says the client
        # went away (something in front of nginx, or the client itself, did it), or the
        # upstream ended on time, or nginx logged no timeout of its own
        presets = sorted(pile.limit.presets, key=nginx_first)
        if side in ("client", "not nginx", "server"):
            presets = sorted(presets, key=lambda name: nginx_first(name) < 2)
        command = f"sseproxy run --scenario {presets[0]}" if presets else ""
        return presets, command, _known_as(pile.limit, presets)
    twin = _NGINX_TWIN.get(top)
    why = "error log"
    if twin is None and 504 in statuses:
        twin, why = _NGINX_TWIN["proxy_read_timeout"], "its 504s last as long"
    label = pile.limit.label if pile.limit else ""  # documented or --limit: no preset
    if twin is not None:
        preset, fault = twin
        value = f"{_setting(pile.low):g}s"
        seen = f"nginx {fault} ~{human_duration(pile.centre)} ({why})"
        return (
            [preset],
            f"sseproxy run --scenario {preset} (with {fault} = {value})",
            f"{label}; {seen}" if label else seen,
        )
    return [], "", label


def _summary_of(values: Iterable[float]) -> float | None:
    data = list(values)
    return percentile(data, 50) if data else None


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


def _area(path: str) -> str:
    """The first segment of a path (`/sse/a/b` -> `/sse`): the upstreams serving the same
    one most likely stand behind one `location` and one `upstream` pool."""
    return "/" + path.lstrip("/").split("/", 1)[0]


def _network(addr: str) -> str:
    parts = addr.split(".")
    return ".".join(parts[:3]) if len(parts) == 4 else addr


def _reconnects(
    chosen: Sequence[Request], window: float
) -> tuple[ReconnectSummary, list[tuple[Request, Request]]]:
    by_client: dict[str, list[Request]] = defaultdict(list)
    for r in chosen:
        by_client[f"{r.addr} {r.user_agent}"].append(r)
    hops: list[tuple[Request, Request]] = []
    for mine in by_client.values():
        mine.sort(key=lambda r: (r.start, r.line))
        for previous, following in itertools.pairwise(mine):
            slack = 0.01 if previous.exact and following.exact else 1.0  # $time_local: 1 s
            if -slack <= following.start - previous.end <= window:
                hops.append((previous, following))
    delays = [max(0.0, b.start - a.end) for a, b in hops]
    clients = len({f"{a.addr} {a.user_agent}" for a, _ in hops})
    return ReconnectSummary(window, len(hops), clients, summarize(delays)), hops


def analyse_nginx(
    access: AccessLog,
    errors: ErrorLog | None = None,
    *,
    paths: Sequence[str] = (),
    limits: Iterable[tuple[float, str]] = (),
    reconnect_window: float = RECONNECT_WINDOW,
) -> NginxReport:
    known = known_limits(limits)
    chosen, selection = select(access.requests, paths, access.accept_logged)
    chosen.sort(key=lambda r: (r.start, r.line))
    joined = join(chosen, errors) if errors is not None else None
    durations = [r.duration for r in chosen]

    def telling(members: list[int]) -> bool:
        """A pile that names nginx's read timeout: its 504s, or its error log."""
        if any(chosen[i].status == 504 for i in members):
            return True
        if joined is None:
            return False
        entries = [joined.causes.get(chosen[i].line) for i in members]
        return any(e is not None and e.cause and e.cause.key in _NGINX_TWIN for e in entries)

    piles = clusters(durations, known, telling)
    limit_of: dict[int, Limit] = {}
    for pile in piles:
        limit = pile.limit
        if limit is None and any(chosen[i].status == 504 for i in pile.members):
            seen = f"nginx proxy_read_timeout ~{human_duration(pile.centre)} (504s last as long)"
            limit = Limit(pile.centre, [Source(seen)])
        if limit is not None:
            limit_of.update((i, limit) for i in pile.members)
    whys = [
        _why(
            r,
            joined.causes.get(r.line) if joined else None,
            errors,
            limit_of.get(i) if 200 <= r.status < 300 else None,
        )
        for i, r in enumerate(chosen)
    ]
    n = len(chosen)
    share = (lambda k: k / n) if n else (lambda k: 0.0)

    by_cause: dict[str, list[int]] = defaultdict(list)
    for i, w in enumerate(whys):
        by_cause[w.cause].append(i)
    causes = [
        CauseRow(
            cause=cause,
            side=whys[members[0]].side,
            source=whys[members[0]].source,
            count=len(members),
            share=share(len(members)),
            p50_duration=_summary_of(chosen[i].duration for i in members),
            meaning=whys[members[0]].meaning,
            example=next((whys[i].detail for i in members if whys[i].detail), ""),
        )
        for cause, members in by_cause.items()
    ]
    causes.sort(key=lambda c: (-c.count, c.cause))

    status_counts = Counter(r.status for r in chosen)
    statuses = [
        StatusRow(
            status,
            count,
            share(count),
            "a stream started; the status says nothing about how it ended"
            if 200 <= status < 300
            else _STATUS_MEANING.get(status, f"answered {status}"),
        )
        for status, count in sorted(status_counts.items(), key=lambda x: (-x[1], x[0]))
    ]

    rows = []
    for pile in piles:
        pile_whys = [whys[i] for i in pile.members]
        codes = [chosen[i].status for i in pile.members]
        presets, command, known_as = _reproduce(pile, pile_whys, codes)
        rows.append(
            ClusterRow(
                centre=pile.centre,
                low=pile.low,
                high=pile.high,
                count=len(pile.members),
                share=share(len(pile.members)),
                limit=pile.limit.seconds if pile.limit else None,
                known_as=known_as,
                sources=[x.label for x in pile.limit.sources] if pile.limit else [],
                presets=presets,
                reproduce=command,
                causes=dict(Counter(w.cause for w in pile_whys).most_common()),
                statuses=dict(Counter(str(chosen[i].status) for i in pile.members).most_common()),
            )
        )

    clients = _clients(chosen, whys)
    upstreams = _upstreams(chosen, whys, joined.retries if joined else {})
    reconnect, hops = _reconnects(chosen, reconnect_window)
    requests = [
        RequestRow(
            line=r.line,
            start=r.start,
            end=r.end,
            duration=r.duration,
            client=r.addr,
            family=ua_family(r.user_agent),
            method=r.method,
            target=r.target,
            status=r.status,
            upstream=r.upstream,
            connection=r.connection,
            cause=w.cause,
            side=w.side,
            source=w.source,
            detail=w.detail,
        )
        for r, w in zip(chosen, whys, strict=True)
    ]
    totals = NginxTotals(
        access_log=access.path,
        error_log=errors.path if errors else None,
        error_log_info=errors.info if errors else None,
        lines=len(access.requests) + access.unreadable,
        unreadable_lines=access.unreadable,
        requests=len(access.requests),
        selected=n,
        selection=selection,
        streams=sum(1 for r in chosen if 200 <= r.status < 300),
        failed=sum(1 for r in chosen if not 200 <= r.status < 300),
        first=_iso(min(r.start for r in chosen)) if chosen else "",
        last=_iso(max(r.end for r in chosen)) if chosen else "",
        causes_from="from the error log" if errors else "inferred from durations and statuses",
    )
    report = NginxReport(
        totals=totals,
        causes=causes,
        statuses=statuses,
        durations=summarize(durations),
        histogram=histogram(durations),
        clusters=rows,
        clients=clients,
        upstreams=upstreams,
        reconnects=reconnect,
        timeline=_timeline(chosen, whys, hops),
        requests=requests,
    )
    report.notes = _notes(access, errors, joined.unmatched if joined else 0, chosen, selection)
    report.summary = _sentences(report)
    return report


def _clients(chosen: Sequence[Request], whys: Sequence[_Why]) -> list[ClientRow]:
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
                p50_duration=_summary_of(chosen[i].duration for i in members),
                top_cause=Counter(whys[i].cause for i in members).most_common(1)[0][0],
                user_agents=[a for a, _ in agents.most_common(3)],
            )
        )
    return sorted(rows, key=lambda c: (-c.requests, c.family))


def _upstreams(
    chosen: Sequence[Request], whys: Sequence[_Why], retries: dict[int, list[ErrorEntry]]
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
            p50_duration=_summary_of(chosen[i].duration for i in members),
            top_cause=Counter(whys[i].cause for i in members).most_common(1)[0][0],
            pool=sorted(u for u in by_upstream if paths[u] & paths[upstream] and u != "(none)"),
        )
        for upstream, members in by_upstream.items()
    ]
    return sorted(rows, key=lambda u: (-u.requests, u.upstream))


def _lanes(chosen: Sequence[Request]) -> tuple[list[str], list[str], dict[int, int]]:
    """Timeline rows: one per client, and another beside it while one of its requests
    overlaps the previous (tabs, parallel clients behind one address), so no bar hides
    another. Returns (row keys, labels, access-log line -> row)."""
    ends: dict[str, list[float]] = {}
    lane_of: dict[int, tuple[str, int]] = {}
    for r in chosen:  # sorted by start
        client = f"{r.addr} {r.user_agent}"
        lanes = ends.setdefault(client, [])
        lane = next((i for i, end in enumerate(lanes) if end <= r.start), len(lanes))
        if lane == len(lanes):
            lanes.append(r.end)
        lanes[lane] = r.end
        lane_of[r.line] = (client, lane)
    order = {client: n for n, client in enumerate(ends)}
    keys = sorted({v for v in lane_of.values()}, key=lambda k: (order[k[0]], k[1]))[:MAX_ROWS]
    row_of = {key: n for n, key in enumerate(keys)}
    family = {f"{r.addr} {r.user_agent}": f"{r.addr} {ua_family(r.user_agent)}" for r in chosen}
    labels = [family[c] + (f" ({lane + 1})" if lane else "") for c, lane in keys]
    rows = {line: row_of[key] for line, key in lane_of.items() if key in row_of}
    return [f"{c} ({lane + 1})" for c, lane in keys], labels, rows


def _timeline(
    chosen: Sequence[Request], whys: Sequence[_Why], hops: Sequence[tuple[Request, Request]]
) -> Timeline:
    if not chosen:
        return Timeline(0.0, [], [], [], [], {}, 0)
    t0 = min(r.start for r in chosen)
    keys, labels, row_of = _lanes(chosen)
    rows = [Row(key, label) for key, label in zip(keys, labels, strict=True)]
    colours: dict[str, str] = {}
    used: Counter[str] = Counter()
    bars = []
    for r, w in zip(chosen, whys, strict=True):
        if w.cause not in colours:
            palette = _PALETTES.get(w.side, _PALETTES["unknown"])
            colours[w.cause] = palette[used[w.side] % len(palette)]
            used[w.side] += 1
        if r.line not in row_of:
            continue
        bars.append(
            Bar(
                conn=f"line {r.line}",
                row=row_of[r.line],
                start=r.start - t0,
                end=r.end - t0,
                open=False,
                kind="stream" if 200 <= r.status < 300 else "failed",
                cause=w.cause,
                path=r.target,
                status=str(r.status),
                detail=w.detail,
                events=None,
                first_id=None,
                last_id=None,
            )
        )
    gaps = [
        Gap(
            row=row_of[b.line],
            start=min(a.end, b.start) - t0,
            end=b.start - t0,
            previous=f"line {a.line}",
            next=f"line {b.line}",
            verdict="",
            lost=0,
            replayed=0,
        )
        for a, b in hops
        if b.line in row_of
    ]
    end = max(r.end for r in chosen) - t0
    hidden = len({(r.addr, r.user_agent) for r in chosen if r.line not in row_of})
    return Timeline(end, rows, bars, [], gaps, colours, hidden)


def _notes(
    access: AccessLog,
    errors: ErrorLog | None,
    unmatched: int,
    chosen: Sequence[Request],
    selection: str,
) -> list[str]:
    notes = []
    if access.unreadable:
        notes.append(
            f"{plural(access.unreadable, 'line')} of {access.path} not in the sseproxy "
            "log_format were skipped."
        )
    left = len(access.requests) - len(chosen)
    if left:
        kept = {r.line for r in chosen}
        others = Counter(r.path for r in access.requests if r.line not in kept)
        top = ", ".join(f"{p} ({c})" for p, c in others.most_common(3))
        notes.append(
            f"{plural(left, 'request')} not selected ({selection}): {top}; choose with --path."
        )
    if errors is None:
        notes.append(
            "No error log: causes are inferred from statuses and durations. Give "
            "--nginx-error-log (written with `error_log FILE info;`) for nginx's own word."
        )
    else:
        if not errors.info:
            notes.append(
                f"{errors.path} has no info-level line: clients that went away mid-stream "
                "are not in it (`error_log FILE info;` logs them)."
            )
        if unmatched:
            notes.append(
                f"{plural(unmatched, 'error line')} about a request matched none in the "
                "access log (other requests, or another span of time)."
            )
    return notes


def _sentences(report: NginxReport) -> list[str]:
    t = report.totals
    out = [
        f"{plural(t.selected, 'request')} that look like SSE streams ({t.selection}): "
        f"{plural(t.streams, 'stream')} started, {t.failed} failed before a stream; "
        f"causes {t.causes_from}."
    ]
    if report.causes:
        top = ", ".join(f"{c.cause} {c.count} ({c.share * 100:.0f} %)" for c in report.causes[:3])
        out.append(f"How they ended: {top}.")
    for c in report.clusters:
        if not c.known_as:
            continue
        line = (
            f"{plural(c.count, 'request')} lasted about {human_duration(c.centre)}: {c.known_as}."
        )
        if c.reproduce:
            line += f" Reproduce: {c.reproduce}."
        out.append(line)
    requests = {u.upstream: u.requests for u in report.upstreams}
    judged: set[str] = set()
    for u in report.upstreams:  # the busiest first
        if len(u.pool) < 2 or u.upstream in judged:
            continue
        judged.update(u.pool)
        share = u.requests / sum(requests[p] for p in u.pool)
        if share > 1.5 / len(u.pool):
            out.append(
                f"Upstreams are unbalanced: {u.upstream} took {share * 100:.0f} % of the "
                f"requests its pool of {len(u.pool)} served (from "
                f"{plural(u.networks, 'client /24 network')}; ip_hash keys on the first three "
                "octets of the client's address)."
            )
    if report.reconnects.reconnects:
        r = report.reconnects
        out.append(
            f"{plural(r.reconnects, 'request')} came from a client within "
            f"{human_duration(r.window)} of its previous one (median delay "
            f"{human_duration(r.delay.p50)})."
        )
    return out
