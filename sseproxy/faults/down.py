"""down: a pool member is down during the fault's `window`, as a stopped instance is.

`how = "refuse"`: connecting to the member is refused (ECONNREFUSED, simulated by the
proxy, which does not connect): the pool counts a failure, and the exchange moves on to
the next member as nginx's `proxy_next_upstream error` does; with no member left the
client gets 502. `how = "502"`: the member answers `502 Bad Gateway` itself (a
gateway in front of a dead instance); nginx does not move on for a 502 by default
(`http_502` is not in `proxy_next_upstream`'s default), so the client gets it.

Which member: `match = { upstream = "b" }`; without it, every member (or the single
upstream). The member's state, not a connection's, is what the fault changes, so it
is decided at each connect from `window` and `match.upstream` alone (`probability`,
`every`, `first` and `after` do not apply). It is carried out by `sseproxy.upstreams`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from sseproxy.faults import register
from sseproxy.faults.base import Fault
from sseproxy.params import Param


@register
class Down(Fault):
    name = "down"
    summary = "A pool member refuses connections (or answers 502) during the window."
    params = (
        Param(
            "how",
            "choice",
            "refuse (connection refused: the pool fails over) or 502 (the member answers "
            "502 Bad Gateway).",
            default="refuse",
            choices=("refuse", "502"),
        ),
    )

    def __init__(self, settings: Mapping[str, Any], rng: random.Random) -> None:
        super().__init__(settings, rng)
        self.how: str = settings["how"]
