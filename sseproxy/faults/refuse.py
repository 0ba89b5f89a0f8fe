"""refuse: turn new connections away, as a restarting instance or a full backlog does.

`close` and `reset` accept and then drop the connection (an empty reply, or
ECONNRESET); `unlisten` closes the listening socket during the fault's `window`, so new
clients get ECONNREFUSED, and opens it again when the window ends. Connections already
open are not touched (`reset` with a window does that).

`close` and `reset` act at accept, before a byte is read and without contacting the
upstream, so a client that connects and sends nothing is refused too. There the fault is
decided once per connection: `probability`, `every` and `first` count connections, the
`window` is looked at when the connection is accepted, and an `after` falls past the
accept (such a refuse never acts). A `refuse` whose `match` names a path, methods or
headers cannot be decided before the request head: it is asked for each request instead,
and drops the connection before the upstream is contacted.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Close, Fault, Reset
from sseproxy.params import Param


@register
class Refuse(Fault):
    name = "refuse"
    summary = "Refuse new connections: close at once, reset, or stop listening (ECONNREFUSED)."
    params = (
        Param(
            "how",
            "choice",
            "close (empty reply), reset (RST) or unlisten (ECONNREFUSED "
            "during the fault's window).",
            default="close",
            choices=("close", "reset", "unlisten"),
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.how: str = settings["how"]

    @classmethod
    def unlistens(cls, settings: Mapping[str, Any]) -> bool:
        return bool(settings["how"] == "unlisten")

    def start(self, now: float) -> list[Action]:
        if self.how == "reset":
            return [Reset("refused")]
        if self.how == "close":
            return [Close("refused")]
        return []
