"""One direction of a connection: the trio driver around the fault chain's engine.

The scheduling (what is due when, who holds what, where the end of stream is, when a
stop happens) lives in `sseproxy.engine.Chain`, a pure state machine. This module only
does I/O, in three tasks:

- the reader reads the source while the chain wants input and feeds it (in HTTP mode the
  response head first), then the source's end or failure;
- the clock sleeps until the chain's next timer and ticks it;
- the writer writes everything due at one instant, then carries out the final stop. A
  timer's close or reset abandons a write that the peer is not reading.

While the writer waits with nothing to write, the reader writes what its read made due
itself, as far as the socket takes it at once (`Link._write_at_once`): waking the writer
for it would cost an event a second trip through the scheduler. What the socket does not
take is left to the writer, so the reader never waits on the peer: a slow client must
not keep the upstream unread (an idle timer would see silence that was not there).

With no fault at all, `pump` copies bytes straight across (the fast path).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import trio

from sseproxy.engine import DEFAULT_CAPACITY, Chain, FaultSlot, FiredHook, Stop
from sseproxy.faults.base import Piece, ResponseHead
from sseproxy.splice import BULK, SpliceFailed, close_pipe, open_pipe, splice
from sseproxy.sse import MAX_EVENT_SIZE
from sseproxy.transport import Sink, StopKind, StreamSink, receive

__all__ = ["FaultSlot", "HeadError", "LinkResult", "Observer", "StopKind", "pump", "run_link"]

CHUNK = 256 * 1024
WATCHED_SLICE = 16 * 1024
"""Under a write timeout, writes go out in slices this big, each timed on its own."""
MAX_IN_FLIGHT = DEFAULT_CAPACITY
"""Bytes a stage may have in flight before the reader pauses (see `sseproxy.engine`)."""

Observer = Callable[[list[Piece]], None]
"""Told of the pieces of every write to the sink (the journal's tally counts bytes and
events): one call per write, however many events it carried."""
HeadReader = Callable[[], Awaitable[ResponseHead]]
"""Reads a response head before the body (HTTP mode); raises HeadError when it cannot."""


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


async def pump(
    source: trio.abc.ReceiveStream,
    sink: Sink,
    observe: Observer | None,
    head: HeadReader | None = None,
    count: Callable[[int], None] | None = None,
) -> LinkResult:
    """The fast path: no fault on this direction, so copy bytes as they arrive. Between
    two sockets (TCP mode, where `count` takes the byte counts), a bulk transfer moves on
    to splice(2) (`sseproxy.splice`)."""
    stop = Stop("end", None)
    spliceable = count is not None and _sockets(source, sink) is not None
    nowait = sink.nowait  # a plain socket: write without a coroutine per layer
    try:
        if head is not None:
            await _send(sink, Piece(b"", head=await head()))
        while True:
            data = bytes(await receive(source, CHUNK))
            if not data:
                break
            piece = Piece(data)
            if not nowait:
                await _send(sink, piece)
            elif rest := _send_nowait(sink, piece):
                await _send_rest(sink, rest)
            if observe is not None:
                observe([piece])
            if spliceable and len(data) >= BULK:
                spliceable = False
                if await _splice_rest(source, sink, count):
                    break
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


def _sockets(
    source: trio.abc.ReceiveStream, sink: Sink
) -> tuple[trio.SocketStream, trio.SocketStream] | None:
    if not isinstance(sink, StreamSink):
        return None
    out = sink.stream
    if type(source) is trio.SocketStream and type(out) is trio.SocketStream:
        return source, out
    return None


async def _splice_rest(
    source: trio.abc.ReceiveStream, sink: Sink, count: Callable[[int], None] | None
) -> bool:
    """Splice until the source's end (True); False when no pipe could be had (go on
    the plain way). A sink failure comes out as `_SinkFailed`, the source's as itself."""
    ends = _sockets(source, sink)
    pipe = open_pipe()
    if ends is None or pipe is None or count is None:
        return False
    try:
        await splice(*ends, pipe, count)
    except SpliceFailed as failed:
        raise _SinkFailed(failed.error) from failed.error
    finally:
        close_pipe(pipe)
    return True


class _SinkFailed(Exception):
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def _send(sink: Sink, piece: Piece) -> None:
    """Write to the sink, telling its failures apart from the source's."""
    try:
        await sink.send(piece)
    except _BROKEN as error:
        raise _SinkFailed(error) from error


def _send_nowait(sink: Sink, piece: Piece) -> bytes | memoryview:
    try:
        return sink.send_nowait(piece)
    except _BROKEN as error:
        raise _SinkFailed(error) from error


async def _send_rest(sink: Sink, rest: bytes | memoryview) -> None:
    try:
        await sink.send_rest(rest)
    except _BROKEN as error:
        raise _SinkFailed(error) from error


def _source_failed(error: BaseException) -> Stop:
    status = error.status if isinstance(error, HeadError) else None
    return Stop("close", None, str(error), error, status)


async def run_link(
    source: trio.abc.ReceiveStream,
    sink: Sink,
    slots: Sequence[FaultSlot],
    *,
    observe: Observer | None = None,
    fired: FiredHook | None = None,
    head: HeadReader | None = None,
    live: set[Link] | None = None,
    max_event_size: int | None = MAX_EVENT_SIZE,
    count: Callable[[int], None] | None = None,
) -> LinkResult:
    """Relay one direction through `slots`; returns once the sink has been ended or failed.

    With `head`, the first piece is the response head it reads (HTTP mode), so faults
    are active from the request on and can act before the response starts. With `live`,
    the link is in that set while it runs, so faults can be added and retired live (and
    the fast path is not taken even without faults).
    """
    if not slots and live is None:
        return await pump(source, sink, observe, head, count)
    chain = Chain(slots, trio.current_time(), fired=fired, max_event_size=max_event_size)
    link = Link(source, sink, chain, observe, head)
    if live is None:
        return await link.run()
    live.add(link)
    try:
        return await link.run()
    finally:
        live.discard(link)


@dataclass(eq=False, slots=True)
class Link:
    """A direction with a chain of faults (see the module docstring); `run_link` makes one."""

    source: trio.abc.ReceiveStream
    sink: Sink
    chain: Chain
    observe: Observer | None
    head: HeadReader | None = None
    changed: trio.lowlevel.ParkingLot = field(default_factory=trio.lowlevel.ParkingLot)
    """Where the reader and the writer wait for the chain to move (one lot for the link's
    life: an Event per change would be garbage per event that outlives a GC pass)."""
    reader_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    clock_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    write_scope: trio.CancelScope | None = None
    cut_noticed: bool = False
    """A timer's stop was seen and the write under way abandoned (see `_changed`)."""
    writer_idle: float | None = None
    """While the writer waits holding nothing: when it will look again by itself (inf:
    only when woken). The reader may then write what is due (see `_write_at_once`)."""
    backlog: _Backlog | None = None
    """What the reader wrote only in part, for the writer to finish first."""
    nowait: bool = False
    """The sink can write without waiting (`Sink.nowait`, asked once)."""

    def __post_init__(self) -> None:
        self.nowait = self.sink.nowait

    @property
    def slots(self) -> list[FaultSlot]:
        return self.chain.slots

    async def run(self) -> LinkResult:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read)
            nursery.start_soon(self._clock)
            result = await self._write()
            nursery.cancel_scope.cancel()
        return result

    # -- live changes (control API, sseproxy.testing) -------------------------------------

    def add(self, slot: FaultSlot) -> None:
        """Append a fault to the running chain; it sees what is read from now on."""
        self.chain.add(slot, trio.current_time())
        self._changed()

    def retire(self, name: str) -> bool:
        """Switch a fault off for good (it hands back what it holds); False if absent."""
        found = self.chain.retire(name, trio.current_time())
        self._changed()
        return found

    # -- the three tasks ----------------------------------------------------------------

    def _changed(self, wake: bool = True) -> None:
        """The chain moved: wake whoever may now act on it (the reader, having written
        what was due itself, may have nothing for the writer: `wake` False)."""
        chain = self.chain
        if wake:
            self.changed.unpark_all()
        timer = chain.next_timer()
        if timer != self.clock_scope.deadline:
            self.clock_scope.deadline = timer
        if not chain.source_open:
            self.reader_scope.cancel()
        if chain.urgent and not self.cut_noticed:
            # once: what the cut lets out (a held head) is written after it, uncancelled
            self.cut_noticed = True
            self.backlog = None  # abandoned, like a write under way
            if self.write_scope is not None:
                self.write_scope.cancel()

    async def _read(self) -> None:
        chain = self.chain
        with self.reader_scope:
            if not chain.source_open:
                return  # a fault already decided (status, refuse): do not even connect
            try:
                if self.head is not None:
                    # no local: the head would stay alive in this frame for the stream's life
                    chain.feed(Piece(b"", head=await self.head()), trio.current_time())
                    self._changed()
                while True:
                    while not chain.wants_input():
                        await self.changed.park()
                    data = bytes(await receive(self.source, CHUNK))
                    if not data:
                        break
                    now = trio.current_time()
                    chain.feed(Piece(data), now)
                    if self.writer_idle is not None and self.backlog is None and self.nowait:
                        self._write_at_once(now, self.writer_idle)
                    else:
                        self._changed()
            except _BROKEN as error:
                chain.source_end(_source_failed(error), trio.current_time())
            else:
                chain.source_end(Stop("end"), trio.current_time())
            self._changed()

    def _write_at_once(self, now: float, writer_looks_at: float) -> None:
        """The reader's write, while the writer holds nothing: the data due now, as far as
        the socket takes it without waiting. The rest, and anything that needs more than a
        plain write (a stop, a head, a write timeout to watch), is the writer's."""
        chain = self.chain
        if chain.urgent or chain.write_watchdog() is not None:
            self._changed()
            return
        pieces = [piece for piece in chain.take_due(now, plain=True).pieces if piece.data]
        if pieces:
            write = pieces[0] if len(pieces) == 1 else Piece(b"".join(p.data for p in pieces))
            try:
                rest = self.sink.send_nowait(write)
            except _BROKEN as error:
                self.backlog = _Backlog(b"", pieces, error)
            else:
                if rest:
                    self.backlog = _Backlog(rest, pieces)
                elif self.observe is not None:
                    self.observe(pieces)
        wake = self.backlog is not None or chain.next_output() < writer_looks_at
        self._changed(wake)

    async def _write_backlog(self, backlog: _Backlog) -> LinkResult | None:
        """Finish the write the reader began (a timer's cut abandons it, as any write)."""
        self.backlog = None
        if backlog.error is not None:
            return LinkResult("sink-error", error=backlog.error)
        try:
            await self.sink.send_rest(backlog.rest)
        except _BROKEN as error:
            return LinkResult("sink-error", error=error)
        if self.observe is not None:
            self.observe(backlog.pieces)
        return None

    async def _clock(self) -> None:
        while True:
            with trio.CancelScope(deadline=self.chain.next_timer()) as self.clock_scope:
                await trio.sleep_forever()
            self.chain.tick(trio.current_time())
            self._changed()

    async def _write(self) -> LinkResult:
        while True:
            outcome: LinkResult | Stop | bool = False
            with trio.CancelScope() as self.write_scope:  # cancelled by a timer's stop
                outcome = await self._write_due()
            self.write_scope = None
            if isinstance(outcome, Stop):
                return await self._finish(outcome)
            if isinstance(outcome, LinkResult):
                return outcome
            if outcome:
                await self._wait_idle()
            # else a timer's stop overtook what was being written: look again

    async def _write_due(self) -> LinkResult | Stop | bool:
        """Write what is due until nothing is (True: wait, outside the write scope), the
        final stop (returned, to be carried out outside the write scope) or a failure.
        False: a timer's stop overtook what was being written. One cancel scope for
        everything due in a row: a scope per write was a few objects of garbage per
        event, and one held while waiting, 700 bytes per idle stream."""
        chain = self.chain
        scope = self.write_scope
        while True:
            if scope is not None and scope.cancel_called:
                return False  # woken before the cancel landed: start over in a fresh scope
            if self.backlog is not None:
                failed = await self._write_backlog(self.backlog)
                if failed is not None:
                    return failed
            due = chain.take_due(trio.current_time())
            self._changed()
            if due.stop is not None:
                return due.stop
            if not due.pieces:
                return True
            failed = await self._write_pieces(due.pieces)
            if failed is not None:
                return failed

    async def _wait_idle(self) -> None:
        """Hold nothing until the chain moves or its next output comes due (meanwhile the
        reader may write, see `_write_at_once`)."""
        due_at = self.chain.next_output()
        self.writer_idle = due_at
        try:
            if due_at == math.inf:
                await self.changed.park()
            else:
                with trio.move_on_at(due_at):
                    await self.changed.park()
        finally:
            self.writer_idle = None

    async def _write_pieces(self, pieces: list[Piece]) -> LinkResult | None:
        """Write what is due: consecutive data pieces as one write (one HTTP chunk), a
        response head or a piece with a `boundary` on its own."""
        watchdog = self.chain.write_watchdog()
        for write, written in _writes(pieces):
            try:
                if watchdog is not None:
                    if not await self._send_watched(write, watchdog[1]):
                        return await self._write_timed_out(watchdog[0])
                    continue
                await self.sink.send(write)
            except _BROKEN as error:
                return LinkResult("sink-error", error=error)
            if self.observe is not None:
                self.observe(written)
        return None

    async def _finish(self, stop: Stop) -> LinkResult:
        self.reader_scope.cancel()
        try:
            await self.sink.stop(stop.kind, stop.status, stop.detail)
        except _BROKEN as error:
            return LinkResult("sink-error", error=error)
        return LinkResult(stop.kind, stop.origin, stop.detail, stop.error)

    async def _send_watched(self, piece: Piece, limit: float) -> bool:
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
                await self.sink.send(Piece(part))
                if self.observe is not None:
                    self.observe([Piece(part)])
                continue
            return False
        return True

    async def _write_timed_out(self, slot: FaultSlot) -> LinkResult:
        """The peer stopped reading: the write cannot be finished, so stop right here."""
        stop = self.chain.write_timed_out(slot, trio.current_time())
        self.reader_scope.cancel()
        with contextlib.suppress(*_BROKEN):
            await self.sink.stop(stop.kind, stop.status, stop.detail)
        return LinkResult(stop.kind, stop.origin, stop.detail)


@dataclass(frozen=True, slots=True)
class _Backlog:
    """The part of a write the socket did not take at once (or the error it raised)."""

    rest: bytes | memoryview
    pieces: list[Piece]
    error: BaseException | None = None


def _writes(pieces: list[Piece]) -> list[tuple[Piece, list[Piece]]]:
    """Group a batch into writes: (what to write, the pieces it carries)."""
    writes: list[tuple[Piece, list[Piece]]] = []
    run: list[Piece] = []
    for piece in pieces:
        if piece.head is None and not piece.boundary:
            if piece.data:
                run.append(piece)
            continue
        if run:
            writes.append(_joined(run))
            run = []
        writes.append((piece, [piece]))
    if run:
        writes.append(_joined(run))
    return writes


def _joined(run: list[Piece]) -> tuple[Piece, list[Piece]]:
    if len(run) == 1:
        return run[0], run
    return Piece(b"".join(piece.data for piece in run)), run
