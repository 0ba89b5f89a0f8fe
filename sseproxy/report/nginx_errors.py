"""nginx's error log: why each request ended, in nginx's own words, joined by `*N`.

The access log says `200` both for a stream that nginx's `proxy_read_timeout` cut and for
one whose client went away; only the error log tells them apart. Each of its lines about
a request carries the connection number (`*N`), which is `$connection` in the access log.
A connection number restarts at 1 when nginx restarts and a keep-alive connection serves
several requests, so a line is joined to the request on that connection whose span
contains the line's time (within a second: both logs are to the second), the one that
ended first after it when several do.

The messages below were read off Debian's nginx 1.22 (tests/report/test_nginx_real.py).
A client's going away is logged at `info` level only: with `error_log FILE info` a stream
with no line ended as the upstream ended it; at the default level it may have been
either, and the report says so.
"""

from __future__ import annotations

import bisect
import re
from calendar import timegm
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sseproxy.report.nginx_log import NginxLogError, Request, open_text

__all__ = [
    "CAUSES",
    "Cause",
    "ErrorEntry",
    "ErrorLog",
    "Joined",
    "classify",
    "join",
    "read_error_log",
]


@dataclass(frozen=True)
class Cause:
    key: str
    side: str
    """Who ended it: "client", "server" (the upstream) or "nginx" (a timeout of nginx's)."""
    meaning: str


_C = Cause
CAUSES: tuple[tuple[re.Pattern[str], Cause], ...] = tuple(
    (re.compile(pattern), cause)
    for pattern, cause in (
        (
            r"upstream timed out \(110: [^)]*\) while reading upstream",
            _C(
                "proxy_read_timeout",
                "nginx",
                "nginx's proxy_read_timeout: the upstream sent nothing for that long "
                "mid-stream, so nginx closed the stream (the client sees no clean end)",
            ),
        ),
        (
            r"upstream timed out \(110: [^)]*\) while reading response header",
            _C(
                "proxy_read_timeout-before-head",
                "nginx",
                "the upstream sent no response head within proxy_read_timeout: nginx answered 504",
            ),
        ),
        (
            r"upstream timed out \(110: [^)]*\) while (connecting|sending request)",
            _C(
                "proxy_connect_timeout",
                "nginx",
                "connecting to (or writing the request to) the upstream timed out: 504",
            ),
        ),
        (
            r"client timed out \(110: [^)]*\) while sending to client",
            _C(
                "send_timeout",
                "nginx",
                "nginx's send_timeout: the client stopped reading, nginx gave up on it",
            ),
        ),
        (
            r"client prematurely closed connection",
            _C(
                "client-closed",
                "client",
                "the client went away: closed on purpose, its own timeout, or something "
                "in front of nginx (a balancer's idle timeout) closed it",
            ),
        ),
        (
            r"\((104|32): [^)]*\) while sending to client",
            _C(
                "client-closed",
                "client",
                "the client went away: closed on purpose, its own timeout, or something "
                "in front of nginx (a balancer's idle timeout) closed it",
            ),
        ),
        (
            r"connect\(\) failed \(111: [^)]*\) while connecting to upstream",
            _C("upstream-refused", "server", "nothing listened at the upstream: 502"),
        ),
        (
            r"connect\(\) failed \(\d+: [^)]*\) while connecting to upstream",
            _C("upstream-unreachable", "server", "the upstream could not be reached: 502"),
        ),
        (
            r"no live upstreams while connecting to upstream",
            _C(
                "no-live-upstreams",
                "server",
                "every upstream server was marked failed (max_fails, fail_timeout): 502 "
                "without trying",
            ),
        ),
        (
            r"upstream prematurely closed connection while reading upstream",
            _C(
                "upstream-closed",
                "server",
                "the upstream closed mid-stream without a clean end of the response",
            ),
        ),
        (
            r"\(104: [^)]*\) while reading upstream",
            _C("upstream-reset", "server", "the upstream's connection was reset mid-stream"),
        ),
        (
            r"(prematurely closed connection|\(104: [^)]*\)) while reading response header",
            _C(
                "upstream-failed-before-head",
                "server",
                "the upstream closed or reset before its response head: 502",
            ),
        ),
        (
            r"upstream sent (invalid|too big|no valid)",
            _C("upstream-invalid", "server", "the upstream's response was not valid HTTP: 502"),
        ),
    )
)
_CONNECTING = re.compile(r"while connecting to upstream|no live upstreams")
"""A failed try that nginx may have followed with the next upstream: the request's end only
when it got no response (proxy_next_upstream)."""

_LINE = re.compile(
    r"^(?P<y>\d{4})/(?P<mo>\d\d)/(?P<d>\d\d) (?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d) "
    r"\[(?P<level>\w+)\] \d+#\d+: \*(?P<conn>\d+) (?P<message>.*)$"
)
_LEVEL = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d \[(\w+)\]")
_REQUEST = re.compile(r', request: "([^"]*)"')


@dataclass(frozen=True)
class ErrorEntry:
    line: int
    local_time: float
    """Seconds since the epoch as if nginx's local time were UTC (the log names no zone)."""
    level: str
    connection: int
    message: str
    """What happened, without the `, client: ...` context."""
    request: str | None
    cause: Cause | None


@dataclass
class ErrorLog:
    path: str
    entries: list[ErrorEntry]
    info: bool
    """It has info-level lines: a client's going away would be in it."""
    lines: int


def classify(message: str) -> Cause | None:
    for pattern, cause in CAUSES:
        if pattern.search(message):
            return cause
    return None


def _local_seconds(found: re.Match[str]) -> float:
    fields = ("y", "mo", "d", "h", "mi", "s")
    return float(timegm((*(int(found.group(f)) for f in fields), 0, 0, 0)))


def read_error_log(path: str, lines: Iterable[str] | None = None) -> ErrorLog:
    """Every line about a connection; refused when no line at all is nginx's."""
    entries: list[ErrorEntry] = []
    info = False
    count = nginx_lines = 0
    for number, text in enumerate(open_text(path) if lines is None else lines, 1):
        count = number
        level = _LEVEL.match(text)
        if level is None:
            continue
        nginx_lines += 1
        info = info or level.group(1) in ("info", "debug")
        found = _LINE.match(text.rstrip("\r\n"))
        if found is None:
            continue
        message = found.group("message")
        request = _REQUEST.search(message)
        what = message.split(", client: ", 1)[0]
        entries.append(
            ErrorEntry(
                line=number,
                local_time=_local_seconds(found),
                level=found.group("level"),
                connection=int(found.group("conn")),
                message=what,
                request=request.group(1) if request else None,
                cause=classify(what),
            )
        )
    if count and not nginx_lines:
        raise NginxLogError(
            f"{path}: not an nginx error log (no line like "
            "`2026/03/01 10:00:00 [error] 12#12: *5 ...`); give the file of `error_log`"
        )
    return ErrorLog(path, entries, info, count)


@dataclass
class Joined:
    causes: dict[int, ErrorEntry]
    """Access-log line number -> the error-log entry that says why the request ended."""
    retries: dict[int, list[ErrorEntry]]
    """Access-log line number -> failed tries nginx went past (next upstream)."""
    unmatched: int
    """Error lines with a cause that no request in the access log accounts for."""


SLACK = 1.0
"""Seconds either side: both logs are to the second."""


def join(requests: Iterable[Request], log: ErrorLog) -> Joined:
    by_conn: dict[int, list[Request]] = defaultdict(list)
    for request in requests:
        by_conn[request.connection].append(request)
    for found in by_conn.values():
        found.sort(key=lambda r: r.end)
    causes: dict[int, ErrorEntry] = {}
    retries: dict[int, list[ErrorEntry]] = defaultdict(list)
    unmatched = 0
    for entry in log.entries:
        if entry.cause is None:
            continue
        candidates = by_conn.get(entry.connection, [])
        at = _first_after(candidates, entry)
        if at is None:
            unmatched += 1
            continue
        request = candidates[at]
        if _CONNECTING.search(entry.message) and request.status < 500:
            retries[request.line].append(entry)
        else:
            causes[request.line] = entry  # the last one written is how it ended
    return Joined(causes, dict(retries), unmatched)


def _first_after(candidates: list[Request], entry: ErrorEntry) -> int | None:
    """The request on the entry's connection that was under way when it was written."""
    if not candidates:
        return None
    offset = candidates[0].utc_offset
    at = entry.local_time - offset
    index = bisect.bisect_left([r.end for r in candidates], at - SLACK)
    for i in range(index, len(candidates)):
        request = candidates[i]
        if request.start - SLACK > at:
            return None
        if entry.request is None or entry.request.split(" ")[1:2] == [request.target]:
            return i
    return None
