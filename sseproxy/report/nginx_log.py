"""nginx's access log, in the one format `sseproxy report --nginx-log` reads.

`LOG_FORMAT` (in `sseproxy.nginx_format`) is nginx's combined format plus `key=value`
fields: how long, which upstream, which connection. Keys may come in any order and
others may follow (nginx's `uct=`, `uht=` ...), so a format that grew for other reasons
still reads. A file whose lines are not that is refused with one
line naming what is missing.

`$time_local` (or `$msec`, to the millisecond, when logged) is when nginx wrote the line:
the end of the request. Its start is that minus `$request_time`.
"""

from __future__ import annotations

import functools
import gzip
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sseproxy.errors import ConfigError
from sseproxy.nginx_format import ACCESS_LOG_LINE, LOG_FORMAT, REQUIRED_FIELDS

__all__ = [
    "ACCESS_LOG_LINE",
    "LOG_FORMAT",
    "REQUIRED_FIELDS",
    "AccessLog",
    "NginxLogError",
    "Request",
    "open_text",
    "parse_access_line",
    "read_access_log",
]

SAMPLE_LINES = 10
"""Lines looked at before a file is refused as being in another format."""

_COMBINED = re.compile(
    r'^(?P<addr>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" '
    r'(?P<status>\d{3}) (?P<bytes>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"(?P<rest>.*)$'
)
_FIELD = re.compile(r'(?:^|\s)([A-Za-z_][\w-]*)=("[^"]*"|\S*)')
_TIME = re.compile(
    r"^(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})$"
)
_MONTHS = {
    month: number
    for number, month in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_SEPARATOR = re.compile(r"\s*[,:]\s+")


class NginxLogError(ConfigError):
    """A log the report cannot read (exit status 2); the message says what to change."""


@dataclass(slots=True)
class Request:
    """One access-log line. Times are seconds since the epoch, to a second unless the line
    has `msec=`."""

    line: int
    addr: str
    end: float
    duration: float
    method: str
    path: str
    """Without the query string."""
    target: str
    status: int
    bytes_sent: int
    user_agent: str
    connection: int
    upstream: str
    """The upstream that answered last ('' when none was contacted)."""
    tried: tuple[str, ...]
    """Upstreams tried before it (nginx's proxy_next_upstream), in order."""
    upstream_time: float | None
    accept: str | None
    """None when the format does not log $http_accept."""
    utc_offset: float
    """Of $time_local, in seconds: the error log's times are in the same zone."""
    exact: bool = False
    """`end` is to the millisecond ($msec logged), not to the second."""

    @property
    def start(self) -> float:
        return self.end - self.duration


@dataclass
class AccessLog:
    path: str
    requests: list[Request]
    unreadable: int
    """Lines that did not parse once the format was recognised (written while the format
    was being changed, cut short by a crash, ...)."""
    accept_logged: bool


@functools.lru_cache(maxsize=256)
def _time(text: str) -> tuple[float, float] | None:
    """(seconds since the epoch, UTC offset) of a $time_local; cached: lines written in the
    same second share it."""
    found = _TIME.match(text)
    if found is None or found.group(2) not in _MONTHS:
        return None
    day, _, year, hour, minute, second, sign, oh, om = found.groups()
    offset = (int(oh) * 60 + int(om)) * 60 * (-1 if sign == "-" else 1)
    try:
        moment = datetime(
            int(year),
            _MONTHS[found.group(2)],
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone(timedelta(seconds=offset)),
        )
    except ValueError:
        return None
    return moment.timestamp(), float(offset)


def _unquote(value: str) -> str:
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _upstreams(value: str) -> list[str]:
    """$upstream_addr: ', ' between servers tried, ' : ' between internal redirects."""
    if "," not in value and " : " not in value:  # the usual case, quickly
        return [value] if value and value != "-" else []
    return [a for a in _SEPARATOR.split(value) if a and a != "-"]


def _last_number(value: str) -> float | None:
    try:
        number = float(value)  # the usual case: one number
        return number if math.isfinite(number) and number >= 0 else None
    except ValueError:
        numbers = _NUMBER.findall(value)
        return float(numbers[-1]) if numbers else None


def parse_access_line(text: str, number: int = 1) -> Request | str:
    """A `Request`, or why the line is not in `LOG_FORMAT` (what it lacks)."""
    found = _COMBINED.match(text.rstrip("\r\n"))
    if found is None:
        return "is not nginx's combined format with the sseproxy fields"
    fields = {key: _unquote(value) for key, value in _FIELD.findall(found.group("rest"))}
    missing = [f"{var} ({key}=)" for key, var in REQUIRED_FIELDS if key not in fields]
    if missing:
        return f"has no {', '.join(missing)}"
    when = _time(found.group("time"))
    duration = _last_number(fields["rt"])
    conn = fields["conn"]
    if when is None or duration is None or not conn.isdigit():
        return "has a time, rt= or conn= that is not a number"
    end = _last_number(fields.get("msec", "")) or when[0]
    request = found.group("request").split(" ")
    method, target = (request[0], request[1]) if len(request) >= 2 else ("-", "-")
    upstreams = _upstreams(fields["upstream"])
    return Request(
        line=number,
        addr=found.group("addr"),
        end=end,
        duration=duration,
        method=method,
        path=target.split("?", 1)[0],
        target=target,
        status=int(found.group("status")),
        bytes_sent=int(found.group("bytes")) if found.group("bytes").isdigit() else 0,
        user_agent="" if found.group("agent") == "-" else found.group("agent"),
        connection=int(conn),
        upstream=upstreams[-1] if upstreams else "",
        tried=tuple(upstreams[:-1]),
        upstream_time=_last_number(fields["urt"]),
        accept=fields.get("accept"),
        utc_offset=when[1],
        exact=end != when[0],
    )


def open_text(path: str) -> Iterator[str]:
    """The lines of a log file, gzip-compressed (`.gz`, as logrotate leaves them) or not."""
    try:
        if path.endswith(".gz"):
            with gzip.open(path, "rt", encoding="utf-8", errors="replace") as stream:
                yield from stream
        else:
            with open(path, encoding="utf-8", errors="replace") as stream:
                yield from stream
    except (OSError, EOFError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise NginxLogError(f"cannot read {path}: {reason}") from None


def read_access_log(path: str, lines: Iterable[str] | None = None) -> AccessLog:
    """Every request of the file; refused whole when its first lines are all another format."""
    requests: list[Request] = []
    problems: list[tuple[int, str]] = []
    accept = False
    for number, text in enumerate(open_text(path) if lines is None else lines, 1):
        if not text.strip():
            continue
        parsed = parse_access_line(text, number)
        if isinstance(parsed, str):
            problems.append((number, parsed))
            if not requests and len(problems) >= SAMPLE_LINES:
                break
            continue
        accept = accept or parsed.accept is not None
        requests.append(parsed)
    if not requests:
        if not problems:
            raise NginxLogError(f"{path}: no access-log line in it")
        number, why = problems[0]
        raise NginxLogError(
            f"{path}: line {number} {why}; log with the sseproxy log_format "
            "(`sseproxy report --help` shows the line to paste)"
        )
    return AccessLog(path, requests, len(problems), accept)
