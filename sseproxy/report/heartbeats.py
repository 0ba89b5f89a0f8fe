"""Heartbeats against silence timeouts: will this path's streams survive the idle limits?

A silence timeout is any fault that times a gap (idle-timeout and its kin such as
client-watchdog): `timeout`, and `counts` = bytes (proxies: any byte, a comment heartbeat
too, resets the timer) or events (clients and SDKs: only events do). Per path, the
longest silence seen is compared with each timeout that applied to its streams. The
silence comes from the journal's `closed.longest_gap` / `longest_event_gap` (or the
`event` records) when it has them; without them the faults' own firings, and streams
that outlived a timeout without it firing, still tell cut from safe.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sseproxy.errors import UnitError
from sseproxy.faults import get_fault
from sseproxy.faults.idle_timeout import IdleTimeout
from sseproxy.report.model import Heartbeat, TimeoutCheck
from sseproxy.report.records import Connection
from sseproxy.report.stats import human_duration
from sseproxy.units import parse_duration
from sseproxy.words import plural

__all__ = ["FaultInfo", "heartbeats", "is_silence_timeout"]

_DETAIL = re.compile(r"\bno (byte|event) for (\S+)")


@dataclass(frozen=True)
class FaultInfo:
    """A fault as the scenario declared it, its times as the run ran them (scaled by the
    run's time scale); type unknown when the scenario was not found."""

    name: str
    type: str | None
    settings: Mapping[str, Any] = field(default_factory=dict)
    direction: str = "down"
    """A timeout on the `up` direction times the client's bytes: not a heartbeat matter."""


def is_silence_timeout(info: FaultInfo) -> bool:
    if info.type is None:
        return False
    cls = get_fault(info.type)
    if cls is not None and issubclass(cls, IdleTimeout):
        return True
    return "timeout" in info.settings and "counts" in info.settings


def _event_gap(conn: Connection) -> float | None:
    if conn.longest_event_gap is not None:
        return conn.longest_event_gap
    times = [event.t for event in conn.events]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return max(gaps) if gaps else None


def _max(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


@dataclass
class _Timeout:
    name: str
    type: str
    timeout: float | None
    counts: str
    scale: float = 1.0
    """The run's time scale: `timeout` / `scale` is the timeout at real time."""


def _from_details(conns: list[Connection], known: set[str], scale: float) -> list[_Timeout]:
    """Silence timeouts the scenario did not tell about, read from their firings' details."""
    found: dict[str, _Timeout] = {}
    for conn in conns:
        for fired in conn.faults:
            match = _DETAIL.search(fired.detail)
            if fired.fault in known or fired.fault in found or match is None:
                continue
            try:
                timeout: float | None = parse_duration(match.group(2))
            except UnitError:
                timeout = None
            kind = fired.fault if get_fault(fired.fault) is not None else "silence timeout"
            found[fired.fault] = _Timeout(fired.fault, kind, timeout, match.group(1) + "s", scale)
    return list(found.values())


def heartbeats(
    streams: list[Connection],
    faults: Mapping[str, FaultInfo],
    end: float,
    *,
    time_scale: float = 1.0,
) -> list[Heartbeat]:
    """Per path, each silence timeout against the silences seen. `faults` hold the times
    the run ran with; at a `time_scale` other than 1, the real-time value is shown too."""
    by_path: dict[str, list[Connection]] = defaultdict(list)
    for conn in streams:
        by_path[conn.path or "?"].append(conn)
    declared = [
        _Timeout(
            info.name,
            info.type or "?",
            info.settings.get("timeout"),
            str(info.settings.get("counts", "bytes")),
            time_scale,
        )
        for info in faults.values()
        if is_silence_timeout(info) and info.direction != "up"
    ]
    for spec in declared:
        spec.timeout = _as_fired(streams, spec.name, spec.timeout)
    result = []
    for path, conns in sorted(by_path.items(), key=lambda item: (-len(item[1]), item[0])):
        byte_gap = _max([c.longest_gap for c in conns])
        event_gap = _max([_event_gap(c) for c in conns])
        age = {c.key: c.duration if c.duration is not None else end - c.opened for c in conns}
        checks = []
        for spec in declared + _from_details(conns, set(faults), time_scale):
            had = [c for c in conns if _had(c, spec.name)]
            if not had:
                continue
            cut = {c.key for c in had if any(f.fault == spec.name for f in c.faults)}
            fired = len(cut)
            # the silences this timeout did not end: a cut stream shows only the timeout
            spared = [c for c in conns if c.key not in cut]
            measure = (lambda c: c.longest_gap) if spec.counts == "bytes" else _event_gap
            path_gap = _max([measure(c) for c in spared])
            had_gap = _max([measure(c) for c in had])
            lived = max(age[c.key] for c in had)
            checks.append(_verdict(spec, len(had), fired, path_gap, had_gap, lived))
        longest = max(age.values()) if age else None
        result.append(Heartbeat(path, len(conns), byte_gap, event_gap, longest, checks))
    return result


def _as_fired(streams: list[Connection], name: str, declared: float | None) -> float | None:
    """The timeout the fault's firings say they ran with ("no byte for 2s"), when they all
    agree: a fault changed live (`sseproxy ctl faults set`) is journaled by name only, so
    the scenario file's value may be stale. Otherwise the declared one."""
    said = {
        match.group(2)
        for conn in streams
        for fired in conn.faults
        if fired.fault == name and (match := _DETAIL.search(fired.detail)) is not None
    }
    if len(said) != 1:
        return declared
    try:
        return parse_duration(said.pop())
    except UnitError:
        return declared


def _had(conn: Connection, name: str) -> bool:
    """Did the fault apply to this connection? The request lists its faults; a firing proves it."""
    request = conn.main_request
    return (request is not None and name in request.faults) or any(
        f.fault == name for f in conn.faults
    )


def _verdict(
    spec: _Timeout,
    streams: int,
    fired: int,
    path_gap: float | None,
    had_gap: float | None,
    lived: float | None,
) -> TimeoutCheck:
    """The sentence for one timeout on one path.

    `path_gap` is the longest silence on the path's streams this timeout did not cut,
    `had_gap` on the streams that had it. A journal measures a silence up to the close, so a
    stream the timeout cut shows just the timeout; longer silences show on the others.
    """
    what = "bytes" if spec.counts == "bytes" else "events"
    limit = f"{spec.type} {human_duration(spec.timeout)}"
    if spec.scale != 1 and spec.timeout is not None:
        limit += f" ({human_duration(spec.timeout / spec.scale)} at real time)"
    if spec.type != spec.name:
        limit += f" ({spec.name})"
    tally = f"{fired} of {plural(streams, 'stream')} cut"
    hint = " Comment heartbeats do not reset it: only events do." if what == "events" else ""

    def check(verdict: str, sentence: str) -> TimeoutCheck:
        return TimeoutCheck(
            spec.name, spec.type, spec.timeout, spec.counts, streams, fired, verdict, sentence
        )

    if spec.timeout is None:
        return check("unknown", f"{limit} counting {what}: {tally}.")
    if fired:
        if path_gap is not None and path_gap > spec.timeout:
            fate = "every stream will be cut" if fired >= streams else "streams that quiet are cut"
            return check(
                "cut",
                f"{human_duration(path_gap)} between {what}, {limit}: {fate} ({tally}).{hint}",
            )
        return check(
            "cut",
            f"{limit} counting {what} cut {tally.removesuffix(' cut')}: silences of "
            f"{human_duration(spec.timeout)} or more happen here.{hint}",
        )
    if had_gap is not None and had_gap >= spec.timeout:
        return check(
            "cut",
            f"{human_duration(had_gap)} between {what}, {limit}: such silences get streams "
            f"cut ({tally}).{hint}",
        )
    if had_gap is not None:
        margin = human_duration(spec.timeout - had_gap)
        return check(
            "ok",
            f"at most {human_duration(had_gap)} between {what}, {limit}: kept alive "
            f"(margin {margin}; {tally}).",
        )
    if lived is not None and lived > spec.timeout:
        return check(
            "ok",
            f"{limit} counting {what} never fired although streams lived up to "
            f"{human_duration(lived)}: {what} arrive at least every "
            f"{human_duration(spec.timeout)}.",
        )
    return check(
        "unknown",
        f"{limit} counting {what} never fired, but no stream lived longer than it and the "
        "journal records no gaps.",
    )
