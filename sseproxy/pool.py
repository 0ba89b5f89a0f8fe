"""An upstream pool, sans I/O: which member serves an exchange, and who is down.

`Pool` is pure state: it is told the time with every call, picks members, and is told
how connecting to them went. The proxy (`sseproxy.upstreams`) does the connecting. The
rules are nginx's upstream module's (https://nginx.org/en/docs/http/ngx_http_upstream_module.html),
so that a pool behaves as the balancer it stands in for:

- `weight` defaults to 1, `max_fails` to 1 and `fail_timeout` to 10 s (`#server`:
  "By default, the number of unsuccessful attempts is set to 1", "By default, the
  parameter is set to 10 seconds", "by default, 1" for weight). A member that failed
  `max_fails` times is skipped for `fail_timeout`, then tried again with live requests;
  `max_fails = 0` never marks it failed. As in nginx's round-robin core, a failure sets
  `fails += 1` and `checked` (and `accessed`) to now; a success resets `fails` only once
  `checked` moved past the last failure, i.e. after a `fail_timeout`; a pool of one
  member is never skipped.
- One exchange tries each member at most once (nginx's `tried` bitmap, and
  `proxy_next_upstream_tries 0`, "unlimited", bounded by the number of servers);
  `proxy_next_upstream`'s default `error timeout` means a connect error or timeout moves
  on to the next member (`sseproxy.upstreams` does that).
- When no member can be picked at all, every member's `fails` is cleared ("all peers
  failed, mark them as live for quick recovery", nginx's round robin) and the answer
  is 502 ("no live upstreams").
- `balance` picks the method: `round_robin` (nginx's default, smooth weighted round
  robin), `ip_hash` (`#ip_hash`: three octets of an IPv4 client, the whole IPv6 one; a
  failed member is skipped and the request re-hashed), `hash` (`#hash ... consistent`,
  a ketama-like ring on a header, query parameter or cookie), `random` (`#random`,
  weighted) and `least_conn` (`#least_conn`: fewest active connections by weight, ties
  by round robin).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from sseproxy.balance import IP_HASH_MAX_TRIES, Ring, ip_hash_bytes, ip_hash_step, smooth_pick

__all__ = [
    "BALANCES",
    "Attempt",
    "Balance",
    "Member",
    "MemberSpec",
    "MemberState",
    "Pool",
    "PoolSpec",
]

Balance = Literal["round_robin", "ip_hash", "hash", "random", "least_conn"]
BALANCES: tuple[str, ...] = get_args(Balance)

DEFAULT_WEIGHT = 1
DEFAULT_MAX_FAILS = 1
DEFAULT_FAIL_TIMEOUT = 10.0


@dataclass(frozen=True)
class Member:
    """One member's settings (nginx's `server` parameters; defaults as nginx's)."""

    name: str
    weight: int = DEFAULT_WEIGHT
    max_fails: int = DEFAULT_MAX_FAILS
    fail_timeout: float = DEFAULT_FAIL_TIMEOUT


@dataclass
class MemberState:
    """What the pool knows of a member now (nginx's `ngx_http_upstream_rr_peer_t`)."""

    fails: int = 0
    checked: float = -math.inf
    accessed: float = -math.inf
    conns: int = 0
    """Exchanges (HTTP) or connections (TCP) it serves now."""
    current: int = 0
    """Smooth round robin's running weight."""
    picked: int = 0
    failures: int = 0
    """Totals since the start, for `/status`-like views and tests."""


@dataclass
class Pool:
    """Members, their states, and the balancing method. All times are the caller's."""

    members: Sequence[Member]
    balance: Balance = "round_robin"
    seed: int = 0
    states: list[MemberState] = field(init=False)

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError("a pool needs at least one member")
        self.states = [MemberState() for _ in self.members]
        self.index = {member.name: i for i, member in enumerate(self.members)}
        self.weights = [member.weight for member in self.members]
        self.ring = Ring([m.name for m in self.members], self.weights)

    @property
    def names(self) -> list[str]:
        return [member.name for member in self.members]

    def state(self, name: str) -> MemberState:
        return self.states[self.index[name]]

    def available(self, i: int, now: float) -> bool:
        """False while member `i` is failed: `max_fails` failures, `fail_timeout` not over."""
        member, state = self.members[i], self.states[i]
        if len(self.members) == 1 or not member.max_fails:
            return True
        return not (state.fails >= member.max_fails and now - state.checked <= member.fail_timeout)

    def attempt(self, *, client: str = "", key: str = "", number: int = 0) -> Attempt:
        """The tries of one exchange: `client` is the address ip_hash uses, `key` the
        value hash uses, `number` the exchange (random draws from (seed, number))."""
        address = ip_hash_bytes(client) if self.balance == "ip_hash" else b""
        return Attempt(self, address, key, number)

    # -- what the caller reports

    def failed(self, name: str, now: float) -> None:
        """Connecting to `name` failed (refused, unreachable, timed out)."""
        i = self.index[name]
        state = self.states[i]
        state.conns = max(0, state.conns - 1)
        state.failures += 1
        if self.members[i].max_fails:
            state.fails += 1
            state.checked = state.accessed = now

    def connected(self, name: str, now: float) -> None:
        """Connecting to `name` worked."""
        state = self.state(name)
        if state.accessed < state.checked:
            state.fails = 0

    def released(self, name: str) -> None:
        """The exchange (or TCP connection) that `name` served is over."""
        state = self.state(name)
        state.conns = max(0, state.conns - 1)

    # -- picking

    def _take(self, i: int, now: float) -> str:
        state = self.states[i]
        state.conns += 1
        state.picked += 1
        if now - state.checked > self.members[i].fail_timeout:
            state.checked = now  # nginx: a member tried again after fail_timeout
        return self.members[i].name

    def round_robin(self, allowed: list[bool]) -> int | None:
        current = [s.current for s in self.states]
        best = smooth_pick(current, self.weights, allowed)
        for state, value in zip(self.states, current, strict=True):
            state.current = value
        return best

    def least_conn(self, allowed: list[bool]) -> int | None:
        loads = [
            self.states[i].conns / self.weights[i] if ok else math.inf
            for i, ok in enumerate(allowed)
        ]
        least = min(loads)
        if least == math.inf:
            return None
        return self.round_robin([load == least for load in loads])

    def random(self, allowed: list[bool], draw: random.Random) -> int | None:
        choices = [i for i, ok in enumerate(allowed) if ok]
        if not choices:
            return None
        return draw.choices(choices, weights=[self.weights[i] for i in choices])[0]

    def revive(self) -> None:
        """Every member failed: clear their failures for a quick recovery (nginx)."""
        for state in self.states:
            state.fails = 0


class Attempt:
    """One exchange's walk through the pool: `next` gives a member to try, or None."""

    def __init__(self, pool: Pool, address: bytes, key: str, number: int) -> None:
        self.pool = pool
        self.address = address
        self.key = key
        self.number = number
        self.tried: list[str] = []
        self.hash = 89  # nginx's ip_hash starting value
        self.steps = 0
        self.no_live = False
        """True when nothing could be picked for the first try ("no live upstreams")."""

    def next(self, now: float) -> str | None:
        pool = self.pool
        if len(self.tried) >= len(pool.members):
            return None
        allowed = [
            m.name not in self.tried and pool.available(i, now) for i, m in enumerate(pool.members)
        ]
        pick = self._pick(allowed)
        if pick is None:
            if not self.tried:
                self.no_live = True
                pool.revive()
            return None
        name = pool._take(pick, now)
        self.tried.append(name)
        return name

    def _pick(self, allowed: list[bool]) -> int | None:
        pool = self.pool
        if pool.balance == "least_conn":
            return pool.least_conn(allowed)
        if pool.balance == "random":
            draw = random.Random(f"{pool.seed}:{self.number}:{len(self.tried)}")
            return pool.random(allowed, draw)
        if pool.balance == "ip_hash" and len(pool.members) > 1:
            while self.steps <= IP_HASH_MAX_TRIES:
                self.hash, i = ip_hash_step(self.hash, self.address, pool.weights)
                if allowed[i]:
                    return i
                self.steps += 1
        if pool.balance == "hash":
            for i in pool.ring.walk(self.key)[: IP_HASH_MAX_TRIES + 1]:
                if allowed[i]:
                    return i
            return None
        return pool.round_robin(allowed)  # also ip_hash's fallback after 20 steps


@dataclass(frozen=True)
class MemberSpec:
    """A pool member as configured (`--upstream name=URL` or `[[upstreams]]`)."""

    name: str
    url: str
    weight: int = DEFAULT_WEIGHT
    max_fails: int = DEFAULT_MAX_FAILS
    fail_timeout: float = DEFAULT_FAIL_TIMEOUT
    restart_url: str | None = None
    """Where a `restart` fault POSTs so that the member forgets its sessions (optional)."""

    @property
    def member(self) -> Member:
        return Member(self.name, self.weight, self.max_fails, self.fail_timeout)


@dataclass(frozen=True)
class PoolSpec:
    """A pool as configured: its members, how it balances, and on what (`hash`)."""

    members: tuple[MemberSpec, ...] = ()
    balance: Balance = "round_robin"
    hash_key: str | None = None
