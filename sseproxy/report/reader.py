"""Reading journals back: JSON Lines in, one `Connection` per connection out.

The reader is tolerant on purpose. A journal may be cut mid-line (`kill -9`), appended to
by several runs (each starts with a `started` record and numbers connections from c1
again), written by an older or newer sseproxy (fields missing or added), or given as
several files from proxies that ran side by side. Unreadable lines are counted, not
fatal; unknown kinds and fields are ignored; every field is optional.

Times: each record's `t` counts from its own run's start. To put runs from several files
on one axis, a run is placed by its wall-clock `ts` when it has one (so parallel proxies
overlap and restarts leave their real gap), else right after the previous run.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sseproxy.errors import ConfigError
from sseproxy.report.merge import merge_probe_runs
from sseproxy.report.records import (
    Connection,
    EventSeen,
    FaultFired,
    Journals,
    Record,
    Request,
)
from sseproxy.words import plural

__all__ = [
    "DROPPED",
    "RACE_WINDOW",
    "build",
    "journal_from_records",
    "read_journals",
    "settle_answers",
    "settle_drops",
    "settle_races",
]


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number == int(number) else None


@dataclass
class _Run:
    number: int
    source: str
    records: list[Record] = field(default_factory=list)
    started: Record | None = None

    def wall_offset(self) -> float | None:
        """Wall-clock seconds at this run's t = 0, from the first record with both."""
        for record in self.records:
            t, ts = _number(record.get("t")), record.get("ts")
            if t is None or not isinstance(ts, str):
                continue
            try:
                moment = datetime.fromisoformat(ts)
            except ValueError:
                continue
            if moment.tzinfo is None:
                return None  # a naive time cannot be compared with the others
            return moment.timestamp() - t
        return None


def _lines(path: str) -> Iterator[str]:
    if path == "-":
        yield from sys.stdin
        return
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            yield from stream
    except FileNotFoundError:
        raise ConfigError(f"journal {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"journal {path}: is a directory, give the .jsonl file") from None
    except OSError as error:
        raise ConfigError(f"journal {path}: cannot read: {error.strerror}") from None


def _runs(sources: Iterable[tuple[str, Iterable[str]]]) -> tuple[list[_Run], int]:
    runs: list[_Run] = []
    unreadable = 0
    for source, lines in sources:
        current: _Run | None = None
        for line in lines:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                unreadable += 1
                continue
            if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
                unreadable += 1
                continue
            if _number(record.get("t")) is None:
                unreadable += 1
                continue
            if record["kind"] == "started" or current is None:
                current = _Run(len(runs) + 1, source)
                runs.append(current)
            if record["kind"] == "started":
                current.started = record
            current.records.append(record)
    return runs, unreadable


def read_journals(paths: Iterable[str]) -> Journals:
    """Read journal files ('-' is stdin); ConfigError when a file cannot be read."""
    paths = list(paths)
    return build([(path, _lines(path)) for path in paths])


def build(sources: list[tuple[str, Iterable[str]]]) -> Journals:
    """Journals from (name, lines) pairs: the reader behind `read_journals`, for tests too."""
    runs, unreadable = _runs(sources)
    offsets = _place(runs)
    connections: list[Connection] = []
    notes: list[str] = []
    scenarios: list[str] = []
    seeds: list[int] = []
    time_scales: list[float] = []
    restarts: list[tuple[float, int, str]] = []
    end = 0.0
    several = len(runs) > 1
    for run, offset in zip(runs, offsets, strict=True):
        by_id: dict[str, Connection] = {}
        for record in run.records:
            t = float(record["t"]) + offset
            end = max(end, t)
            scenario = _text(record.get("scenario"))
            if scenario and scenario not in scenarios:
                scenarios.append(scenario)
            seed = _int(record.get("seed"))
            if seed is not None and seed not in seeds:
                seeds.append(seed)
            if record["kind"] in ("started", "time-scale"):
                factor = _number(record.get("time_scale", record.get("factor", 1.0)))
                if factor is not None and factor > 0 and factor not in time_scales:
                    time_scales.append(factor)
            conn_id = _text(record.get("conn"))
            if record["kind"] == "member-restarted":
                restarts.append((t, run.number, _text(record.get("member")) or "?"))
            if record["kind"] == "started" or not conn_id or conn_id == "-":
                continue
            proxy = _text(record.get("proxy"))  # several proxies number connections alike
            ident = f"{proxy}/{conn_id}" if proxy else conn_id
            conn = by_id.get(ident)
            if conn is None:
                key = f"run {run.number}/{ident}" if several else ident
                conn = by_id[ident] = Connection(key, conn_id, run.number, t)
                conn.scenario, conn.seed, conn.proxy = scenario, seed, proxy
                connections.append(conn)
            _apply(conn, record, t)
    probe_runs = {r.number for r in runs if r.started and r.started.get("role") == "probe"}
    connections, merged = merge_probe_runs(connections, probe_runs)
    notes += merged
    dropped = settle_drops(connections)
    if dropped:
        notes.append(
            f"{plural(len(dropped), 'connection')} {'was' if len(dropped) == 1 else 'were'} "
            f"journaled as closed after a fault had dropped the flow, leaving it half-open "
            f"({', '.join(dropped[:5])}{', ...' if len(dropped) > 5 else ''}): the close only "
            "noticed a stream that was already dead, so they count as the fault's"
        )
    answered = settle_answers(connections)
    if answered:
        notes.append(
            f"{plural(len(answered), 'connection')} {'was' if len(answered) == 1 else 'were'} "
            "closed by the client after the proxy's own error answer to its last request "
            f"({', '.join(answered[:5])}{', ...' if len(answered) > 5 else ''}): the connection "
            "was kept for a next request that never came, so they count as that answer's"
        )
    settled = settle_races(connections)
    if settled:
        notes.append(
            f"{plural(len(settled), 'connection')} {'was' if len(settled) == 1 else 'were'} "
            "journaled as closed by the client just after a "
            f"fault had closed them ({', '.join(settled[:5])}{', ...' if len(settled) > 5 else ''}"
            "): the client was answering the fault's close, so they count as the fault's"
        )
    return Journals(
        connections=connections,
        sources=[source for source, _lines in sources],
        runs=len(runs),
        scenarios=scenarios,
        seeds=seeds,
        unreadable=unreadable,
        notes=notes,
        end=end,
        started=[run.started for run in runs if run.started is not None],
        time_scales=time_scales,
        scenario_files=_scenario_files(runs),
        restarts=restarts,
    )


def _scenario_files(runs: list[_Run]) -> dict[str, list[str]]:
    """Where each run's scenario file may be (see `Journals.scenario_files`)."""
    found: dict[str, list[str]] = {}
    for run in runs:
        started = run.started or {}
        name = _text(started.get("scenario"))
        if not name or name == "none":
            continue
        recorded = _text(started.get("scenario_file"))
        here = Path(run.source).parent if run.source != "-" else Path()
        candidates = [str(here / Path(recorded).name)] if recorded else []
        candidates += [str(here / f"{name}.toml")] + ([recorded] if recorded else [])
        places = found.setdefault(name, [])
        places += [c for c in candidates if c not in places]
    return found


def _place(runs: list[_Run]) -> list[float]:
    """Each run's offset on the common axis (see the module docstring)."""
    walls = [run.wall_offset() for run in runs]
    known = [wall for wall in walls if wall is not None]
    origin = min(known) if known else 0.0
    offsets: list[float] = []
    previous_end = 0.0
    for run, wall in zip(runs, walls, strict=True):
        offset = wall - origin if wall is not None else previous_end
        offsets.append(offset)
        last = max(float(record["t"]) for record in run.records)
        previous_end = max(previous_end, offset + last)
    return offsets


def _split_client(client: str) -> tuple[str, int | None]:
    """'10.0.0.5:41000' -> ('10.0.0.5', 41000); '::1:5000' and '[::1]:5000' -> ('::1', 5000)."""
    host, sep, port = client.rpartition(":")
    if sep and port.isdigit() and host:
        return host.strip("[]"), int(port)
    return client, None


def _apply(conn: Connection, record: Record, t: float) -> None:
    kind = record["kind"]
    if kind == "opened":
        conn.opened = t
        client = _text(record.get("client"))
        port = _int(record.get("client_port"))
        if client and port is not None:  # newer journals: the host, and the port apart
            conn.client, conn.host, conn.port = f"{client}:{port}", client.strip("[]"), port
        elif client:  # older ones: 'host:port' in one field
            conn.client = client
            conn.host, conn.port = _split_client(client)
        conn.listener = _text(record.get("listener"))
        conn.mode = _text(record.get("mode"))
    elif kind == "request":
        faults = record.get("faults")
        conn.requests.append(
            Request(
                t=t,
                req=_int(record.get("req")),
                method=_text(record.get("method")),
                target=_text(record.get("path")) or "",
                query=_text(record.get("query")),
                last_event_id=_text(record.get("last_event_id")),
                accept=_text(record.get("accept")),
                user_agent=_text(record.get("user_agent")),
                session=_text(record.get("session")),
                faults=tuple(str(f) for f in faults) if isinstance(faults, list) else (),
            )
        )
    elif kind == "response":
        request = _current(conn, t)
        request.status = _int(record.get("status"))
        request.content_type = _text(record.get("content_type"))
        request.ttfb = _number(record.get("ttfb"))
        request.status_by_proxy = record.get("origin") == "proxy"
        request.session_answered = _text(record.get("session"))
    elif kind == "ended":
        request = _for_req(conn, _int(record.get("req"))) or _current(conn, t)
        request.ended_by = _text(record.get("by"))
        request.ended_reason = _text(record.get("reason"))
        request.ended_detail = _text(record.get("detail"))
        request.ended_at = t
        request.duration = _number(record.get("duration"))
    elif kind == "fault":
        conn.faults.append(
            FaultFired(
                t=t,
                fault=_text(record.get("fault")) or "?",
                action=_text(record.get("action")) or "",
                detail=_text(record.get("detail")) or "",
                direction=_text(record.get("direction")) or "",
                exchange=len(conn.requests),
            )
        )
    elif kind == "faults":  # TCP mode: the faults chosen for a connection without requests
        pass
    elif kind == "upstream":
        conn.upstream = _text(record.get("upstream")) or _text(record.get("address"))
        conn.member = _text(record.get("member"))
        if conn.requests:
            conn.requests[-1].member = conn.member
        for name in ("connect_time", "connect", "elapsed", "duration"):
            value = _number(record.get(name))
            if value is not None:
                conn.upstream_connect = value
                break
    elif kind == "upstream-failed":
        member = _text(record.get("member")) or "?"
        (conn.requests[-1] if conn.requests else conn).failed_members.append(member)
    elif kind == "event":
        conn.events.append(
            EventSeen(
                t=t,
                id=_text(record.get("id")),
                type=_text(record.get("type")) or _text(record.get("event")),
                size=_int(record.get("size")),
                exchange=len(conn.requests),
            )
        )
    elif kind == "closed":
        conn.closed_at = t
        conn.by = _text(record.get("by"))
        conn.reason = _text(record.get("reason"))
        conn.detail = _text(record.get("detail"))
        conn.duration = _number(record.get("duration"))
        if conn.duration is None:
            conn.duration = max(0.0, t - conn.opened)
        conn.bytes_down = _int(record.get("bytes_down"))
        conn.bytes_up = _int(record.get("bytes_up"))
        conn.events_down = _int(record.get("events_down"))
        conn.first_id = _text(record.get("first_id"))
        conn.last_id = _text(record.get("last_id"))
        conn.longest_gap = _number(record.get("longest_gap_down", record.get("longest_gap")))
        conn.longest_event_gap = _number(record.get("longest_event_gap"))
        conn.seen_by_client = _text(record.get("seen_as"))


RACE_WINDOW = 1.0
"""Seconds between a fault closing a connection and the client's own close that follows."""


DROPPED = "flow dropped"
"""In a fault's `note`: it forgot the flow and left the socket open (a half-open drop,
`idle-timeout` with `action = "drop"`); nothing reaches either side any more."""


def settle_drops(connections: Iterable[Connection]) -> list[str]:
    """Blame the fault that dropped a flow for the close that followed, whoever noticed it.

    After a half-open drop the journal has a `fault` record (action `note`) and, much later,
    the close of whoever gave up first (usually the client's own timeout). The stream died
    at the drop. Returns the keys changed.
    """
    changed = []
    for conn in connections:
        if conn.closed_at is None or conn.journaled_cause is not None:
            continue
        closed_at = conn.closed_at
        drops = [
            f
            for f in conn.faults
            if f.action == "note" and DROPPED in f.detail and f.t <= closed_at
        ]
        if drops and not (conn.by == "proxy" and conn.reason == drops[0].fault):
            fault = drops[0]
            conn.journaled_cause = conn.cause
            conn.by, conn.reason, conn.detail = "proxy", fault.fault, fault.detail
            changed.append(conn.key)
    return changed


def settle_answers(connections: Iterable[Connection]) -> list[str]:
    """Blame the proxy's own error answer when the client then left the kept connection.

    After its 502, 503 or 504 the proxy keeps the connection for the next request, as
    nginx does; when none comes, the client closes it (or it idles out), and the `closed`
    record says so. The attempt failed on the answer, so its exchange's `ended` record
    says who ended it. Returns the keys changed.
    """
    changed = []
    for conn in connections:
        if conn.by != "client" or conn.closed_at is None or not conn.requests:
            continue
        last = conn.requests[-1]
        answered = last.status_by_proxy and (last.status or 0) >= 400
        if not answered or last.ended_by is None or (last.ended_at or 0.0) > conn.closed_at:
            continue
        if (last.ended_by, last.ended_reason) != (conn.by, conn.reason):
            conn.journaled_cause = conn.cause
            conn.by, conn.reason, conn.detail = last.ended_by, last.ended_reason, last.ended_detail
            changed.append(conn.key)
    return changed


def settle_races(connections: Iterable[Connection]) -> list[str]:
    """Blame the fault when a client close was only the answer to a fault's close.

    A fault that ends, closes or resets a stream is journaled as a `fault` record; when the
    client hangs up at once in reply, the proxy may see the client's close first and write
    `closed by client`. The fault acted first, so it is the cause. Returns the keys changed.
    """
    changed = []
    for conn in connections:
        if conn.by != "client" or conn.closed_at is None:
            continue
        closed_at = conn.closed_at
        last = len(conn.requests)  # a fault that stopped an earlier exchange of a kept
        # connection did not close it
        stops = [
            f
            for f in conn.faults
            if f.action in ("end", "close", "reset")
            and f.exchange == last
            and 0 <= closed_at - f.t <= RACE_WINDOW
        ]
        if stops:
            fault = stops[0]
            conn.journaled_cause = conn.cause
            conn.by, conn.reason, conn.detail = "proxy", fault.fault, fault.detail or conn.detail
            changed.append(conn.key)
    return changed


def _current(conn: Connection, t: float) -> Request:
    """The request a response or end belongs to (a placeholder when the journal lost it)."""
    if not conn.requests:
        conn.requests.append(Request(t=t))
    return conn.requests[-1]


def _for_req(conn: Connection, req: int | None) -> Request | None:
    if req is None:
        return None
    return next((r for r in reversed(conn.requests) if r.req == req), None)


def journal_from_records(records: Iterable[Record], name: str = "<records>") -> Journals:
    """Journals from records already in memory (a `Journal(keep=True)`'s `records`)."""
    return build([(name, (json.dumps(record) for record in records))])
