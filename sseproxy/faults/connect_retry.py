"""connect-retries: retry a refused upstream connect, then answer a status, as HAProxy does.

HAProxy retries a failed connect `retries` times (3 by default), pausing
min(`timeout connect`, 1 s) before each retry, and then answers `503 Service
Unavailable` ("No server is available to handle this request."): 3.00 s with its
defaults, 0.60 s with `timeout connect 200ms` (measured in tests/peers, see
docs/fidelity.md row 8). nginx answers 502 at once instead (no such fault).

`retries` more connects to the same upstream follow the first, each after
min(`wait`, the proxy's connect timeout); when the last fails the client gets `status`.
Used at connect time by `sseproxy.upstreams`; the fault itself leaves the stream alone.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Fault
from sseproxy.params import Param


@register
class ConnectRetry(Fault):
    name = "connect-retries"
    summary = "Retry a failed upstream connect `retries` times, `wait` apart, then answer `status`."
    params = (
        Param("retries", "int", "Connects after the first.", default=3, minimum=0, maximum=100),
        Param(
            "wait",
            "duration",
            "Pause before each retry (at most the proxy's connect timeout).",
            default=1.0,
            minimum=0,
        ),
        Param(
            "status",
            "int",
            "The status once every connect failed.",
            default=503,
            minimum=500,
            maximum=599,
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.retries: int = settings["retries"]
        self.wait: float = settings["wait"]
        self.status: int = settings["status"]
