"""status: answer with a status instead of forwarding, for some connections.

What a client meets when an instance is down or throttled: 502/503/504 from a balancer,
429 with Retry-After, 204 (which tells an EventSource to stop), or a 500. With the common
fields (`every`, `first`, `probability`) "every third reconnect gets a 503" is one fault.
The upstream is not contacted.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Deliver, End, Fault, Piece, ResponseHead
from sseproxy.params import Param
from sseproxy.units import format_duration


@register
class Status(Fault):
    name = "status"
    summary = "Answer `code` (plus headers and a body) instead of forwarding the request."
    params = (
        Param("code", "int", "The status to answer.", default=503, minimum=200, maximum=599),
        Param(
            "retry_after",
            "duration",
            "Send a Retry-After header (whole seconds).",
            optional=True,
            minimum=0,
        ),
        Param("headers", "headers", "Extra response headers.", default={}),
        Param("body", "str", "The body (default: the status line as text).", optional=True),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.code: int = settings["code"]
        self.retry_after: float | None = settings.get("retry_after")
        self.headers: Mapping[str, str] = settings.get("headers") or {}
        body: str | None = settings.get("body")
        known = self.code in HTTPStatus._value2member_map_
        status_line = f"{self.code} {HTTPStatus(self.code).phrase}" if known else str(self.code)
        no_body = self.code in (204, 304)
        self.body = b"" if no_body else (body if body is not None else f"{status_line}\n").encode()

    def start(self, now: float) -> list[Action]:
        if self.response_started:
            return []  # active too late (a window opening, added live): the stream goes on
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        if self.code not in (204, 304):
            headers.append((b"content-length", str(len(self.body)).encode()))
        if self.retry_after is not None:
            headers.append((b"retry-after", str(round(self.retry_after)).encode()))
        headers += [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        head = Piece(b"", head=ResponseHead(self.code, tuple(headers)))
        actions: list[Action] = [Deliver(head, now)]
        if self.body:
            actions.append(Deliver(Piece(self.body), now))
        detail = f"answered {self.code}"
        if self.retry_after is not None:
            detail += f" (Retry-After {format_duration(self.retry_after)})"
        return [*actions, End(detail)]
