"""Hand-written nginx log lines for the unit tests, in the sseproxy log_format."""

from __future__ import annotations

from datetime import UTC, datetime

T0 = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC).timestamp()

CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"


def stamp(seconds: float) -> str:
    """$time_local of T0 + seconds (UTC, to the second)."""
    return datetime.fromtimestamp(T0 + seconds, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def access(
    end: float,
    duration: float,
    *,
    status: int = 200,
    path: str = "/sse/events",
    conn: int = 1,
    addr: str = "10.0.0.1",
    agent: str = CHROME,
    upstream: str = "10.1.0.1:8080",
    accept: str | None = "text/event-stream",
    msec: bool = True,
) -> str:
    """One access-log line for a request that ended `end` s after T0."""
    fields = (
        f'rt={duration:.3f} urt="{duration:.3f}" upstream="{upstream}" conn={conn}'
        + (f' accept="{accept}"' if accept is not None else "")
        + (f" msec={T0 + end:.3f}" if msec else "")
    )
    return f'{addr} - - [{stamp(end)}] "GET {path} HTTP/1.1" {status} 120 "-" "{agent}" {fields}\n'


def error(at: float, conn: int, message: str, *, level: str = "error", path: str = "") -> str:
    """One error-log line written `at` s after T0 about connection `conn`."""
    when = datetime.fromtimestamp(T0 + at, UTC).strftime("%Y/%m/%d %H:%M:%S")
    request = f', request: "GET {path} HTTP/1.1"' if path else ""
    return (
        f"{when} [{level}] 4242#4242: *{conn} {message}, client: 10.0.0.1, server: "
        f'{request}, upstream: "http://10.1.0.1:8080{path}", host: "example.org"\n'
    )


READ_TIMEOUT = "upstream timed out (110: Connection timed out) while reading upstream"
HEAD_TIMEOUT = (
    "upstream timed out (110: Connection timed out) while reading response header from upstream"
)
REFUSED = "connect() failed (111: Connection refused) while connecting to upstream"
CLIENT_GONE = (
    "epoll_wait() reported that client prematurely closed connection, so upstream connection "
    "is closed too while reading upstream"
)
