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

__all__ = ["FaultInfo", "heartbeats", "is_silence_timeout"]

_DETAIL = re.compile(r"\bno (byte|event) for (\S+)")


@dataclass(frozen=True)
class FaultInfo:
    """A fault as the scenario declared it (type unknown when the scenario was not found)."""

    name: str
    type: str | None
    settings: Mapping[str, Any] = field(default_factory=dict)


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


def _from_details(conns: list[Connection], known: set[str]) -> list[_Timeout]:
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
            found[fired.fault] = _Timeout(fired.fault, kind, timeout, match.group(1) + "s")
    return list(found.values())


def heartbeats(
    streams: list[Connection], faults: Mapping[str, FaultInfo], end: float
) -> list[Heartbeat]:
    by_path: dict[str, list[Connection]] = defaultdict(list)
    for conn in streams:
        by_path[conn.path or "?"].append(conn)
    declared = [
        _Timeout(
            info.name,
            info.type or "?",
            info.settings.get("timeout"),
            str(info.settings.get("counts", "bytes")),
        )
        for info in faults.values()
        if is_silence_timeout(info)
    ]
    result = []
    for path, conns in sorted(by_path.items(), key=lambda item: (-len(item[1]), item[0])):
        longest_gap = _max([c.longest_gap for c in conns])
        event_gap = _max([_event_gap(c) for c in conns])
        ages = [c.duration if c.duration is not None else end - c.opened for c in conns]
        longest = max(ages) if ages else None
        checks = []
        for spec in declared + _from_details(conns, set(faults)):
            had = [c for c in conns if _had(c, spec.name)]
            if not had:
                continue
            fired = sum(1 for c in had if any(f.fault == spec.name for f in c.faults))
            gap = longest_gap if spec.counts == "bytes" else event_gap
            keys = {c.key for c in had}
            lived = max(
                (a for c, a in zip(conns, ages, strict=True) if c.key in keys), default=None
            )
            checks.append(_verdict(spec, len(had), fired, gap, lived))
        result.append(Heartbeat(path, len(conns), longest_gap, event_gap, longest, checks))
    return result


def _had(conn: Connection, name: str) -> bool:
    """Did the fault apply to this connection? The request lists its faults; a firing proves it."""
    request = conn.main_request
    return (request is not None and name in request.faults) or any(
        f.fault == name for f in conn.faults
    )


def _verdict(
    spec: _Timeout, streams: int, fired: int, gap: float | None, lived: float | None
) -> TimeoutCheck:
    what = "bytes" if spec.counts == "bytes" else "events"
    limit = f"{spec.type} {human_duration(spec.timeout)}"
    if spec.type != spec.name:
        limit += f" ({spec.name})"

    def check(verdict: str, sentence: str) -> TimeoutCheck:
        return TimeoutCheck(
            spec.name, spec.type, spec.timeout, spec.counts, streams, fired, verdict, sentence
        )

    tally = f"{fired} of {streams} streams cut"
    if spec.timeout is None:
        return check("unknown", f"{limit} counting {what}: {tally}.")
    if gap is not None and gap >= spec.timeout:
        fate = "every stream will be cut" if fired >= streams else "streams that quiet are cut"
        return check("cut", f"{human_duration(gap)} between {what}, {limit}: {fate} ({tally}).")
    if gap is not None:
        margin = human_duration(spec.timeout - gap)
        return check(
            "ok",
            f"at most {human_duration(gap)} between {what}, {limit}: kept alive "
            f"(margin {margin}; {tally}).",
        )
    if fired:
        hint = " Comment heartbeats do not reset it: only events do." if what == "events" else ""
        return check(
            "cut",
            f"{limit} counting {what} cut {fired} of {streams} streams: silences of "
            f"{human_duration(spec.timeout)} or more happen here.{hint}",
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
