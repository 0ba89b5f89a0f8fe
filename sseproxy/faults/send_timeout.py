"""send-timeout: the client stopped reading, and a write blocked too long (nginx `send_timeout`).

nginx times "between two successive write operations" to the client (60 s by default);
a client that no longer reads (a frozen tab, a stuck consumer) fills the socket buffers
and is then cut. Nothing happens while there is nothing to send.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Action, Close, Fault
from sseproxy.params import Param
from sseproxy.units import format_duration


@register
class SendTimeout(Fault):
    name = "send-timeout"
    summary = "Close when a write to the peer stays blocked for `timeout` (it stopped reading)."
    params = (
        Param(
            "timeout", "duration", "Longest one write may wait for the peer to read.", minimum=0.001
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.timeout: float = settings["timeout"]

    def write_timeout(self) -> float | None:
        return self.timeout

    def on_write_timeout(self, now: float) -> list[Action]:
        return [Close(f"peer read nothing for {format_duration(self.timeout)}")]
