"""Why a request ended when nginx's error log does not say: what its status and its
duration allow, and no more.

499, 502 and 504 name the side that failed before a stream started. A started stream
(2xx) that lasted as long as a known limit was cut by it; which one, nginx's or one in
front of it, the error log tells (at the default level nginx logs its own timeouts, so
a pile it did not log points past nginx). Any other 2xx could have been ended by either
side, and the report says so rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass

from sseproxy.report.limits import Limit
from sseproxy.report.nginx_errors import ErrorEntry, ErrorLog
from sseproxy.report.nginx_log import Request
from sseproxy.report.stats import human_duration

__all__ = ["STATUS_MEANING", "Why", "why"]

STATUS_MEANING = {
    499: "the client went away before the response head (nginx's own code)",
    502: "the upstream failed: refused, reset, closed or answered garbage",
    503: "unavailable: nginx's limit_req/limit_conn, or the upstream said so",
    504: "the upstream did not answer in time (proxy_read_timeout, proxy_connect_timeout)",
}


@dataclass
class Why:
    cause: str
    side: str
    source: str
    meaning: str
    detail: str


def _status_why(request: Request) -> Why | None:
    if request.status == 499:
        return Why("client-closed-before-head", "client", "status", STATUS_MEANING[499], "")
    if request.status == 502:
        if request.duration < 0.05:
            return Why(
                "upstream-refused",
                "server",
                "inferred",
                "502 at once: most likely nothing listened at the upstream",
                "",
            )
        return Why("upstream-failed", "server", "status", STATUS_MEANING[502], "")
    if request.status == 504:
        return Why("upstream-timeout", "server", "status", STATUS_MEANING[504], "")
    if not 200 <= request.status < 300:
        meaning = STATUS_MEANING.get(request.status, f"answered {request.status}")
        return Why(f"status-{request.status}", "server", "status", meaning, "")
    return None


def why(
    request: Request,
    entry: ErrorEntry | None,
    errors: ErrorLog | None,
    limit: Limit | None,
) -> Why:
    if entry is not None and entry.cause is not None:
        cause = entry.cause
        key = cause.key
        meaning = cause.meaning
        if key == "client-closed" and request.status == 499:
            key, meaning = "client-closed-before-head", STATUS_MEANING[499]
        return Why(key, cause.side, "error log", meaning, entry.message)
    by_status = _status_why(request)
    if by_status is not None:
        return by_status
    if errors is not None and errors.info:
        return Why(
            "upstream-end",
            "server",
            "error log",
            "no error line although clients' going away is logged (info level): the "
            "upstream ended the response",
            "",
        )
    if limit is not None and errors is not None:  # nginx would have logged its own timeout
        return Why(
            f"at the {human_duration(limit.seconds)} limit",
            "not nginx",
            "inferred",
            "lasted as long as a known limit, and nginx logged no timeout of its own: "
            "something in front of nginx, the client, or the upstream ending on time: "
            + limit.label,
            "",
        )
    if limit is not None:
        return Why(
            f"at the {human_duration(limit.seconds)} limit",
            "limit",
            "inferred",
            "lasted as long as a known limit (nginx's, or one in front of it or in the "
            "client): " + limit.label,
            "",
        )
    if errors is not None:
        return Why(
            "ended-no-error",
            "unknown",
            "error log",
            "no error line: the upstream ended it, or the client went away (logged only "
            "with `error_log ... info`)",
            "",
        )
    return Why(
        "ended",
        "unknown",
        "inferred",
        "ended by the client or the upstream: only the error log can tell which",
        "",
    )
