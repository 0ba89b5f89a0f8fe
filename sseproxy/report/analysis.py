"""Journal -> `Report`: totals, closes, durations, clients, reconnects, heartbeats, timeline.

Connections are sorted into kinds first, because a disconnect rate above 100 % comes
from counting unlike things against each other:

- stream: its response was a 2xx `text/event-stream` (an established stream);
- failed: a stream attempt that got no stream: a request for a path that serves streams
  elsewhere in the journal (or one carrying `Last-Event-ID`) answered with an error
  status, something else, or nothing;
- request: any other HTTP request; no-request: a connection that sent none; tcp: TCP mode.

Closes and durations are about streams when the journal has any (else all connections),
so that a stream is counted once when it opens and at most once when it ends.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from sseproxy.errors import ScenarioError
from sseproxy.report.causes import explain, side_of
from sseproxy.report.exchanges import streams_of
from sseproxy.report.heartbeats import FaultInfo, heartbeats
from sseproxy.report.members import member_rows
from sseproxy.report.model import (
    ClientGroup,
    CloseRow,
    Closes,
    Count,
    Durations,
    FailedRow,
    ProxyRow,
    ReasonDurations,
    Report,
    Totals,
)
from sseproxy.report.reconnects import RECONNECT_WINDOW, Lineage, lineage, reconnects
from sseproxy.report.records import Connection, Journals
from sseproxy.report.sessions import loss_rows, session_losses
from sseproxy.report.stats import histogram, human_duration, summarize, ua_family
from sseproxy.report.timeline import timeline
from sseproxy.scenario import Scenario, load_scenario
from sseproxy.timescale import scaled
from sseproxy.words import plural

__all__ = ["analyse", "kinds", "resolve_faults"]


def kinds(conns: Iterable[Connection]) -> dict[str, str]:
    """connection key -> stream, failed, request, no-request or tcp (see the docstring)."""
    conns = list(conns)
    stream_paths = {r.path for c in conns for r in c.requests if r.is_event_stream and r.target}
    result = {}
    for conn in conns:
        main = conn.main_request
        if conn.mode == "tcp":
            kind = "tcp"
        elif main is None:
            kind = "no-request"
        elif main.is_event_stream:
            kind = "stream"
        elif main.method in _NEVER_A_STREAM:
            kind = "request"
        elif (
            (main.target and main.path in stream_paths)
            or main.last_event_id is not None
            or "text/event-stream" in (main.accept or "")
        ):
            kind = "failed"  # it asked for a stream, or where streams come from
        else:
            kind = "request"
        result[conn.key] = kind
    return result


_NEVER_A_STREAM = ("OPTIONS", "HEAD")
"""Methods that never ask for a stream: a CORS preflight (the built-in server answers
them, so a browser's may pass the proxy) and HEAD are no failed stream attempts."""


def resolve_faults(
    names: Iterable[str],
    override: Scenario | None = None,
    files: Mapping[str, list[str]] | None = None,
    time_scale: float = 1.0,
) -> tuple[dict[str, FaultInfo], list[str]]:
    """The faults of the scenarios the journal names, or of `override`, with their times
    as the run ran them (scaled by `time_scale`).

    A name is looked for in `files` first (its file next to the journal, or where the
    journal's `started` record says it was), then as a preset or a file here.
    """
    scenarios: list[Scenario] = []
    notes: list[str] = []
    if override is not None:
        scenarios.append(override)
    else:
        for name in names:
            if name in ("", "none"):
                continue
            found = _find_scenario(name, (files or {}).get(name, []))
            if found is not None:
                scenarios.append(found)
            else:
                notes.append(
                    f"scenario {name!r} is neither a preset nor a file next to the journal "
                    "or where it was run: fault types and timeouts come from the journal only "
                    "(give it with --scenario)"
                )
    faults: dict[str, FaultInfo] = {}
    for scenario in scenarios:
        for spec in scaled(scenario, time_scale).faults:
            info = FaultInfo(spec.name, spec.type, dict(spec.settings), spec.direction)
            faults.setdefault(spec.name, info)
    return faults, notes


def _find_scenario(name: str, places: list[str]) -> Scenario | None:
    for place in [*places, name]:
        try:
            scenario = load_scenario(place)
        except ScenarioError:
            continue
        if place == name or scenario.name == name:
            return scenario
    return None


def _short(detail: str) -> str:
    """A detail fit for a table cell (a shutdown's is a Python repr: not for people)."""
    if detail.startswith(("Cancelled(", "<", "ExceptionGroup(", "BaseExceptionGroup(")):
        return ""
    return detail if len(detail) <= 60 else detail[:59] + "\u2026"


def _count(counter: Counter[str], total: int) -> list[Count]:
    return [Count(name, n, n / total if total else 0.0) for name, n in counter.most_common()]


def _status(conn: Connection) -> str:
    main = conn.main_request
    if main is None or main.status is None:
        return "no response"
    return f"{main.status} (from proxy)" if main.status_by_proxy else str(main.status)


def _totals(journals: Journals, conns: list[Connection], kind: Mapping[str, str]) -> Totals:
    """Connections, requests and statuses from the connections as journaled; the kinds
    (streams, failed attempts...) from `kind`, where each stream counts on its own."""
    kinds_seen = Counter(kind.values())
    requests = [r for c in conns for r in c.requests if r.target]
    paths = Counter(r.path for r in requests)
    statuses: Counter[str] = Counter()
    for c in conns:
        for r in c.requests:
            statuses["no response" if r.status is None else str(r.status)] += 1
    listeners = Counter(c.listener for c in conns if c.listener)
    connects = [c.upstream_connect for c in conns if c.upstream_connect is not None]
    first = min((c.opened for c in conns), default=0.0)
    return Totals(
        journals=journals.sources,
        runs=journals.runs,
        scenarios=journals.scenarios,
        seeds=journals.seeds,
        unreadable_lines=journals.unreadable,
        span=max(0.0, journals.end - first),
        connections=len(conns),
        closed=sum(1 for c in conns if not c.is_open),
        still_open=sum(1 for c in conns if c.is_open),
        streams=kinds_seen["stream"],
        failed_attempts=kinds_seen["failed"],
        other_requests=kinds_seen["request"],
        no_request=kinds_seen["no-request"],
        tcp=kinds_seen["tcp"],
        requests=sum(len(c.requests) for c in conns),
        paths=_count(paths, len(requests)),
        statuses=_count(statuses, sum(statuses.values())),
        listeners=_count(listeners, len(conns)),
        upstream_connect=summarize(connects) if connects else None,
        time_scales=journals.time_scales if set(journals.time_scales) - {1.0} else [],
        proxies=_proxies(conns),
    )


def _proxies(conns: list[Connection]) -> list[ProxyRow]:
    """A row per named proxy (a journal of `run --config` or the toxiproxy API)."""
    rows: list[ProxyRow] = []
    for name in sorted({c.proxy for c in conns if c.proxy}):
        mine = [c for c in conns if c.proxy == name]
        closed = [c for c in mine if not c.is_open]
        reasons = Counter(f"{c.by}/{c.reason}" for c in closed)
        top = reasons.most_common(1)[0][0] if reasons else "-"
        rows.append(ProxyRow(name, len(mine), dict(Counter(c.by or "?" for c in closed)), top))
    return rows


def _closes(
    population: list[Connection],
    label: str,
    failed: list[Connection],
    reconnected: int,
    faults: Mapping[str, FaultInfo],
) -> Closes:
    closed = [c for c in population if not c.is_open]
    groups: dict[str, list[Connection]] = defaultdict(list)
    for conn in closed:
        groups[conn.cause].append(conn)
    rows, sides = [], Counter[str]()
    for cause, members in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        side, fault_type = side_of(members[0], faults)
        sides[side] += len(members)
        durations = [c.duration for c in members if c.duration is not None]
        rows.append(
            CloseRow(
                cause=cause,
                by=members[0].by or "?",
                reason=members[0].reason or "?",
                side=side,
                fault_type=fault_type,
                count=len(members),
                share=len(members) / len(closed),
                p50_duration=summarize(durations).p50,
                example_detail=_short(next((c.detail for c in members if c.detail), "")),
                explanation=explain(members[0], fault_type),
            )
        )
    failed_rows = Counter((_status(c), c.cause) for c in failed)
    established = len(population)
    rate = len(closed) / established if established else None
    return Closes(
        population=label,
        established=established,
        closed=len(closed),
        still_open=established - len(closed),
        rows=rows,
        by_side=_count(sides, len(closed)),
        failed=[FailedRow(status, cause, n) for (status, cause), n in failed_rows.most_common()],
        disconnect_rate=rate,
        explanation=_disconnect_paragraph(
            label, established, len(closed), reconnected, failed_rows, sides
        ),
    )


def _pct(share: float) -> str:
    return f"{share * 100:.0f} %" if share >= 0.01 or share == 0 else f"{share * 100:.1f} %"


def _disconnect_paragraph(
    label: str,
    established: int,
    closed: int,
    reconnected: int,
    failed: Counter[tuple[str, str]],
    sides: Counter[str],
) -> str:
    if not established:
        return "No connection was established, so there is no disconnect rate."
    noun = "stream" if label == "streams" else "connection"
    were = "was" if established == 1 else "were"
    said = [
        f"{plural(established, noun)} {were} established and {closed} of them ended "
        f"({_pct(closed / established)}); {established - closed} {_be(established - closed)} "
        "still open at the end. Each is counted once when it opens and at most once when it "
        "ends, so this disconnect rate cannot exceed 100 %."
    ]
    attempts = sum(failed.values())
    if label == "streams":
        said.append(
            f"{reconnected} of the {plural(established, 'stream')} "
            f"{'was a reconnect' if reconnected == 1 else 'were reconnects'} (a client's next "
            "stream after one ended): each is a stream of its own, not an extra disconnect."
        )
        if attempts:
            statuses = Counter[str]()
            for (status, _cause), n in failed.items():
                statuses[status] += n
            shown = ", ".join(f"{status} x{n}" for status, n in statuses.most_common())
            said.append(
                f"{plural(attempts, 'attempt')} never became a stream ({shown}); "
                f"{'it is' if attempts == 1 else 'they are'} counted apart, not as disconnects: "
                f"counting {'it' if attempts == 1 else 'them'} with the {closed} that ended "
                f"would give {_pct((closed + attempts) / established)}, which is not a "
                "disconnect rate."
            )
    if closed:
        shown = ", ".join(f"{side} {n}" for side, n in sides.most_common())
        said.append(f"Who ended them: {shown}.")
    return " ".join(said)


def _be(count: int) -> str:
    return "was" if count == 1 else "were"


def _durations(population: list[Connection], label: str, end: float) -> Durations:
    closed = [c for c in population if not c.is_open and c.duration is not None]
    values = [c.duration for c in closed if c.duration is not None]
    per: dict[str, list[float]] = defaultdict(list)
    for conn in closed:
        if conn.duration is not None:
            per[conn.cause].append(conn.duration)
    ages = [max(0.0, end - c.opened) for c in population if c.is_open]
    return Durations(
        population=label,
        overall=summarize(values),
        histogram=histogram(values),
        per_cause=[
            ReasonDurations(cause, summarize(v), histogram(v))
            for cause, v in sorted(per.items(), key=lambda item: (-len(item[1]), item[0]))
        ],
        still_open=summarize(ages),
    )


def _clients(conns: list[Connection], found: Lineage) -> list[ClientGroup]:
    groups: dict[tuple[str, str], list[Connection]] = defaultdict(list)
    for conn in conns:
        groups[(conn.host, ua_family(conn.user_agent))].append(conn)
    reconnected = Counter(hop.next for hop in found.hops)
    kind = kinds(conns)
    rows = []
    for (host, family), members in groups.items():
        # lifetimes and causes of the streams when there are any: a POST beside a stream
        # says nothing about why the stream died
        streams = [c for c in members if kind[c.key] == "stream"] or members
        durations = [c.duration for c in streams if c.duration is not None and not c.is_open]
        agents = Counter(c.user_agent or "(none)" for c in members)
        causes = Counter(c.cause for c in streams if not c.is_open)
        rows.append(
            ClientGroup(
                host=host,
                family=family,
                user_agents=[ua for ua, _n in agents.most_common()],
                connections=len({c.carrier or c.key for c in members}),
                streams=sum(1 for c in members if kind[c.key] == "stream"),
                failed=sum(1 for c in members if kind[c.key] == "failed"),
                reconnects=sum(reconnected[c.key] for c in members),
                mean_lifetime=sum(durations) / len(durations) if durations else None,
                top_cause=causes.most_common(1)[0][0] if causes else "open",
            )
        )
    rows.sort(key=lambda r: (-r.connections, r.host, r.family))
    return rows


def _summary(report: Report) -> list[str]:
    c, r = report.closes, report.reconnects
    said = []
    for row in c.rows[:3]:
        detail = f' ("{row.example_detail}")' if row.example_detail else ""
        said.append(
            f"{_pct(row.share)} of the {plural(c.closed, c.population.removesuffix('s'))} "
            f"that ended: {row.cause}, "
            f"{row.side}{detail}."
        )
    for hb in report.heartbeats:
        said += [f"{hb.path}: {x.sentence}" for x in hb.checks if x.verdict != "unknown"]
    if r.reconnects:
        res = r.resume
        unsent = res.sent_missing + res.sent_mismatch
        said.append(
            f"{plural(r.reconnects, 'reconnect')}: {plural(res.lost, 'event')} lost"
            + (f" (on {res.skipped} of them)" if res.lost else "")
            + (
                f", {res.replayed} replayed (on {res.repeated})"
                if res.replayed
                else ", none replayed"
            )
            + (
                f"; the last id given was not sent back as Last-Event-ID "
                f"{'once' if unsent == 1 else f'{unsent} times'}."
                if unsent
                else "."
            )
        )
    for lost in report.sessions_lost:
        said.append(
            f"{plural(len(lost.sessions), 'session')} lost: {lost.cause} "
            f"({plural(lost.requests, 'request')} answered 404; {lost.top_moves})."
        )
    if c.failed:
        attempts = sum(f.count for f in c.failed)
        said.append(
            f"{plural(attempts, 'attempt')} failed and {_be(attempts)} not counted as disconnects."
        )
    return said


def _order(conn: Connection) -> tuple[float, str]:
    return conn.opened, conn.key


def analyse(
    journals: Journals,
    scenario: Scenario | None = None,
    *,
    reconnect_window: float = RECONNECT_WINDOW,
) -> Report:
    """Everything the report says about `journals`; `scenario` overrides the named ones.

    A stream attempt opened within `reconnect_window` seconds after the same client's
    previous one closed is a reconnect; later, it starts a new chain.
    """
    wholes = sorted(journals.connections, key=lambda c: (c.opened, c.key))
    conns = sorted(
        (part for c in wholes for part in streams_of(c)), key=lambda c: (c.opened, c.key)
    )
    kind = kinds(conns)
    factor = journals.time_scales[0] if journals.time_scales else 1.0
    faults, notes = resolve_faults(
        journals.scenarios, scenario, journals.scenario_files, time_scale=factor
    )
    if len(journals.time_scales) > 1:
        shown = ", ".join(f"{f:g}" for f in journals.time_scales)
        notes.append(
            f"the time scale changed during the run ({shown}): timeouts are compared as "
            f"they ran at {factor:g}, the first"
        )
    notes = [*journals.notes, *notes]
    if journals.unreadable:
        notes.append(
            f"{plural(journals.unreadable, 'journal line')} could not be read (cut short or "
            f"not JSON) and {_be(journals.unreadable)} skipped"
        )
    streams = [c for c in conns if kind[c.key] == "stream"]
    failed = [c for c in conns if kind[c.key] == "failed"]
    attempts = [c for c in conns if kind[c.key] in ("stream", "failed")]
    stream_keys = {c.key for c in streams}
    status = {c.key: _status(c) for c in attempts}
    found = lineage(attempts, stream_keys, status, reconnect_window)
    reconnected = sum(1 for hop in found.hops if hop.next in stream_keys)
    if streams:
        population, label = streams, "streams"
    else:
        population, label = (
            [c for c in conns if kind[c.key] != "no-request"] or conns,
            "connections",
        )
    carried = Counter(c.carrier for c in conns if c.carrier)
    if carried:
        shown = ", ".join(f"{key} {n}" for key, n in list(carried.items())[:5])
        notes.append(
            f"{plural(len(carried), 'keep-alive connection')} carried several streams or "
            f"stream attempts one after the other ({shown}{', ...' if len(carried) > 5 else ''}"
            "): each is counted on its own, as KEY#1, KEY#2..."
        )
    if not conns:
        notes.append("the journal has no connections")
    elif streams and any(
        c.events_down is None for c in streams if not c.is_open and c.carrier is None
    ):
        notes.append("some streams have no event counts (journal written by an older sseproxy)")
    report = Report(
        totals=_totals(journals, wholes, kind),
        closes=_closes(population, label, failed, reconnected, faults),
        durations=_durations(population, label, journals.end),
        clients=_clients(conns, found),
        reconnects=reconnects(attempts, found, stream_keys, reconnect_window),
        heartbeats=heartbeats(streams, faults, journals.end, time_scale=factor),
        timeline=timeline(conns, kind, found, journals.end, faults),
        notes=notes,
        members=member_rows(wholes),
        sessions_lost=loss_rows(session_losses(wholes, journals.restarts)),
    )
    report.summary = _summary(report)
    if report.totals.span and report.durations.still_open.count:
        oldest = report.durations.still_open.max
        notes.append(
            f"{plural(report.durations.still_open.count, label.removesuffix('s'))} still open at "
            f"the end (the oldest {human_duration(oldest)} old): not in the duration statistics"
        )
    return report
