"""slow-close: the end of the stream reaches the client `delay` after the server sent it.

Intermediaries pass the end of a response on late when they learn of it late: a proxy
that buffers the last chunk, a load balancer draining a backend, a server whose shutdown
waits on a lingering close. Meanwhile the client holds a finished stream that looks merely
quiet. Clients that start their reconnect only on the close, or that count the stream as
alive while it is open, reconnect `delay` late; data sent before the end flows as usual.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, End, Fault, Wake
from sseproxy.params import Param


@register
class SlowClose(Fault):
    name = "slow-close"
    summary = "Pass the end of the stream on `delay` after it happened upstream."
    params = (Param("delay", "duration", "How late the end of the stream arrives.", minimum=0),)

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.delay: float = settings["delay"]
        self.ending = False

    def on_eof(self, now: float) -> list[Action]:
        if self.delay == 0:
            return [End()]
        self.ending = True
        return [Wake(now + self.delay)]

    def on_timer(self, now: float) -> list[Action]:
        return [End()]  # no detail: the link passes the source's own end on

    def stop(self, now: float) -> list[Action]:
        """The window closed while the end was held: let it through now."""
        return [End()] if self.ending else []
