"""The engine's written invariants (see `sseproxy.engine`), checked by a state machine.

Random chains of every fault type in any order, with random parameters and windows, are
fed random SSE-ish chunks at random times; faults are added and retired live; the sink
sometimes stops taking output (a peer that does not read). After every step the
invariants are checked; when the source has ended the chain is run to its end.

`SSEPROXY_ENGINE_EXAMPLES` sets the number of examples (CI: 2,000, about 20 s).
"""

from __future__ import annotations

import math
import os
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from sseproxy.engine import DEFAULT_CAPACITY, Chain, FaultSlot, Stop
from sseproxy.faults import all_faults
from sseproxy.faults.base import Fault, Piece, draws_for
from sseproxy.scenario import FaultSpec
from sseproxy.sse import Framer
from sseproxy.strategies import faults

EXAMPLES = int(os.environ.get("SSEPROXY_ENGINE_EXAMPLES", "2000"))
TIMING_ONLY = ["latency", "bandwidth", "slicer", "buffer", "stall", "delay-events"]
MAX_READ = 512

_TOKENS = [
    b"data: a\n",
    b"data: b",
    b"\n",
    b"\r",
    b"\r\n",
    b": ping\n\n",
    b"id: 7\n",
    b"event: tick\n",
    b"retry: 50\n",
    b"data: \xc3\xa9\n\n",
    b"\n\n",
]
chunks = st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=8).map(b"".join)
times = st.sampled_from([0.0, 0.0, 0.001, 0.05, 0.3, 1.0, 2.5])


def _usable(spec: FaultSpec) -> bool:
    """Parameters that keep an example small: no 1 B/s pipe of single-byte slices."""
    return spec.type != "bandwidth" or bool(spec.settings["rate"] >= 256)


PURE_DELAYS = {"latency": ("delay", "jitter"), "delay-events": ("delay", "jitter")}
PURE_DELAYS |= {"slow-close": ("delay",), "buffer": ()}


def specs(types: list[str] | None) -> st.SearchStrategy[FaultSpec]:
    drawn = faults(types=types, common=False, max_duration=5.0, max_size=2048, max_count=6)
    return drawn.filter(_usable)


def _timing_only(spec: FaultSpec) -> bool:
    return spec.type in TIMING_ONLY and not (
        spec.type == "stall" and spec.settings["then"] != "release"
    )


TIMER_STOPPERS = {"lifetime", "idle-timeout", "client-watchdog", "response-timeout", "stall"}
"""Faults whose close or reset is only ever decided by a timer (or when they start)."""
ANY_FAULT = specs([*all_faults(), *TIMER_STOPPERS, "latency", "delay-events", "slow-close"])
"""Every fault, with the timers and the delays after them drawn more often."""
TIMING_FAULT = specs(TIMING_ONLY).filter(_timing_only)
WINDOWS = st.none() | st.tuples(times, times).map(lambda w: (w[0], w[0] + w[1]))


def _holds_for_good(slot: FaultSlot) -> bool:
    """Faults that may keep data (or the end) with no timer, by declaration."""
    name = type(slot.fault).name
    if name == "stall":
        return slot.active and getattr(slot.fault, "duration", None) is None
    if name in ("idle-timeout", "client-watchdog"):
        return bool(getattr(slot.fault, "dropped", False))
    return False


class Recorder:
    """Wraps a fault's `on_piece` and `on_blocks` to keep what it was offered (for the
    events invariant)."""

    def __init__(self, fault: Fault) -> None:
        self.pieces: list[Piece] = []
        self.inner = fault.on_piece

        def on_piece(piece: Piece, now: float) -> Any:
            self.pieces.append(piece)
            return self.inner(piece, now)

        fault.on_piece = on_piece  # type: ignore[method-assign]
        inner_blocks = fault.on_blocks

        def on_blocks(piece: Piece, now: float) -> Any:
            assert piece.blocks is not None
            self.pieces += [Piece(b.raw, True, b.event) for b in piece.blocks]
            return inner_blocks(piece, now)

        fault.on_blocks = on_blocks  # type: ignore[method-assign]


class EngineMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.sent = bytearray()
        self.received = bytearray()
        self.stop: Stop | None = None
        self.ended_at: float | None = None
        self.fired: list[tuple[float, str, str]] = []
        self.recorders: list[tuple[FaultSlot, Recorder]] = []
        self.blocked = False
        self.names = 0
        self.kinds: list[tuple[str, dict[str, Any]]] = []
        self.stop_due = math.inf
        self.checked = 0

    def _slot(self, spec: FaultSpec, seed: int, window: tuple[float, float] | None) -> FaultSlot:
        self.names += 1
        self.kinds.append((spec.type, spec.settings))
        fault = spec.fault_class(spec.settings, draws_for(spec.fault_class, str(seed)))
        slot = FaultSlot(f"{spec.type}-{self.names}", fault)
        if window is not None:
            slot.active_from, slot.active_until = window
        elif fault.needs_events():
            self.recorders.append((slot, Recorder(fault)))
        return slot

    @initialize(
        data=st.data(),
        timing_only=st.booleans(),
        count=st.integers(0, 4),
    )
    def build(self, data: st.DataObject, timing_only: bool, count: int) -> None:
        self.timing_only = timing_only
        drawn = TIMING_FAULT if timing_only else ANY_FAULT
        slots = []
        for _ in range(count):
            spec = data.draw(drawn)
            window = data.draw(WINDOWS)
            slots.append(self._slot(spec, data.draw(st.integers(0, 9)), window))
        self.chain = Chain(slots, 0.0, fired=self._fired)

    def _fired(self, name: str, action: str, detail: str) -> None:
        chain = getattr(self, "chain", None)
        self.fired.append((chain.clock if chain else 0.0, name, action))

    # -- rules --------------------------------------------------------------------------

    def _advance(self, dt: float) -> None:
        self.now += dt
        self.chain.tick(self.now)
        self._take()

    def _take(self) -> None:
        if self.blocked or self.stop is not None:
            return
        self.chain.tick(self.now)
        pending = [at for at, item, _ in self.chain.output if isinstance(item, Stop)]
        self.stop_due = pending[0] if pending else math.inf
        due = self.chain.take_due(self.now)
        for piece in due.pieces:
            self.received += piece.data
        if due.stop is None and due.pieces:
            due = self.chain.take_due(self.now)  # the stop, once the pieces are written
            assert not due.pieces
        if due.stop is not None:
            self.stop = due.stop
            self.stopped_at = self.now

    @precondition(lambda self: self.ended_at is None)
    @rule(data=chunks, dt=times, plain=st.booleans())
    def feed(self, data: bytes, dt: float, plain: bool) -> None:
        """`plain`: the link's reader first writes what one plain write carries (see
        `Link._write_at_once`), and the writer takes the rest."""
        self.now += dt
        self.chain.tick(self.now)
        if not self.chain.wants_input():
            self._take()
            return
        self.chain.feed(Piece(data), self.now)
        self.sent += data
        if plain and not self.blocked and self.stop is None:
            for piece in self.chain.take_due(self.now, plain=True).pieces:
                assert piece.head is None and not piece.boundary
                self.received += piece.data
        self._take()

    @rule(dt=times)
    def advance(self, dt: float) -> None:
        self._advance(dt)

    @rule()
    def advance_to_next(self) -> None:
        when = min(self.chain.next_timer(), self.chain.next_output())
        if math.isfinite(when) and when > self.now:
            self._advance(when - self.now)
        else:
            self._take()

    @rule(blocked=st.booleans())
    def sink(self, blocked: bool) -> None:
        self.blocked = blocked
        self._take()

    @precondition(lambda self: self.ended_at is None)
    @rule(kind=st.sampled_from(["end", "end", "end", "close", "reset"]), dt=times)
    def end_source(self, kind: str, dt: float) -> None:
        self.now += dt
        self.chain.source_end(Stop(kind), self.now)  # type: ignore[arg-type]
        self.ended_at = self.now
        self._take()

    @rule(data=st.data(), seed=st.integers(0, 9))
    def add_fault(self, data: st.DataObject, seed: int) -> None:
        spec = data.draw(TIMING_FAULT if self.timing_only else ANY_FAULT)
        slot = self._slot(spec, seed, None)
        self.recorders = [(s, r) for s, r in self.recorders if s is not slot]  # mid-stream
        self.chain.add(slot, self.now)
        self._take()

    @precondition(lambda self: bool(self.chain.slots))
    @rule(data=st.data())
    def retire_fault(self, data: st.DataObject) -> None:
        slot = data.draw(st.sampled_from(self.chain.slots))
        self.chain.retire(slot.name, self.now)
        self.recorders = [(s, r) for s, r in self.recorders if s is not slot]
        self._take()

    # -- invariants ---------------------------------------------------------------------

    @invariant()
    def conservation(self) -> None:
        if self.timing_only:
            assert bytes(self.received) == bytes(self.sent[: len(self.received)])

    @invariant()
    def never_paused_with_nothing_pending(self) -> None:
        chain = self.chain
        if chain.source_open and not chain.wants_input():
            assert (
                math.isfinite(chain.next_timer())
                or chain.output
                or any(_holds_for_good(slot) for slot in chain.slots)
            ), "the reader is paused, yet nothing can drain"

    @invariant()
    def timer_stops_are_on_time(self) -> None:
        chain = self.chain
        if chain.urgent:
            at, item, _ = chain.output[-1]
            assert isinstance(item, Stop)
            assert all(due == at for due, _, _ in chain.output)
            assert (at, item.origin, item.kind) in self.fired
        stops = [f for f in self.fired[self.checked :] if f[2] in ("close", "reset")]
        self.checked = len(self.fired)
        if not stops or stops[-1][1].rsplit("-", 1)[0] not in TIMER_STOPPERS:
            return
        at, name, kind = stops[-1]  # decided on a timer: due at once, ahead of queued data
        queued = [(due, s.origin, s.kind) for due, s, _ in chain.output if isinstance(s, Stop)]
        if self.stop is not None:
            assert (self.stop_due, self.stop.origin, self.stop.kind) == (at, name, kind)
        else:
            assert queued == [(at, name, kind)]
            assert all(isinstance(item, Stop) or due == at for due, item, _ in chain.output)

    @invariant()
    def memory_is_bounded(self) -> None:
        chain = self.chain
        assert chain.source_queued <= DEFAULT_CAPACITY + MAX_READ * 4
        for slot in chain.slots:
            held = slot.in_transit + (slot.fault.holding() if slot in chain.holders else 0)
            assert held <= slot.capacity + 4 * 2 * MAX_READ
            if slot.framer is not None:
                assert slot.framer.pending <= (chain.max_event_size or math.inf)

    @invariant()
    def events_are_what_a_framer_finds(self) -> None:
        for _, recorder in self.recorders:
            framer = Framer()
            expected = [
                block.event
                for block in framer.feed(b"".join(p.data for p in recorder.pieces))
                if block.event is not None
            ]
            seen = [piece.event for piece in recorder.pieces if piece.event is not None]
            assert seen == expected[: len(seen)]
            assert len(expected) - len(seen) <= 1  # a block offered but not yet complete

    def teardown(self) -> None:
        """Liveness: once the source ended, running the clock brings the chain to its end
        (unless a fault holds for good), and for pure delays in bounded time."""
        if getattr(self, "chain", None) is None or self.ended_at is None:
            return
        self.blocked = False
        for _ in range(100_000):
            self._take()
            if self.stop is not None:
                break
            when = min(self.chain.next_timer(), self.chain.next_output())
            if not math.isfinite(when):
                break
            self._advance(max(0.0, when - self.now))
        if self.stop is None:
            assert any(_holds_for_good(slot) for slot in self.chain.slots), (
                "the source ended, nothing is pending, and the end never came"
            )
            return
        if self.timing_only and self.stop.kind == "end" and self.stop.origin is None:
            assert bytes(self.received) == bytes(self.sent)
        if all(kind in PURE_DELAYS for kind, _ in self.kinds) and self.stop.origin is None:
            delays = sum(
                settings[name] for kind, settings in self.kinds for name in PURE_DELAYS[kind]
            )
            assert self.stop_due <= self.ended_at + delays + 1e-9, "the end came late"


TestEngine = EngineMachine.TestCase
TestEngine.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
