"""Incremental, spec-exact framing of a `text/event-stream` body into blocks.

A chaos proxy must relay what the upstream sent byte for byte (clients should see the
server's own framing, comments and line endings), yet drop, delay or duplicate *whole*
events. So the framer does not re-serialise anything: it cuts the byte stream into
`Block`s at every blank line and hands each one back with its exact `raw` bytes and what a
browser's EventSource would make of it. Concatenating every `raw` from `Framer.feed` and
the bytes from `Framer.close` gives back the input exactly, however it was chunked.

Parsing follows the WHATWG HTML "Server-sent events" section ("Parsing an event stream",
"Interpreting an event stream") to the letter, because the faults we reproduce are often
exactly the corner cases (CR-only line ends, a CRLF split across TCP segments, an `id`
that arrives without data) where hand-rolled parsers disagree with browsers.

Lines are decoded one value at a time rather than as one stream: CR, LF and ':' are ASCII,
and a UTF-8 decoder that meets an ASCII byte inside a broken sequence emits U+FFFD and
resynchronises on it, so the result is the same as decoding the whole stream first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["MAX_EVENT_SIZE", "Block", "Event", "Framer"]

MAX_EVENT_SIZE = 1024 * 1024
"""Default bound on an incomplete block held for parsing; past it the block is relayed
unparsed (see `Framer`), so one upstream that never sends a blank line cannot take the
proxy's memory."""

_BOM = b"\xef\xbb\xbf"
_CR = 0x0D
_LF = 0x0A


# Built per event on the hot path, where a frozen dataclass costs 4x to build: not
# frozen, but nothing changes one after it is made.
@dataclass(slots=True, unsafe_hash=True)
class Event:
    """What EventSource would dispatch to the page (a MessageEvent's type/data/lastEventId)."""

    type: str
    """The event type: "message" unless an `event` field with a non-empty value said otherwise."""
    data: str
    """The `data` field values joined by "\\n" (the spec's buffer minus its final LF)."""
    id: str
    """The source's last event ID string at dispatch; an event without `id` inherits it."""


# Built per event on the hot path, where a frozen dataclass costs 4x to build: not
# frozen, but nothing changes one after it is made.
@dataclass(slots=True, unsafe_hash=True)
class Block:
    """Everything up to and including one blank line: the unit a proxy may drop or delay."""

    raw: bytes
    """The exact bytes of this block, from the end of the previous block through the line
    ending of the blank line (a BOM belongs to the first block). When that ending is a CR at
    the end of a chunk, the block ends there; a LF that follows is the first byte of the next
    block's raw, so blocks can be emitted without waiting for more input."""
    event: Event | None
    """The dispatched event, or None when the data buffer was empty (comments only, an
    `id`/`retry`-only block, an `event` without data, or a lone blank line)."""
    last_event_id: str
    """The source's last event ID string after this block. A blank line sets it even when no
    event is dispatched, so a proxy tracking Last-Event-ID must read it from every block."""
    retry: int | None
    """The reconnection time in milliseconds from the last valid `retry` field in this block,
    or None when the block had none (invalid values such as "12a" or "" are ignored)."""
    comments: tuple[str, ...]
    """Comment lines, decoded, with only the leading ':' removed: ": ping" gives " ping".
    The spec ignores comments; we keep the text verbatim so logs show what was sent."""
    partial: bool = False
    """Raw bytes of a block that outgrew the framer's bound: passed on unparsed, never
    dispatched (`event` is None). The block's remaining bytes, through its blank line,
    follow as partial blocks too; framing resumes after it."""


_NEAR = 1024
"""Where a blank line is looked for with one two-byte search; beyond it, from line end to
line end. CPython searches for b"\n\n" at about 1 GB/s but for a single b"\n" (memchr)
fifty times faster, which is what makes a 64 KiB `data:` line cheap to frame."""


def _blank_line_beyond(text: bytes, pos: int) -> int:
    """Offset of the first b"\n\n" in `text` that does not lie wholly within the near
    window after `pos` (-1: none), found from line end to line end."""
    if len(text) <= pos + _NEAR:
        return -1
    lf = text.find(b"\n", pos + _NEAR - 1)
    while lf >= 0:
        if text.startswith(b"\n", lf + 1):
            return lf
        lf = text.find(b"\n", lf + 2)
    return -1


def _lines(text: bytes, start: int, end: int) -> list[bytes]:
    """text[start:end] split at b"\n": by `split` when short, by memchr when long (a
    one-byte `split` walks byte by byte, 20 µs for 64 KiB)."""
    if end - start < _NEAR:
        return text[start:end].split(b"\n")
    lines = []
    while (lf := text.find(b"\n", start, end)) >= 0:
        lines.append(text[start:lf])
        start = lf + 1
    lines.append(text[start:end])
    return lines


class Framer:
    """Cuts one response body into `Block`s as its chunks arrive; one Framer per body.

    Only the bytes of the incomplete block are buffered, and a line ending is searched for
    only in bytes not yet scanned, so a 64 KiB event arriving in many small chunks costs
    linear time rather than re-scanning its growing line on every chunk.

    `max_pending` bounds that buffer (None: no bound, exactly the spec). A block that
    grows past it is given up: its bytes so far, and then every byte up to and including
    its blank line, come out at once as `partial` blocks, and the event is not dispatched
    (the spec would dispatch it; a proxy cannot hold unbounded memory for one). Counting
    `overflows` lets the caller note it.
    """

    __slots__ = (
        "_at_start",
        "_buf",
        "_closed",
        "_comments",
        "_data",
        "_id_buffer",
        "_last_event_id",
        "_line_empty",
        "_line_start",
        "_max_pending",
        "_retry",
        "_scanned",
        "_skip_lf",
        "_skipping",
        "_type",
        "overflows",
        "retry",
    )

    def __init__(self, max_pending: int | None = MAX_EVENT_SIZE) -> None:
        self._buf = bytearray()  # raw bytes of the incomplete block
        self._line_start = 0  # offset in _buf where the incomplete line begins
        self._scanned = 0  # _buf[_line_start:_scanned] is known to hold no CR or LF
        self._skip_lf = False  # the last line ended with a CR that was the last byte seen
        self._at_start = True  # no line completed yet: the next one may begin with a BOM
        self._closed = False
        self._max_pending = max_pending
        self._line_empty = True  # while skipping: the current line has no byte yet
        self._skipping = False  # inside a block that outgrew max_pending: pass its bytes on
        self.overflows = 0
        """How many blocks outgrew `max_pending` and were relayed unparsed."""
        # The spec's per-stream buffers, plus what this block reports besides the event.
        self._data: list[str] = []  # data values; "\n".join == data buffer minus final LF
        self._type = ""
        self._id_buffer = ""
        self._last_event_id = ""
        self._retry: int | None = None
        self._comments: list[str] = []
        self.retry: int | None = None
        """The stream's reconnection time in ms: the last valid `retry` field read so far
        (None: none yet, the client's default applies). As in the spec, a `retry` line
        takes effect when the line is read, not at the blank line: `retry: 0\n` at the end
        of a body sets it to 0 even though no block is completed."""

    @property
    def last_event_id(self) -> str:
        """The source's last event ID string: what a reconnect sends as Last-Event-ID.

        An `id` field in a block that never reaches its blank line does not count, as in
        the spec (it only fills the last event ID buffer).
        """
        return self._last_event_id

    @property
    def pending(self) -> int:
        """How many raw bytes are held for the incomplete block (what close() would return)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Block]:
        """Take the next chunk; return the blocks it completes, in stream order."""
        if self._closed:
            raise RuntimeError("Framer.feed() after close(): use one Framer per response body")
        if not data:
            return []
        blocks: list[Block] = []
        if self._skipping:
            end = self._skip(data)
            if end < 0:
                return [self._partial(data)]
            blocks.append(self._partial(data[:end]))
            data = data[end:]
            if not data:
                return blocks
        if self._skip_lf or self._at_start or b"\r" in data:
            blocks += self._feed_any(data)
        else:
            blocks += self._feed_lf(data)
        if self._max_pending is not None and len(self._buf) > self._max_pending:
            blocks.append(self._give_up())
        return blocks

    def _feed_lf(self, data: bytes) -> list[Block]:
        """The common case, a chunk without CR: blank lines are found by `find`, and the
        lines of each block split at once (the held incomplete line has no CR either).
        `data:` and `id:` lines and the dispatch are handled inline: this loop runs once
        per event on the framed path."""
        text = bytes(self._buf) + data if self._buf else data
        field = self._field_line
        values = self._data
        comments = self._comments
        blocks: list[Block] = []
        block_start, pos = 0, self._line_start if self._buf else 0  # pos: a line's start
        while True:
            if text.startswith(b"\n", pos):
                lines_end, end = pos, pos + 1  # the line at pos is blank
            else:
                found = text.find(b"\n\n", pos, pos + _NEAR)
                if found < 0:
                    found = _blank_line_beyond(text, pos)
                    if found < 0:
                        break
                lines_end, end = found, found + 2
            if lines_end > pos:
                for line in _lines(text, pos, lines_end):
                    if line.startswith(b"data:"):
                        value = line[6:] if line.startswith(b" ", 5) else line[5:]
                        values.append(value.decode("utf-8", "replace"))
                    elif line.startswith(b"id:"):
                        value = line[4:] if line.startswith(b" ", 3) else line[3:]
                        if b"\0" not in value:
                            self._id_buffer = value.decode("utf-8", "replace")
                    else:
                        field(line)
            # The blank line: dispatch (as `_dispatch` does).
            last_id = self._last_event_id = self._id_buffer
            event = None
            if values:
                event = Event(self._type or "message", "\n".join(values), last_id)
                values.clear()
            block = Block(text[block_start:end], event, last_id, self._retry, ())
            if comments:
                block.comments = tuple(comments)
                comments.clear()
            if self._type:
                self._type = ""
            self._retry = None
            blocks.append(block)
            block_start = pos = end
        last = text.rfind(b"\n", pos)
        if last >= pos:  # complete lines of the next block: take them in now
            for line in _lines(text, pos, last):
                field(line)
            pos = last + 1
        rest = text[block_start:]
        self._buf = bytearray(rest)
        self._line_start = pos - block_start
        self._scanned = len(rest)
        return blocks

    def _feed_any(self, data: bytes) -> list[Block]:
        """Any chunk: line by line, with CR, LF and CRLF (split across chunks too)."""
        blocks: list[Block] = []
        buf = self._buf
        buf += data
        line_start = self._line_start
        if self._skip_lf:
            # The previous chunk ended with a CR we already treated as a line end; a LF
            # right after it is the rest of that CRLF, not an empty line of its own.
            self._skip_lf = False
            if buf[line_start] == _LF:
                line_start += 1
        pos = max(self._scanned, line_start)
        block_start = 0
        # The next CR and LF at or after pos (-1: none in the buffer). Each is searched for
        # again only once pos has passed it, so no byte is scanned twice for the same kind.
        cr = buf.find(b"\r", pos)
        lf = buf.find(b"\n", pos)
        while cr >= 0 or lf >= 0:
            if cr < 0 or 0 <= lf < cr:
                eol, pos = lf, lf + 1  # LF
            elif lf == cr + 1:
                eol, pos = cr, lf + 1  # CRLF
            else:
                eol, pos = cr, cr + 1  # CR not followed by LF (yet: see _skip_lf)
            if 0 <= cr < pos:
                cr = buf.find(b"\r", pos)
            if 0 <= lf < pos:
                lf = buf.find(b"\n", pos)
            start, line_start = line_start, pos
            if self._at_start:
                self._at_start = False
                if buf.startswith(_BOM, start, eol):
                    start += len(_BOM)
            if start != eol:
                self._field(buf, start, eol)
            else:
                blocks.append(self._dispatch(bytes(buf[block_start:pos])))
                block_start = pos
        self._skip_lf = line_start == len(buf) and buf[-1] == _CR
        del buf[:block_start]
        self._line_start = line_start - block_start
        self._scanned = len(buf)
        return blocks

    def _partial(self, raw: bytes) -> Block:
        return Block(raw, None, self._last_event_id, None, (), partial=True)

    def _give_up(self) -> Block:
        """The incomplete block outgrew the bound: hand its bytes on and skip the rest of it."""
        at_line_start = self._line_start == len(self._buf)
        block = self._partial(self._take_pending())
        self._skipping = True
        self._line_empty = at_line_start
        self.overflows += 1
        return block

    def _skip(self, data: bytes) -> int:
        """Inside a given-up block: the offset just past its blank line, or -1 if not in
        `data` (then the state is kept for the next chunk)."""
        i, n = 0, len(data)
        if self._skip_lf:
            self._skip_lf = False
            if data[0] == _LF:
                i = 1
        empty = self._line_empty
        while i < n:
            cr, lf = data.find(b"\r", i), data.find(b"\n", i)
            if cr < 0 and lf < 0:
                self._line_empty = False
                return -1
            eol = lf if cr < 0 or 0 <= lf < cr else cr
            if eol > i:
                empty = False
            if data[eol] == _CR and eol + 1 < n and data[eol + 1] == _LF:
                nxt = eol + 2
            else:
                nxt = eol + 1
                self._skip_lf = data[eol] == _CR and nxt == n
            if empty:  # a line end at the start of a line: the blank line ending the block
                self._skipping = False
                self._at_start = False
                return nxt
            empty, i = True, nxt
        self._line_empty = empty
        return -1

    @property
    def between_blocks(self) -> bool:
        """Nothing of an incomplete block is held: the next byte starts a new block."""
        return not self._buf and not self._skipping

    def skip_block(self, raw: bytes, last_event_id: str) -> None:
        """Account for a whole block that another framer of the same stream already cut
        (`raw`, and the last event ID after it) without parsing it again. Only valid
        `between_blocks`; afterwards this framer continues as if it had parsed it."""
        self._last_event_id = self._id_buffer = last_event_id
        self._skip_lf = raw.endswith(b"\r")
        self._at_start = self._at_start and not raw

    def skip_blocks(self, blocks: Sequence[Block]) -> None:
        """`skip_block` for whole blocks another framer of the same stream already cut,
        keeping the stream's `retry` as their fields set it."""
        for block in blocks:
            if block.retry is not None:
                self.retry = block.retry
        last = blocks[-1]
        self.skip_block(last.raw, last.last_event_id)

    def close(self) -> bytes:
        """End of stream: return the raw bytes of the incomplete trailing block (maybe b"").

        Per the spec, an event whose blank line never came is discarded, not dispatched;
        the bytes are still returned so a proxy can relay the stream unchanged.
        """
        self._closed = True
        return self._take_pending()

    def _take_pending(self) -> bytes:
        """The incomplete block's raw bytes; its fields are forgotten (never dispatched)."""
        raw = bytes(self._buf)
        self._buf.clear()
        self._line_start = self._scanned = 0
        self._data.clear()
        self._comments.clear()
        self._type = ""
        self._retry = None
        return raw

    def _field(self, buf: bytearray, start: int, end: int) -> None:
        """Interpret the non-blank line buf[start:end] (no line ending)."""
        self._field_line(bytes(buf[start:end]))

    def _field_line(self, line: bytes) -> None:
        """Interpret one non-blank line (no line ending)."""
        colon = line.find(b":")
        if colon == 0:
            self._comments.append(line[1:].decode("utf-8", "replace"))
            return
        if colon < 0:
            name, value = line, b""
        else:
            name, value = line[:colon], line[colon + 1 :]
            if value[:1] == b" ":
                value = value[1:]  # exactly one space, so "data:  x" keeps " x"
        # Comparing raw bytes is exact: a field name only equals an ASCII name if its bytes
        # do, since U+FFFD from bad UTF-8 never decodes to ASCII.
        if name == b"data":
            self._data.append(value.decode("utf-8", "replace"))
        elif name == b"event":
            self._type = value.decode("utf-8", "replace")
        elif name == b"id":
            if b"\0" not in value:
                self._id_buffer = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():  # ASCII-only, and False for b""
            # Leading zeros are stripped so only the magnitude meets int()'s digit limit;
            # a value past it (centuries of ms) is ignored, as browsers ignore retry
            # values that overflow their integer types.
            with contextlib.suppress(ValueError):
                self._retry = self.retry = int(value.lstrip(b"0") or b"0")
        # Any other field name is ignored, as the spec says.

    def _dispatch(self, raw: bytes) -> Block:
        """A blank line: dispatch per the spec and reset the per-event buffers."""
        self._last_event_id = self._id_buffer  # happens even if nothing is dispatched
        event = None
        if self._data:
            event = Event(self._type or "message", "\n".join(self._data), self._last_event_id)
        block = Block(raw, event, self._last_event_id, self._retry, tuple(self._comments))
        self._data.clear()
        self._comments.clear()
        self._type = ""
        self._retry = None
        return block
