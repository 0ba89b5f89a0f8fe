"""restart: a pool member restarts at a moment: its streams break and it forgets sessions.

At the start of the fault's `window` (scenario time: `window = { from = "20s" }`) every
exchange (HTTP) or connection (TCP) the member is serving is closed without a clean end
(an incomplete chunked body, as nginx passes on an upstream that died; 502 if no
response had started). Exchanges that start later are not touched. Before the proxy
next connects to the member it tells the member to forget its sessions: a pool
member's `restart_url` gets a POST (the built-in server's instances), and in Python a
`Proxy.on_restart` callback is called with the member's name. With `downtime` the
member then refuses connections for that long, as an instance that takes time to come
back (`down` with `how = "refuse"`).

Which member: `match = { upstream = "b" }`; without it, every member. Carried out by
this fault (the streams) and `sseproxy.upstreams` (sessions, downtime).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, ClassVar

from sseproxy.faults import register
from sseproxy.faults.base import Action, Close, Fault
from sseproxy.params import Param


@register
class Restart(Fault):
    name = "restart"
    summary = "A pool member restarts at the window's start: its streams break, sessions go."
    params = (
        Param(
            "downtime",
            "duration",
            "How long the member then refuses connections.",
            default=0.0,
            minimum=0,
        ),
    )

    instant: ClassVar[bool] = True
    """Acts once, at the start of its window, on what is open then (see `sseproxy.plan`)."""

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.downtime: float = settings["downtime"]

    def start(self, now: float) -> list[Action]:
        return [Close("the member restarted", status=502)]
