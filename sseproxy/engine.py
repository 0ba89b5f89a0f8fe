"""One direction's fault chain as a pure state machine: pieces, ends, stops and deadlines.

No trio, no sockets, no tasks: a `Chain` is fed the source's pieces and its end together
with the current time, and answers what is due for the sink, when it next needs to be
woken, and whether the source should be read. `sseproxy.link` drives it with trio.

Theory of operation. The faults form stages 0..n-1; the sink is stage n. Everything that
travels is an item: a `Piece` of data or a `Stop` (end, close, reset). An item handed to a
stage with a due time waits until then, in order (a stage's due times never decrease), is
given to that stage's fault, and what the fault delivers moves on to the next stage. A
stage whose fault needs SSE events frames what reaches it with its own `Framer`, so it
gets whole blocks whatever stands before it (a slicer, a bandwidth limit). Items reaching
the sink wait in the output queue; `take_due` hands everything due at one instant over
at once, so the driver can write it in one go.

How stops travel. The source's end, and a stop a fault decides on seeing data ("reset
after 10 bytes"), go in order behind the data before them. A close or reset that a fault
decides on a timer (a timeout, a lifetime, a window edge, a retirement) happens at its
time: it overtakes everything downstream of its fault, including output the sink has not
taken yet, and `urgent` tells the driver to abandon a write that is blocked. A clean end
always goes in order: it cannot be clean if data before it is lost. Once a stage has
passed a stop on, later input to it is discarded. The chain owns the source's end: when a
fault that received it is retired or its window closes, whatever it hands back and then
the end are passed on, whether or not the fault implemented `stop()`.

Backpressure per stage. Bytes a stage has sent on that are not yet due at the next stage
(or not yet taken from the output queue, for the last stage), plus the bytes its fault
holds (`Fault.holding`), count against that fault's own capacity (`in_flight_limit`,
4 MiB by default); bytes queued behind earlier items at stage 0 count against the
source's. The source is read while every stage is within its capacity.

Invariants (checked by tests/test_engine_machine.py over random chains, chunkings, times
and live changes):

1. Conservation: through faults that only change timing (latency, bandwidth, slicer,
   buffer, stall, delay-events) the bytes out equal the bytes in, in order.
2. Liveness: when the source has ended and no fault stops the stream, the end reaches the
   sink no later than the largest declared delay allows. The source is never paused
   while no deadline is pending, no output waits for the sink, and no fault holds data
   for good (a `stall` without a duration).
3. Stops: a timer's close or reset reaches the sink at the time it was decided; a stop
   decided on data reaches it right after exactly the data before it.
4. Events: the events a fault sees are exactly those a `Framer` finds in the bytes that
   reach it.
5. Memory: bytes held ≤ the sum of the stages' capacities plus one read, plus at most
   `max_event_size` per framing stage.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sseproxy.faults.base import (
    Action,
    Close,
    Deliver,
    End,
    Fault,
    Note,
    Piece,
    Reset,
    Wake,
)
from sseproxy.sse import MAX_EVENT_SIZE, Block, Framer
from sseproxy.units import format_size

__all__ = ["DEFAULT_CAPACITY", "Chain", "Due", "FaultSlot", "FiredHook", "Stop", "StopKind"]

StopKind = Literal["end", "close", "reset"]
DEFAULT_CAPACITY = 4 * 1024 * 1024
"""Bytes a stage may have in flight when its fault declares no capacity of its own."""

FiredHook = Callable[[str, str, str], None]
"""(fault name, action, detail) -> None: a fault changed the stream's fate (or noted)."""

_STOPS: dict[type, StopKind] = {End: "end", Close: "close", Reset: "reset"}
_SOURCE = -1
"""Charge index of bytes queued at stage 0 (the source's budget)."""


@dataclass(frozen=True, slots=True)
class Stop:
    """How a direction ends. `origin` is the deciding fault's name, None for the source."""

    kind: StopKind
    origin: str | None = None
    detail: str = ""
    error: BaseException | None = None
    status: int | None = None


@dataclass(slots=True)
class FaultSlot:
    """One fault in a chain, with the span of time it is active (the driver's clock)."""

    name: str
    fault: Fault
    active_from: float = -math.inf
    active_until: float = math.inf
    active: bool = False
    done: bool = False
    """A stop has passed this stage: later input is discarded."""
    wake_at: float | None = None
    """When the fault asked to be woken (its latest `Wake`)."""
    wake_queued: float | None = None
    """The time of this slot's one wake-up entry in the heap, if any."""
    source_end: Stop | None = None
    """The source's end, once it reached this fault (passed on when the fault lets go)."""
    framer: Framer | None = None
    capacity: int = DEFAULT_CAPACITY
    in_transit: int = 0
    """Bytes this stage sent on that the next stage (or the sink) has not taken yet."""
    waiting: int = 0
    """Items queued for this stage in the heap (later ones must queue behind them)."""
    last_due: float = -math.inf
    """The due time of the latest item handed to this stage."""
    overflow_noted: bool = False


@dataclass
class Due:
    """What the sink must do now: write `pieces` (in order), then carry out `stop`."""

    pieces: list[Piece] = field(default_factory=list)
    stop: Stop | None = None

    def __bool__(self) -> bool:
        return bool(self.pieces) or self.stop is not None


_Item = Piece | Stop
_ITEM, _WAKE, _ACTIVATE, _DEACTIVATE = range(4)


class Chain:
    """The fault chain of one direction (see the module docstring)."""

    def __init__(
        self,
        slots: Sequence[FaultSlot],
        now: float,
        *,
        fired: FiredHook | None = None,
        max_event_size: int | None = MAX_EVENT_SIZE,
    ) -> None:
        self.slots: list[FaultSlot] = []
        self.fired = fired
        self.max_event_size = max_event_size
        self.heap: list[tuple[float, int, int, int, object]] = []
        self.seq = itertools.count()
        self.output: deque[tuple[float, _Item, int]] = deque()
        """Items for the sink: (due, item, charged stage)."""
        self.output_last = -math.inf
        self.output_closed = False
        """A stop is queued for the sink: nothing may follow it."""
        self.source_queued = 0
        self.holders: list[FaultSlot] = []
        self.watchers: list[FaultSlot] = []
        """Slots whose fault may limit a blocked write (`write_watchdog` asks only them:
        it is asked before every write)."""
        self.clock = now
        self.source_open = True
        """False once some stage passed a stop on: reading the source is pointless."""
        self.urgent = False
        """A timer's stop waits in the output: a write still blocked must be abandoned."""
        self.finished = False
        """`take_due` has handed the final stop over."""
        self.head_fed = False
        """A response head came from the source: a fault added later comes too late for it."""
        for slot in slots:
            self._arm(slot, now)
        self._run(now)

    # -- inputs ---------------------------------------------------------------------------

    def feed(self, piece: Piece, now: float) -> None:
        """A piece read from the source (in HTTP mode the first is the response head)."""
        if piece.head is not None:
            self.head_fed = True
        self._run(now)
        if self.source_open:
            self._send(0, piece, now, _SOURCE)

    def source_end(self, stop: Stop, now: float) -> None:
        """The source ended (`end`) or failed (`close`/`reset` with its error)."""
        self._run(now)
        if self.source_open:
            self._send(0, stop, now, _SOURCE)

    def tick(self, now: float) -> None:
        """Time has reached `now`: run every timer and delivery due by then."""
        self._run(now)

    def add(self, slot: FaultSlot, now: float) -> None:
        """Append a fault to the running chain; it sees what reaches its place from now on
        (a fault that needs events finds its footing at the next blank line)."""
        self._run(now)
        if self.finished:
            return
        self._arm(slot, now)
        self._run(now)

    def retire(self, name: str, now: float) -> bool:
        """Switch a fault off for good: it hands back what it holds, and the source's end
        if it had it. False if no such fault is active or pending."""
        self._run(now)
        found = False
        for index, slot in enumerate(self.slots):
            if slot.name == name and slot.active_until > now:
                found = True
                slot.active_until = now
                if slot.active and not slot.done:
                    self._deactivate(index, now)
        return found

    def write_timed_out(self, slot: FaultSlot, now: float) -> Stop:
        """A write blocked for `slot`'s write timeout: how the fault ends the stream."""
        actions = slot.fault.on_write_timeout(now)
        stop = next((a for a in actions if isinstance(a, End | Close | Reset)), None)
        stop = stop or Close("write timed out")
        kind = _STOPS[type(stop)]
        if kind == "end":
            kind = "close"  # a half-written chunk cannot end cleanly
        self._fire(slot.name, kind, stop.detail)
        self.finished = True
        return Stop(kind, slot.name, stop.detail)

    # -- outputs --------------------------------------------------------------------------

    def take_due(self, now: float, *, plain: bool = False) -> Due:
        """Everything due at the sink by `now`, in order: the pieces (one write), or, once
        they are written, the stop. With `plain`, only the data pieces before the first
        stop, response head or `boundary` piece (what one plain write can carry)."""
        self._run(now)
        due = Due()
        output = self.output
        while output and output[0][0] <= now:
            _, item, charged = output[0]
            if plain and (isinstance(item, Stop) or item.head is not None or item.boundary):
                break
            if isinstance(item, Stop):
                if not due.pieces:  # alone: a timer's stop may still replace it meanwhile
                    output.popleft()
                    due.stop = item
                    self.finished = True
                    self.urgent = False
                break
            output.popleft()
            self._release(charged, len(item.data))
            due.pieces.append(item)
        return due

    def next_timer(self) -> float:
        """When a timer or a delivery inside the chain is next due (inf: none)."""
        return self.heap[0][0] if self.heap else math.inf

    def next_output(self) -> float:
        """When the sink next has something due (inf: nothing queued)."""
        return self.output[0][0] if self.output else math.inf

    def wants_input(self) -> bool:
        """Read the source now? False once a stop was decided, or while a stage is over
        its capacity (it drains as its deliveries come due or the sink takes them)."""
        if not self.source_open:
            return False
        if self.source_queued > DEFAULT_CAPACITY:
            return False
        for slot in self.slots:
            if slot.in_transit > slot.capacity:
                return False
        return all(slot.fault.holding() + slot.in_transit <= slot.capacity for slot in self.holders)

    def write_watchdog(self) -> tuple[FaultSlot, float] | None:
        """The active fault with the shortest limit on one blocked write, if any."""
        limits = [
            (slot, limit)
            for slot in self.watchers
            if slot.active and not slot.done and (limit := slot.fault.write_timeout()) is not None
        ]
        return min(limits, key=lambda pair: pair[1]) if limits else None

    def held(self) -> int:
        """Bytes inside the chain: in transit, held by faults, or buffered for framing."""
        total = self.source_queued + sum(slot.in_transit for slot in self.slots)
        total += sum(slot.fault.holding() for slot in self.holders)
        return total + sum(slot.framer.pending for slot in self.slots if slot.framer)

    # -- the machine ----------------------------------------------------------------------

    def _arm(self, slot: FaultSlot, now: float) -> None:
        index = len(self.slots)
        self.slots.append(slot)
        fault = slot.fault
        if self.head_fed:
            fault.response_started = True
        if type(fault).holding is not Fault.holding:
            self.holders.append(slot)
        if type(fault).write_timeout is not Fault.write_timeout:
            self.watchers.append(slot)
        limit = fault.in_flight_limit()
        slot.capacity = DEFAULT_CAPACITY if limit is None else limit
        if fault.needs_events():
            slot.framer = Framer(self.max_event_size)
        if slot.active_from <= now < slot.active_until:
            self._activate(index, now)
        elif now < slot.active_from:
            self._schedule(slot.active_from, _ACTIVATE, index, None)
        if slot.active_until < math.inf:
            self._schedule(slot.active_until, _DEACTIVATE, index, None)

    def _run(self, now: float) -> None:
        """Process the heap in time order up to `now`."""
        heap = self.heap
        while heap and heap[0][0] <= now:
            at, _, index, kind, payload = heapq.heappop(heap)
            self.clock = max(self.clock, at)
            self._dispatch(index, kind, payload, self.clock)
        self.clock = max(self.clock, now)

    def _schedule(self, at: float, kind: int, index: int, payload: object) -> None:
        heapq.heappush(self.heap, (at, next(self.seq), index, kind, payload))

    def _send(self, index: int, item: _Item, at: float, charge: int) -> None:
        """Hand `item` to stage `index` (the sink when past the last) at `at`, never
        before what that stage already has; `charge` is the sending stage."""
        is_piece = isinstance(item, Piece)
        size = len(item.data) if isinstance(item, Piece) else 0
        if index == len(self.slots):
            if self.output_closed:
                return  # nothing follows the stop
            if at < self.output_last:
                at = self.output_last
            self.output_last = at
            self.output.append((at, item, charge))
            if charge == _SOURCE:
                self.source_queued += size
            else:
                self.slots[charge].in_transit += size
            if not is_piece:
                self.source_open = False
                self.output_closed = True
            return
        slot = self.slots[index]
        if at < slot.last_due:
            at = slot.last_due
        slot.last_due = at
        if at <= self.clock and not slot.waiting:
            self._arrive(index, item, self.clock)
            return
        slot.waiting += 1
        self._charge(charge, size)
        self._schedule(at, _ITEM, index, (item, charge))

    def _charge(self, charge: int, size: int) -> None:
        if charge == _SOURCE:
            self.source_queued += size
        else:
            self.slots[charge].in_transit += size

    def _release(self, charge: int, size: int) -> None:
        self._charge(charge, -size)

    def _dispatch(self, index: int, kind: int, payload: object, now: float) -> None:
        slot = self.slots[index]
        if kind == _ITEM:
            assert isinstance(payload, tuple)
            item: _Item = payload[0]
            charge: int = payload[1]
            slot.waiting -= 1
            self._release(charge, len(item.data) if isinstance(item, Piece) else 0)
            self._arrive(index, item, now)
        elif slot.done:
            return
        elif kind == _WAKE:
            if payload != slot.wake_queued:
                return  # superseded by an earlier entry
            slot.wake_queued = None
            if slot.wake_at is None or not slot.active:
                return
            if slot.wake_at > now:
                slot.wake_queued = slot.wake_at
                self._schedule(slot.wake_at, _WAKE, index, slot.wake_at)
            else:
                slot.wake_at = None
                self._apply(index, slot.fault.on_timer(now), now, timed=True)
        elif kind == _ACTIVATE and now < slot.active_until and not slot.active:
            self._activate(index, now)
        elif kind == _DEACTIVATE and slot.active:
            self._deactivate(index, now)

    def _activate(self, index: int, now: float) -> None:
        slot = self.slots[index]
        slot.active = True
        self._apply(index, slot.fault.start(now), now, timed=True)

    def _deactivate(self, index: int, now: float) -> None:
        """The window closed or the fault was retired: it hands back what it holds, and
        the chain passes on the source's end if the fault had it."""
        slot = self.slots[index]
        slot.active = False
        slot.wake_at = None
        self._apply(index, slot.fault.stop(now), now, timed=True)
        if not slot.done and slot.source_end is not None:
            self._pass_stop(index, slot.source_end, now)

    def _arrive(self, index: int, item: _Item, now: float) -> None:
        slot = self.slots[index]
        if slot.done:
            return
        if isinstance(item, Stop):
            self._flush_framer(index, now)
            if slot.done:
                return
            if not slot.active:
                self._pass_stop(index, item, now)
            elif item.kind == "end":
                slot.source_end = item
                self._apply(index, slot.fault.on_eof(now), now, timed=False)
            else:
                for action in slot.fault.on_abort(now):  # what it lets out before the cut
                    if isinstance(action, Deliver):
                        self._send(index + 1, action.piece, action.at, index)
                self._pass_stop(index, item, now)
            return
        if item.head is not None:
            slot.fault.response_started = True
        framer = slot.framer
        if framer is None or not item.data:
            self._offer(index, item, now)
            return
        blocks: Sequence[Block]
        if item.blocks is not None and framer.between_blocks:
            framer.skip_blocks(item.blocks)  # an earlier stage framed them: no second parse
            blocks = item.blocks
        else:
            blocks = framer.feed(item.data)
        if len(blocks) > 1 and slot.active and self._offer_blocks(index, blocks, now):
            return
        for block in blocks:
            if slot.done:
                return
            if block.partial:
                self._note_overflow(slot)
                self._offer(index, Piece(block.raw), now)
            else:
                piece = Piece(block.raw, True, block.event, last_id=block.last_event_id)
                self._offer(index, piece, now)

    def _offer_blocks(self, index: int, blocks: Sequence[Block], now: float) -> bool:
        """Whole blocks that arrived together, as one piece, to a fault that can take them
        so (`Fault.on_blocks`); False when it cannot, or one of them outgrew the framer."""
        fault = self.slots[index].fault
        if type(fault).on_blocks is Fault.on_blocks:
            return False
        raws = []
        for block in blocks:
            if block.partial:
                return False
            raws.append(block.raw)
        piece = Piece(b"".join(raws), last_id=blocks[-1].last_event_id, blocks=blocks)
        actions = fault.on_blocks(piece, now)
        if actions is None:
            return False
        self._apply(index, actions, now, timed=False)
        return True

    def _offer(self, index: int, piece: Piece, now: float) -> None:
        slot = self.slots[index]
        if not slot.active:
            self._send(index + 1, piece, now, index)
        else:
            self._apply(index, slot.fault.on_piece(piece, now), now, timed=False)

    def _flush_framer(self, index: int, now: float) -> None:
        """Before an end passes: the bytes of an incomplete trailing block, unframed."""
        slot = self.slots[index]
        if slot.framer is not None and slot.framer.pending:
            rest = slot.framer.close()
            slot.framer = Framer(self.max_event_size)
            self._offer(index, Piece(rest), now)

    def _note_overflow(self, slot: FaultSlot) -> None:
        if not slot.overflow_noted:
            slot.overflow_noted = True
            limit = format_size(self.max_event_size or 0)
            self._fire(slot.name, "note", f"an event outgrew {limit}: relayed unparsed")

    def _pass_stop(self, index: int, stop: Stop, now: float) -> None:
        self.slots[index].done = True
        self.source_open = False
        self._send(index + 1, stop, now, index)

    def _apply(self, index: int, actions: list[Action], now: float, *, timed: bool) -> None:
        slot = self.slots[index]
        for action in actions:
            if isinstance(action, Deliver):
                self._send(index + 1, action.piece, action.at, index)
            elif isinstance(action, Note):
                self._fire(slot.name, "note", action.detail)
            elif isinstance(action, Wake):
                # One heap entry per slot: a wake-up moved later (idle-timeout, on every
                # piece) reuses the queued entry, which re-queues itself when it comes due.
                slot.wake_at = action.at
                queued = slot.wake_queued
                if action.at is not None and (queued is None or action.at < queued):
                    slot.wake_queued = action.at
                    self._schedule(action.at, _WAKE, index, action.at)
            else:
                kind = _STOPS[type(action)]
                if slot.source_end is not None and kind == "end" and not action.detail:
                    self._pass_stop(index, slot.source_end, now)  # the source's own end
                    return
                urgent = timed and kind != "end"
                stop = Stop(kind, slot.name, action.detail, status=action.status)
                if not self._can_reach_sink(index, urgent):
                    slot.done = True  # the stream is over further down: nothing to journal
                elif urgent:
                    self._fire(slot.name, kind, action.detail)
                    self._cut(index, stop, now)
                else:
                    self._fire(slot.name, kind, action.detail)
                    self._pass_stop(index, stop, now)
                return

    def _can_reach_sink(self, index: int, urgent: bool) -> bool:
        """Would a stop decided at stage `index` still happen? Not once the final stop was
        handed over or a timer's stop is on its way; an ordered one not behind a later
        stage that already stopped (a timer's stop overtakes such an ordered stop)."""
        if self.finished or self.urgent:
            return False
        if urgent:
            return True
        return not self.output_closed and not any(slot.done for slot in self.slots[index + 1 :])

    def _cut(self, index: int, stop: Stop, now: float) -> None:
        """A timer's close or reset: it overtakes everything downstream of stage `index`.
        Later faults may still let something out (`on_abort`, e.g. a held response head);
        the rest of what they hold and what the sink has not taken is dropped."""
        self.slots[index].done = True
        self.source_open = False
        for _, item, charged in self.output:
            if isinstance(item, Piece):
                self._release(charged, len(item.data))
        self.output.clear()
        for later in self.slots[index + 1 :]:
            if later.active and not later.done:
                for action in later.fault.on_abort(now):
                    if isinstance(action, Deliver):
                        self.output.append((now, action.piece, _SOURCE))
                        self._charge(_SOURCE, len(action.piece.data))
            later.done = True
        self.output.append((now, stop, _SOURCE))
        self.output_last = now
        self.output_closed = self.urgent = True

    def _fire(self, name: str, action: str, detail: str) -> None:
        if self.fired is not None:
            self.fired(name, action, detail)
