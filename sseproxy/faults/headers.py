"""headers: add, set or remove request or response headers on the way through.

The small header changes that break SSE in the field: a proxy that strips
`Last-Event-ID` (resuming silently restarts), drops `X-Accel-Buffering` (nginx buffers
again), rewrites `Content-Type` (EventSource fails for good), or adds `Connection: close`.
Values are checked when the scenario loads (no control characters, no outer spaces), and
the framing headers the proxy writes itself (`Content-Length`, `Transfer-Encoding`) and a
request's `Host` cannot be removed or doubled.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Deliver, Fault, Piece, ResponseHead
from sseproxy.params import Param, ParamError

Headers = list[tuple[bytes, bytes]]


@register
class HeadersFault(Fault):
    name = "headers"
    summary = "Add, set or remove request or response headers."
    params = (
        Param(
            "target",
            "choice",
            "Which headers: the response's or the request's.",
            default="response",
            choices=("response", "request"),
        ),
        Param("add", "headers", "Headers to add (kept beside any of the same name).", default={}),
        Param("set", "headers", "Headers to set (replacing any of the same name).", default={}),
        Param("remove", "names", "Header names to remove.", default=[]),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.target: str = settings["target"]
        self.add = [(k.lower().encode(), v.encode()) for k, v in settings["add"].items()]
        self.set = [(k.lower().encode(), v.encode()) for k, v in settings["set"].items()]
        self.remove = {name.lower().encode() for name in settings["remove"]}

    @classmethod
    def check(cls, settings: Mapping[str, Any]) -> None:
        """Refuse what would make every matching exchange fail inside the proxy: no change
        at all, or a request without its one Host (framing headers and bad values are
        refused by the `headers` and `names` kinds themselves)."""
        if not (settings["add"] or settings["set"] or settings["remove"]):
            raise ParamError("give at least one of `add`, `set`, `remove`", field="add")
        if settings["target"] != "request":
            return
        if any(name.lower() == "host" for name in settings["remove"]):
            raise ParamError(
                "a request cannot go without Host (HTTP/1.1 requires it); "
                'to send another one, write set = { Host = "..." }',
                field="remove",
            )
        if any(name.lower() == "host" for name in settings["add"]):
            raise ParamError(
                'a request has exactly one Host; to change it, write set = { Host = "..." }',
                field="add",
            )

    def rewrite(self, headers: Headers) -> Headers:
        replaced = self.remove | {name for name, _ in self.set}
        return [(n, v) for n, v in headers if n not in replaced] + self.set + self.add

    def request_headers(self, headers: Headers) -> Headers:
        return self.rewrite(headers) if self.target == "request" else headers

    def on_piece(self, piece: Piece, now: float) -> list[Action]:
        if piece.head is None or self.target != "response":
            return [Deliver(piece, now)]
        head = piece.head
        new = ResponseHead(head.status, tuple(self.rewrite(list(head.headers))), head.reason)
        return [Deliver(Piece(b"", head=new), now)]
