"""A socket-like in-memory stream pair: bounded buffers, so a reader that stops reading
pushes back on the writer (as a full TCP window does), which faults such as
`send-timeout` and `bandwidth` rely on. `trio.testing.memory_stream_pair` never blocks a
writer, so a stalled client there would let the proxy read the upstream without limit.
"""

from __future__ import annotations

import operator

import trio
from trio.lowlevel import ParkingLot, checkpoint

__all__ = ["PipeStream", "pipe_pair"]


class _Pipe:
    """One direction: bytes written and not yet read, and whether each end is done."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.data = bytearray()
        self.eof = False  # the writer sent EOF or closed
        self.reader_gone = False
        self.lot = ParkingLot()

    def changed(self) -> None:
        self.lot.unpark_all()


class PipeStream(trio.abc.HalfCloseableStream):
    """One end of `pipe_pair`: reads `incoming`, writes `outgoing`."""

    def __init__(self, incoming: _Pipe, outgoing: _Pipe) -> None:
        self._in = incoming
        self._out = outgoing
        self._closed = False
        self._sending = False
        self._receiving = False

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            await self._send(memoryview(data).cast("B"))
        finally:
            self._sending = False

    async def _send(self, view: memoryview) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        out = self._out
        while True:
            if self._closed or out.eof:
                raise trio.ClosedResourceError("this end was closed or sent EOF")
            if out.reader_gone:
                raise trio.BrokenResourceError("the peer closed its end")
            room = out.capacity - len(out.data)
            if room > 0 and view:
                out.data += view[:room]
                view = view[room:]
                out.changed()
            if not view:
                break
            await out.lot.park()
        await trio.lowlevel.cancel_shielded_checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._sending = True
        try:
            out = self._out
            while not (self._closed or out.reader_gone or out.eof):
                if len(out.data) < out.capacity:
                    break
                await out.lot.park()
            if self._closed:
                raise trio.ClosedResourceError("this end was closed")
            await checkpoint()
        finally:
            self._sending = False

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if max_bytes is not None and operator.index(max_bytes) < 1:
            raise ValueError("max_bytes must be >= 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is receiving on this stream")
        self._receiving = True
        try:
            await trio.lowlevel.checkpoint_if_cancelled()
            incoming = self._in
            while not incoming.data and not incoming.eof and not self._closed:
                await incoming.lot.park()
            if self._closed:
                raise trio.ClosedResourceError("this end was closed")
            size = len(incoming.data) if max_bytes is None else max_bytes
            chunk = bytes(incoming.data[:size])
            del incoming.data[:size]
            incoming.changed()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return chunk
        finally:
            self._receiving = False

    async def send_eof(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("this end was closed")
        if self._sending:
            raise trio.BusyResourceError("another task is sending on this stream")
        self._out.eof = True
        self._out.changed()
        await checkpoint()

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._out.eof = True
            self._in.reader_gone = True
            self._in.data.clear()
            self._in.changed()
            self._out.changed()
        await checkpoint()


def pipe_pair(capacity: int = 64 * 1024) -> tuple[PipeStream, PipeStream]:
    """Two connected streams, each direction buffering up to `capacity` bytes."""
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1, not {capacity}")
    a_to_b, b_to_a = _Pipe(capacity), _Pipe(capacity)
    return PipeStream(b_to_a, a_to_b), PipeStream(a_to_b, b_to_a)
