"""client-watchdog: close the stream when no *event* arrived for `timeout`, as clients do.

EventSource polyfills with a heartbeat timeout, and the many SDKs that hand their caller
only events, time the gap between events: comment heartbeats that keep nginx happy do not
reset them. With `counts = "bytes"` it is an HTTP client's read timeout instead (httpx's
is 5 s by default). This is `idle-timeout` seen from the other end, so it reuses it.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from typing import Any, ClassVar

from sseproxy.faults import register
from sseproxy.faults.idle_timeout import IdleTimeout
from sseproxy.params import Param

_IDLE = {param.name: param for param in IdleTimeout.params}


@register
class ClientWatchdog(IdleTimeout):
    name = "client-watchdog"
    summary = "Close when no event (or, with counts = 'bytes', no byte) arrives for `timeout`."
    # The action is fixed (a client just closes), and a client answers no status.
    params: ClassVar[tuple[Param, ...]] = (
        _IDLE["timeout"],
        dataclasses.replace(
            _IDLE["counts"],
            help="What resets the watchdog: only SSE events (EventSource-style clients, SDKs) "
            "or any byte (an HTTP client's read timeout).",
            default="events",
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__({**settings, "action": "close", "status": None}, rng)
