"""nginx's logs -> an `NginxReport`: which requests were streams, why each ended, how long
they lasted next to the known limits, which clients and which upstreams.

Why a request ended comes from nginx itself when the error log is given (joined by
connection number, see `nginx_errors`); otherwise from what the access log allows
(`nginx_causes`). Durations pile up next to known limits (`limits`), and each pile is
named with the preset that reproduces it (here). The pieces: `nginx_log` and
`nginx_errors` read, `nginx_groups` groups by client, upstream and reconnect,
`nginx_timeline` draws, `nginx_model` is what comes out and `nginx_render` prints it.
"""

from __future__ import annotations

import fnmatch
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from sseproxy.report import nginx_groups as groups
from sseproxy.report.limits import Cluster, Limit, Source, clusters, known_limits
from sseproxy.report.nginx_causes import STATUS_MEANING, Why, why
from sseproxy.report.nginx_errors import ErrorLog, join
from sseproxy.report.nginx_groups import median, ua_family
from sseproxy.report.nginx_log import AccessLog, Request
from sseproxy.report.nginx_model import (
    CauseRow,
    ClusterRow,
    NginxReport,
    NginxTotals,
    RequestRow,
    StatusRow,
)
from sseproxy.report.nginx_timeline import timeline
from sseproxy.report.stats import histogram, human_duration, summarize
from sseproxy.words import plural

__all__ = ["RECONNECT_WINDOW", "analyse_nginx", "select"]

RECONNECT_WINDOW = 120.0

_NGINX_TWIN = {
    "proxy_read_timeout": ("nginx-default", "proxy_read_timeout"),
    "proxy_read_timeout-before-head": ("nginx-default", "proxy_read_timeout"),
    "send_timeout": ("nginx-default", "send_timeout"),
}
"""Error-log causes that a preset's fault plays, when the pile sits at no known limit."""


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
    pile: Cluster, whys: Sequence[Why], statuses: Sequence[int]
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


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


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
        why(
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
            p50_duration=median(chosen[i].duration for i in members),
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
            else STATUS_MEANING.get(status, f"answered {status}"),
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

    reconnect, hops = groups.reconnects(chosen, reconnect_window)
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
        clients=groups.clients(chosen, whys),
        upstreams=groups.upstreams(chosen, whys, joined.retries if joined else {}),
        reconnects=reconnect,
        timeline=timeline(chosen, whys, hops),
        requests=requests,
    )
    report.notes = _notes(access, errors, joined.unmatched if joined else 0, chosen, selection)
    report.summary = _sentences(report)
    return report


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
