"""A line per closed connection on `run`'s console: who closed it, why, and what it carried.

A presenter (or anyone watching a terminal) sees each cut as it happens, without a
journal file or a second terminal:

    c3 GET /events from 127.0.0.1: closed by proxy, idle-timeout (no byte for 6s),
    after 6 s; 1.2 KiB and 5 events down, last id 5      (one line on the console)

It is a journal subscriber: it reads the same records the journal file gets, so the
line says exactly what the journal says. `run` turns it on when stderr is a terminal
(`--quiet` turns it off, `--close-lines` forces it on).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TextIO

from sseproxy.journal import JournalReader
from sseproxy.report.stats import human_duration
from sseproxy.words import plural

__all__ = ["CloseLines", "close_line"]

Record = dict[str, Any]
_STOPS = ("close", "reset", "end")
_NOT_FOR_PEOPLE = ("Cancelled(", "<", "ExceptionGroup(", "BaseExceptionGroup(")
"""How a shutdown's detail begins (a Python repr; the report leaves it out too)."""


@dataclass
class _Seen:
    """What the records before `closed` told about one connection."""

    client: str = ""
    request: str = ""
    stopped_by: str = ""
    """The detail of the last fault that stopped it, if one did."""


def _size(octets: int) -> str:
    if octets < 1024:
        return f"{octets} B"
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if octets >= scale:
            return f"{octets / scale:.1f} {unit}"
    raise AssertionError("unreachable")


def close_line(closed: Record, client: str = "", request: str = "", stopped_by: str = "") -> str:
    """The one line for a `closed` record (and what earlier records said about it); in a
    fleet (`run --config`) it begins with the proxy's name."""
    head = " ".join(
        str(part) for part in (closed.get("proxy"), closed.get("conn", "?"), request) if part
    )
    if client:
        head += f" from {client}"
    reason = str(closed.get("reason", "?"))
    detail = closed.get("detail") or stopped_by
    if str(detail).startswith(_NOT_FOR_PEOPLE):
        detail = ""
    why = f"{reason} ({detail})" if detail and detail != reason else reason
    line = f"{head}: closed by {closed.get('by', '?')}, {why}"
    if closed.get("duration") is not None:
        line += f", after {human_duration(float(closed['duration']))}"
    down = _size(int(closed.get("bytes_down", 0)))
    if closed.get("events_down") is not None:
        down += f" and {plural(int(closed['events_down']), 'event')}"
    carried = [f"{down} down"]
    if closed.get("last_id"):
        carried.append(f"last id {closed['last_id']}")
    if closed.get("bytes_up"):
        carried.append(f"{_size(int(closed['bytes_up']))} up")
    return f"{line}; {', '.join(carried)}"


@dataclass
class CloseLines(JournalReader):
    """Prints `close_line` for every `closed` record to `stream` (flushed at once)."""

    stream: TextIO
    seen: dict[str, _Seen] = field(default_factory=dict)

    def observe(self, record: Record) -> None:
        kind, conn = record.get("kind"), str(record.get("conn", "-"))
        if conn == "-":
            return
        if "proxy" in record:  # a fleet: each proxy numbers its own connections
            conn = f"{record['proxy']} {conn}"
        if kind == "closed":
            seen = self.seen.pop(conn, _Seen())
            line = close_line(record, seen.client, seen.request, seen.stopped_by)
            try:
                print(line, file=self.stream, flush=True)
            except (OSError, ValueError):  # a closed terminal must not stop the proxy
                self.detach()
            return
        seen = self.seen.setdefault(conn, _Seen())
        if kind == "opened":
            seen.client = str(record.get("client", ""))
        elif kind == "request" and not seen.request:
            seen.request = f"{record.get('method', '')} {record.get('path', '')}".strip()
        elif kind == "fault" and record.get("action") in _STOPS:
            seen.stopped_by = str(record.get("detail", ""))
