"""From a scenario to each connection's faults: who gets what, and when it acts.

Selection is deterministic: each connection draws from its own RNG derived from
(seed, connection number, fault index), so a run replays identically whatever the
interleaving, and adding a fault never changes the draws of the others.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from sseproxy.faults.base import draws_for
from sseproxy.link import FaultSlot
from sseproxy.scenario import RequestInfo, Scenario

__all__ = ["Chains", "Plan"]


@dataclass
class Chains:
    """The fault slots of one connection, per direction (`down` = server to client)."""

    down: list[FaultSlot] = field(default_factory=list)
    up: list[FaultSlot] = field(default_factory=list)

    def names(self) -> list[str]:
        return sorted({slot.name for slot in self.down + self.up})


@dataclass
class Plan:
    """The scenario in force, with the counters that `every` and `first` need."""

    scenario: Scenario
    seed: int
    started: float
    """trio time at which scenario time is 0."""
    counts: list[int] = field(default_factory=list)
    """Per fault: connections that matched."""
    picked: list[int] = field(default_factory=list)
    """Per fault: connections that `every` picked (what `first` limits)."""

    def __post_init__(self) -> None:
        self.counts = [0] * len(self.scenario.faults)
        self.picked = [0] * len(self.scenario.faults)

    def carry_counts(self, old: Plan) -> None:
        """Keep `every`/`first` counting for faults that a live change left as they were
        (same name, same spec): a changed or new fault starts counting afresh."""
        before = {spec.name: i for i, spec in enumerate(old.scenario.faults)}
        for index, spec in enumerate(self.scenario.faults):
            i = before.get(spec.name)
            if i is not None and old.scenario.faults[i] == spec:
                self.counts[index], self.picked[index] = old.counts[i], old.picked[i]

    def unlisten_window(self, now: float) -> tuple[float, float] | None:
        """The next span (trio time) during which the proxy must not listen, if any."""
        spans = [
            (max(now, self.started + spec.window.start), self.started + spec.window.end)
            for spec in self.scenario.faults
            if spec.fault_class.unlistens(spec.settings)
        ]
        spans = [(start, end) for start, end in spans if end > now]
        return min(spans) if spans else None

    def chains(
        self, number: int, request: RequestInfo | None, now: float, *, member: str | None = None
    ) -> Chains:
        """The faults for connection `number` (1-based) starting at trio time `now`, sent
        to pool member `member`."""
        chains = Chains()
        for index in range(len(self.scenario.faults)):
            found = self.select(index, number, request, now, opened=now, member=member)
            chains.down += found.down
            chains.up += found.up
        return chains

    def select(
        self,
        index: int,
        number: int,
        request: RequestInfo | None,
        now: float,
        *,
        opened: float,
        member: str | None = None,
    ) -> Chains:
        """Fault `index` for connection `number` opened at `opened`, if it gets it (counting
        it for `every` and `first`); `now` is later than `opened` for a fault added live.
        An `instant` fault (`restart`) acts at its window's start (or when it is added
        live, if later) on what is open then, so an exchange that opens later does not
        get it."""
        spec, chains = self.scenario.faults[index], Chains()
        if not spec.match.matches(request, member):
            return chains
        moment = max(self.started + spec.window.start, now)  # now > opened: added live
        if getattr(spec.fault_class, "instant", False) and opened >= moment:
            return chains
        self.counts[index] += 1
        if self.counts[index] % spec.every:
            return chains
        self.picked[index] += 1
        if spec.first is not None and self.picked[index] > spec.first:
            return chains
        if spec.probability < 1:
            draw = random.Random(f"{self.seed}:{number}:{index}")
            if draw.random() >= spec.probability:
                return chains
        until = self.started + spec.window.end
        since = max(self.started + spec.window.start, opened + spec.after, now)
        if since >= until:
            return chains
        directions = ("down", "up") if spec.direction == "both" else (spec.direction,)
        for direction in directions:
            rng = draws_for(spec.fault_class, f"{self.seed}:{number}:{index}:{direction}")
            slot = FaultSlot(spec.name, spec.fault_class(spec.settings, rng), since, until)
            (chains.down if direction == "down" else chains.up).append(slot)
        return chains
