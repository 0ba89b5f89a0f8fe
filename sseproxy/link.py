"""One direction of a connection: pump bytes from a source to a sink, doing what faults say.

Theory of operation. The faults of one direction form a chain of stages; the sink is the
stage after the last fault. Everything that travels is an *item*: a `Piece` of data or a
`_Stop` (end, close or reset). An item handed to stage j at time `at` waits in a heap
until then (in order: a stage's due times never decrease), is given to fault j, and
whatever fault j delivers moves on to stage j+1. Items reaching the sink queue are written
by the writer task at their due time. Three tasks share the work:

- the reader reads the source (continuing while earlier pieces wait: latency does not
  throttle) and feeds stage 0, ending with a `_Stop` for the source's end or failure;
- the timer task sleeps until the earliest due item, fault wake-up or window edge;
- the writer writes the sink queue and performs the final stop.

A stop travels in order behind the data its stage already delivered, so "reset after 10
bytes" reaches the peer as exactly 10 bytes and then an RST. Once a stage has passed a
stop on, later input to it is discarded. With no fault at all, `pump` copies bytes
straight across (the fast path).
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import trio

from sseproxy.faults.base import (
    Action,
    Close,
    Deliver,
    End,
    Fault,
    Note,
    Piece,
    Reset,
    ResponseHead,
    Wake,
)
from sseproxy.sse import Framer
from sseproxy.transport import Sink, StopKind

__all__ = ["FaultSlot", "HeadError", "LinkResult", "Observer", "StopKind", "pump", "run_link"]

CHUNK = 256 * 1024
WATCHED_SLICE = 16 * 1024
"""Under a write timeout, writes go out in slices this big, each timed on its own."""
MAX_IN_FLIGHT = 4 * 1024 * 1024
"""Bytes waiting inside a link before the reader pauses (backpressure toward the source)."""

Observer = Callable[[bytes], None]
HeadReader = Callable[[], Awaitable[ResponseHead]]
"""Reads a response head before the body (HTTP mode); raises HeadError when it cannot."""
FiredHook = Callable[[str, str, str], None]
"""(fault name, action, detail) -> None: a fault changed the stream's fate."""


@dataclass
class FaultSlot:
    """One fault in a link's chain, with the span of time it is active (trio clock)."""

    name: str
    fault: Fault
    active_from: float = -math.inf
    active_until: float = math.inf
    active: bool = False
    done: bool = False
    wake_at: float | None = None
    """When the fault asked to be woken (its latest `Wake`)."""
    wake_queued: float | None = None
    """The time of this slot's one wake-up entry in the heap, if any."""
    source_end: _Stop | None = None
    """The source's end, once it reached this fault (a fault may pass it on later)."""


@dataclass(frozen=True)
class LinkResult:
    """How a direction ended: its final stop and who caused it.

    `origin` is a fault's name, or None when the source ended (`error` tells whether it
    failed) or the sink failed (`kind` is then "sink-error").
    """

    kind: StopKind | Literal["sink-error"]
    origin: str | None = None
    detail: str = ""
    error: BaseException | None = None


class HeadError(trio.BrokenResourceError):
    """No response head: the proxy answers `status` itself; `reason` is for the journal."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class _Stop:
    kind: StopKind
    origin: str | None
    detail: str = ""
    error: BaseException | None = None
    status: int | None = None


_Item = Piece | _Stop
_STOPS: dict[type, StopKind] = {End: "end", Close: "close", Reset: "reset"}


async def pump(
    source: trio.abc.ReceiveStream,
    sink: Sink,
    observe: Observer | None,
    head: HeadReader | None = None,
) -> LinkResult:
    """The fast path: no fault on this direction, so copy bytes as they arrive."""
    stop = _Stop("end", None)
    try:
        if head is not None:
            await _send(sink, Piece(b"", head=await head()))
        while True:
            data = bytes(await source.receive_some(CHUNK))
            if not data:
                break
            await _send(sink, Piece(data))
            if observe is not None:
                observe(data)
    except _SinkFailed as failed:
        return LinkResult("sink-error", error=failed.error)
    except _BROKEN as error:
        stop = _source_failed(error)
    try:
        await sink.stop(stop.kind, stop.status, stop.detail)
    except _BROKEN as error:
        return LinkResult("sink-error", error=error)
    return LinkResult(stop.kind, error=stop.error)


_BROKEN = (trio.BrokenResourceError, trio.ClosedResourceError)


class _SinkFailed(Exception):
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _send(sink: Sink, piece: Piece) -> None:
    """Write to the sink, telling its failures apart from the source's."""
    try:
        await sink.send(piece)
    except _BROKEN as error:
        raise _SinkFailed(error) from error


def _source_failed(error: BaseException) -> _Stop:
    status = error.status if isinstance(error, HeadError) else None
    return _Stop("close", None, str(error), error, status)


async def run_link(
    source: trio.abc.ReceiveStream,
    sink: Sink,
    slots: Sequence[FaultSlot],
    *,
    observe: Observer | None = None,
    fired: FiredHook | None = None,
    head: HeadReader | None = None,
    live: set[Link] | None = None,
) -> LinkResult:
    """Relay one direction through `slots`; returns once the sink has been ended or failed.

    With `head`, the first piece is the response head it reads (HTTP mode), so faults
    are active from the request on and can act before the response starts. With `live`,
    the link is in that set while it runs, so faults can be added and retired live (and
    the fast path is not taken even without faults).
    """
    if not slots and live is None:
        return await pump(source, sink, observe, head)
    link = Link(source, sink, list(slots), observe, fired, head)
    if live is None:
        return await link.run()
    live.add(link)
    try:
        return await link.run()
    finally:
        live.discard(link)


@dataclass(eq=False)
class Link:
    """A direction with a chain of faults (see the module docstring); `run_link` makes one."""

    source: trio.abc.ReceiveStream
    sink: Sink
    slots: list[FaultSlot]
    observe: Observer | None
    fired: FiredHook | None
    head: HeadReader | None = None
    framer: Framer | None = None
    heap: list[tuple[float, int, int, str, object]] = field(default_factory=list)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    last_due: list[float] = field(default_factory=list)
    waiting: list[int] = field(default_factory=list)
    queue: deque[tuple[float, _Item]] = field(default_factory=deque)
    in_flight: int = 0
    max_in_flight: int = MAX_IN_FLIGHT
    holders: list[FaultSlot] = field(default_factory=list)
    queue_changed: trio.Event = field(default_factory=trio.Event)
    room: trio.Event = field(default_factory=trio.Event)
    timer_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    reader_scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    async def run(self) -> LinkResult:
        stages = len(self.slots) + 1
        self.last_due = [-math.inf] * stages
        self.waiting = [0] * stages
        if any(slot.fault.needs_events() for slot in self.slots):
            self.framer = Framer()
        now = trio.current_time()
        for index in range(len(self.slots)):
            self._arm(index, now)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read)
            nursery.start_soon(self._timers)
            result = await self._write()
            nursery.cancel_scope.cancel()
        return result

    def _arm(self, index: int, now: float) -> None:
        """Take a slot into account: backpressure, framing, and its window."""
        slot = self.slots[index]
        if type(slot.fault).holding is not Fault.holding:
            self.holders.append(slot)
        limit = slot.fault.in_flight_limit()
        if limit is not None:
            self.max_in_flight = min(self.max_in_flight, limit)
        if slot.active_from <= now < slot.active_until:
            self._activate(index, now)
        elif now < slot.active_from:
            self._schedule(slot.active_from, "activate", index, None)
        if slot.active_until < math.inf:
            self._schedule(slot.active_until, "deactivate", index, None)

    # -- live changes (control API, sseproxy.testing) -------------------------------------

    def add(self, slot: FaultSlot) -> None:
        """Append a fault to the running chain; it sees what is read from now on.

        A fault that needs SSE events switches framing on from the next chunk: if that
        falls inside an event, the framer finds its footing at the next blank line.
        """
        stage = len(self.slots)
        self.slots.append(slot)
        self.last_due.insert(stage, -math.inf)
        self.waiting.insert(stage, 0)
        if slot.fault.needs_events() and self.framer is None:
            self.framer = Framer()
        self._arm(stage, trio.current_time())

    def retire(self, name: str) -> bool:
        """Switch a fault off for good (it hands back what it holds); False if absent."""
        now = trio.current_time()
        found = False
        for stage, slot in enumerate(self.slots):
            if slot.name == name and slot.active_until > now:
                found = True
                slot.active_until = now
                if slot.active and not slot.done:
                    self._dispatch(stage, "deactivate", None, now)
        return found

    # -- the three tasks ----------------------------------------------------------------

    async def _read(self) -> None:
        with self.reader_scope:
            if self.reader_scope.cancel_called:
                return  # a fault already decided (status, refuse): do not even connect
            try:
                if self.head is not None:
                    head = await self.head()
                    now = trio.current_time()
                    self._send(0, Piece(b"", head=head), now, now)
                while True:
                    while self._backlog() > self.max_in_flight:
                        self.room = trio.Event()
                        await self.room.wait()
                    data = bytes(await self.source.receive_some(CHUNK))
                    now = trio.current_time()
                    if not data:
                        break
                    if self.framer is None:
                        self._send(0, Piece(data), now, now)
                        continue
                    for block in self.framer.feed(data):
                        self._send(0, Piece(block.raw, True, block.event), now, now)
            except _BROKEN as error:
                self._flush_framer()
                now = trio.current_time()
                self._send(0, _source_failed(error), now, now)
                return
            self._flush_framer()
            now = trio.current_time()
            self._send(0, _Stop("end", None), now, now)

    def _flush_framer(self) -> None:
        if self.framer is not None and (rest := self.framer.close()):
            now = trio.current_time()
            self._send(0, Piece(rest), now, now)

    async def _timers(self) -> None:
        while True:
            deadline = self.heap[0][0] if self.heap else math.inf
            with trio.CancelScope(deadline=deadline) as self.timer_scope:
                await trio.sleep_forever()
            now = trio.current_time()
            while self.heap and self.heap[0][0] <= now:
                _, _, index, kind, payload = heapq.heappop(self.heap)
                self._dispatch(index, kind, payload, now)

    async def _write(self) -> LinkResult:
        while True:
            while not self.queue:
                self.queue_changed = trio.Event()
                await self.queue_changed.wait()
            at, item = self.queue[0]
            await trio.sleep_until(at)
            self.queue.popleft()
            try:
                if isinstance(item, Piece):
                    self._release(len(item.data))
                    watchdog = self._write_watchdog()
                    if watchdog is not None:
                        if not await self._send_watched(item, *watchdog):
                            return await self._write_timed_out(watchdog[0])
                        continue
                    await self.sink.send(item)
                    if self.observe is not None and item.data:
                        self.observe(item.data)
                    continue
                self.reader_scope.cancel()
                await self.sink.stop(item.kind, item.status, item.detail)
            except _BROKEN as error:
                return LinkResult("sink-error", error=error)
            return LinkResult(item.kind, item.origin, item.detail, item.error)

    async def _send_watched(self, piece: Piece, slot: FaultSlot, limit: float) -> bool:
        """Write in slices, each allowed `limit`: nginx times the gap between writes that
        make progress, not a whole write. False when a slice made none in time."""
        if not piece.data:
            with trio.move_on_after(limit):
                await self.sink.send(piece)
                return True
            return False
        for start in range(0, len(piece.data), WATCHED_SLICE):
            part = piece.data[start : start + WATCHED_SLICE]
            with trio.move_on_after(limit):
                await self.sink.send(Piece(part, piece.framed, piece.event))
                if self.observe is not None:
                    self.observe(part)
                continue
            return False
        return True

    def _write_watchdog(self) -> tuple[FaultSlot, float] | None:
        """The active fault with the shortest limit on one blocked write, if any."""
        limits = [
            (slot, limit)
            for slot in self.slots
            if slot.active and not slot.done and (limit := slot.fault.write_timeout()) is not None
        ]
        return min(limits, key=lambda pair: pair[1]) if limits else None

    async def _write_timed_out(self, slot: FaultSlot) -> LinkResult:
        """The peer stopped reading: the write cannot be finished, so stop right here."""
        stops = [
            a
            for a in slot.fault.on_write_timeout(trio.current_time())
            if isinstance(a, End | Close | Reset)
        ]
        stop = stops[0] if stops else Close("write timed out")
        kind = _STOPS[type(stop)]
        if kind == "end":
            kind = "close"  # a half-written chunk cannot end cleanly
        if self.fired is not None:
            self.fired(slot.name, kind, stop.detail)
        self.reader_scope.cancel()
        with contextlib.suppress(*_BROKEN):
            await self.sink.stop(kind, stop.status, stop.detail)
        return LinkResult(kind, slot.name, stop.detail)

    # -- moving items between stages ---------------------------------------------------

    def _send(self, stage: int, item: _Item, at: float, now: float) -> None:
        """Hand `item` to `stage` at `at` (never before what that stage already has)."""
        at = max(at, self.last_due[stage])
        self.last_due[stage] = at
        if isinstance(item, Piece):
            self.in_flight += len(item.data)
        if stage == len(self.slots):
            self.queue.append((at, item))
            self.queue_changed.set()
        elif at <= now and not self.waiting[stage]:
            self._arrive(stage, item, now)
        else:
            self.waiting[stage] += 1
            self._schedule(at, "item", stage, item)

    def _arrive(self, stage: int, item: _Item, now: float) -> None:
        if isinstance(item, Piece):
            self._release(len(item.data))
        slot = self.slots[stage]
        if isinstance(item, Piece) and item.head is not None:
            slot.fault.response_started = True
        if slot.done:
            return
        if not slot.active:
            if isinstance(item, Piece):
                self._send(stage + 1, item, now, now)
            else:
                self._pass_stop(stage, item, now)
        elif isinstance(item, Piece):
            self._apply(stage, slot.fault.on_piece(item, now), now)
        elif item.kind == "end":
            slot.source_end = item
            self._apply(stage, slot.fault.on_eof(now), now)
        else:
            for action in slot.fault.on_abort(now):  # what it lets out before the cut
                if isinstance(action, Deliver):
                    self._send(stage + 1, action.piece, action.at, now)
            self._pass_stop(stage, item, now)

    def _pass_stop(self, stage: int, stop: _Stop, now: float) -> None:
        self.slots[stage].done = True
        self._send(stage + 1, stop, now, now)

    def _apply(self, stage: int, actions: list[Action], now: float) -> None:
        slot = self.slots[stage]
        for action in actions:
            if isinstance(action, Deliver):
                self._send(stage + 1, action.piece, action.at, now)
            elif isinstance(action, Note):
                if self.fired is not None:
                    self.fired(slot.name, "note", action.detail)
            elif isinstance(action, Wake):
                # One heap entry per slot: a wake-up moved later (idle-timeout, on every
                # piece) reuses the queued entry, which re-queues itself when it comes due.
                slot.wake_at = action.at
                queued = slot.wake_queued
                if action.at is not None and (queued is None or action.at < queued):
                    slot.wake_queued = action.at
                    self._schedule(action.at, "wake", stage, action.at)
            else:
                kind = _STOPS[type(action)]
                if slot.source_end is not None and kind == "end" and not action.detail:
                    stop = slot.source_end  # the fault passes the source's own end on
                else:
                    stop = _Stop(kind, slot.name, action.detail, status=action.status)
                    if self.fired is not None:
                        self.fired(slot.name, kind, action.detail)
                self.reader_scope.cancel()
                self._pass_stop(stage, stop, now)
                return

    def _dispatch(self, stage: int, kind: str, payload: object, now: float) -> None:
        slot = self.slots[stage] if stage < len(self.slots) else None
        if kind == "item":
            self.waiting[stage] -= 1
            assert isinstance(payload, Piece | _Stop)
            self._arrive(stage, payload, now)
        elif slot is None or slot.done:
            return
        elif kind == "wake":
            if payload != slot.wake_queued:
                return  # superseded by an earlier entry
            slot.wake_queued = None
            if slot.wake_at is None or not slot.active:
                return
            if slot.wake_at > now:
                slot.wake_queued = slot.wake_at
                self._schedule(slot.wake_at, "wake", stage, slot.wake_at)
            else:
                slot.wake_at = None
                self._apply(stage, slot.fault.on_timer(now), now)
        elif kind == "activate" and now < slot.active_until:
            self._activate(stage, now)
        elif kind == "deactivate" and slot.active:
            slot.active = False
            slot.wake_at = None
            self._apply(stage, slot.fault.stop(now), now)

    def _activate(self, stage: int, now: float) -> None:
        self.slots[stage].active = True
        self._apply(stage, self.slots[stage].fault.start(now), now)

    def _schedule(self, at: float, kind: str, stage: int, payload: object) -> None:
        heapq.heappush(self.heap, (at, next(self.seq), stage, kind, payload))
        if at < self.timer_scope.deadline:
            self.timer_scope.deadline = at

    def _release(self, size: int) -> None:
        self.in_flight -= size
        if self._backlog() <= self.max_in_flight:
            self.room.set()

    def _backlog(self) -> int:
        """Bytes read but not yet written: waiting in the link, or held by a fault."""
        return self.in_flight + sum(slot.fault.holding() for slot in self.holders)
