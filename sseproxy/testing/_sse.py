"""Strategies for SSE bodies: `sse_events`, `sse_streams`, `chunkings` (public through
`sseproxy.strategies`; `sseproxy.testing.parse_sse` decodes what they draw).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import hypothesis.strategies as st
from hypothesis.errors import InvalidArgument

from sseproxy.sse import Event

__all__ = ["chunkings", "sse_events", "sse_streams"]


def _whole(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgument(f"{name}={value!r} must be a whole number >= {minimum}")
    return value


_ENDINGS = ("\n", "\r\n", "\r")
_NOISE_FIELDS = ("Data", "ID", "foo", "x-custom")
_BOOL = st.booleans()
_UNICODE = st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0")
_ASCII = string.printable.translate({10: None, 11: None, 12: None, 13: None})


def _line_text(unicode: bool, min_size: int = 0, max_size: int = 10) -> st.SearchStrategy[str]:
    return st.text(_UNICODE if unicode else _ASCII, min_size=min_size, max_size=max_size)


def sse_events(
    *, ids: bool = True, types: bool = True, max_lines: int = 3, unicode: bool = True
) -> st.SearchStrategy[Event]:
    """An `Event` as EventSource dispatches it: `type`, `data` (lines joined by LF), `id`.

    `id` is the lastEventId at dispatch ('' for none, or with `ids=False`); `type` is
    'message' unless `types` allows others; `data` has 1 to `max_lines` lines; `unicode`
    False keeps to printable ASCII. Encode lists of them with `sse_streams(events=...)`.
    """
    for option, value in (("ids", ids), ("types", types), ("unicode", unicode)):
        if not isinstance(value, bool):
            raise InvalidArgument(f"{option}={value!r} must be True or False")
    lines = _whole("max_lines", max_lines, 1)
    message = st.just("message")
    kinds = message | _line_text(unicode, min_size=1) if types else message
    data = st.lists(_line_text(unicode, max_size=20), min_size=1, max_size=lines)
    id_values = st.just("") | _line_text(unicode, max_size=8) if ids else st.just("")
    return st.builds(Event, kinds, data.map("\n".join), id_values)


class _Writer:
    """Draws one spelling of a list of events: fields, extra lines, line endings."""

    def __init__(self, draw: st.DrawFn, options: dict[str, Any]) -> None:
        self.draw, self.options = draw, options
        self.comment = _line_text(options["unicode"])

    def field(self, name: str, value: str) -> str:
        if value == "" and self.draw(_BOOL):
            return name  # a field name alone: an empty value
        if value.startswith(" ") or self.draw(_BOOL):
            return f"{name}: {value}"  # exactly one space after the colon is dropped
        return f"{name}:{value}"

    def block(self, event: Event | None, last_id: str) -> list[str]:
        """The lines of one block (without its blank line); None: a block that
        dispatches nothing (comments, retry, an ignored field, an event type alone)."""
        draw, lines, extra = self.draw, [], []
        if event is not None:
            lines = [self.field("data", line) for line in event.data.split("\n")]
            if event.type != "message" or draw(_BOOL):
                blank = event.type == "message" and draw(_BOOL)
                extra.append(self.field("event", "" if blank else event.type))
            if event.id != last_id or draw(_BOOL):
                extra.append(self.field("id", event.id))
        elif draw(_BOOL):
            extra.append(self.field("event", draw(_line_text(False, max_size=5))))
        if self.options["retry"] and draw(_BOOL):
            extra.append(f"retry: {draw(st.integers(0, 10**6))}")
        if self.options["comments"]:
            while draw(_BOOL):
                extra.append(":" + draw(self.comment))
            if draw(_BOOL):
                extra.append(self.field(draw(st.sampled_from(_NOISE_FIELDS)), "ignored"))
        for line in extra:
            lines.insert(draw(st.integers(0, len(lines))), line)
        return lines

    def stream(self, events: list[Event]) -> bytes:
        draw, lines, last_id = self.draw, [], ""
        for event in events:
            if self.options["comments"] and draw(st.integers(0, 3)) == 0:
                lines += [*self.block(None, last_id), ""]
            lines += [*self.block(event, last_id), ""]
            last_id = event.id
        endings = st.sampled_from(self.options["line_endings"])
        no_lf = st.sampled_from([e for e in self.options["line_endings"] if e != "\n"] or ["\r"])
        out, previous = [], ""
        for line in lines:
            # A CR then an empty line ending in LF would read as one CRLF.
            previous = draw(no_lf if previous == "\r" and not line else endings)
            out.append(line + previous)
        bom = self.options["bom"] if self.options["bom"] is not None else draw(_BOOL)
        return ("\ufeff" if bom else "").encode() + "".join(out).encode()


@st.composite
def _streams(
    draw: st.DrawFn, events: st.SearchStrategy[list[Event]], options: dict[str, Any]
) -> bytes:
    return _Writer(draw, options).stream(draw(events))


def sse_streams(
    *,
    events: Sequence[Event] | st.SearchStrategy[list[Event]] | None = None,
    max_events: int = 10,
    bom: bool | None = None,
    comments: bool = True,
    retry: bool = True,
    line_endings: Sequence[str] = _ENDINGS,
    unicode: bool = True,
) -> st.SearchStrategy[bytes]:
    """A spec-valid `text/event-stream` body, every event complete (ends with a blank line).

    `events`: the events to write (a list, or a strategy of lists; default: up to
    `max_events` from `sse_events()`). Each line ends with one of `line_endings` (CR, LF,
    CRLF mixed by default), fields are spelled every way the spec allows, `id` is
    repeated or inherited, and with `comments` come comment lines, ignored fields and
    blocks that dispatch nothing; `retry` adds `retry:` lines; `bom` a leading BOM
    (None: drawn). Decoding gives back exactly the events (`sseproxy.testing.parse_sse`).
    """
    for option, value in (("comments", comments), ("retry", retry), ("unicode", unicode)):
        if not isinstance(value, bool):
            raise InvalidArgument(f"{option}={value!r} must be True or False")
    if bom is not None and not isinstance(bom, bool):
        raise InvalidArgument(f"bom={bom!r} must be True, False or None (drawn)")
    endings = tuple(dict.fromkeys(line_endings)) if not isinstance(line_endings, str) else ()
    if not endings or not set(endings) <= set(_ENDINGS):
        raise InvalidArgument(f"line_endings={line_endings!r}: give some of '\\n', '\\r\\n', '\\r'")
    if events is None:
        drawn: st.SearchStrategy[list[Event]] = st.lists(
            sse_events(unicode=unicode), max_size=_whole("max_events", max_events, 0)
        )
    elif isinstance(events, st.SearchStrategy):
        drawn = events
    elif all(isinstance(event, Event) for event in events):
        drawn = st.just(list(events))
    else:
        raise InvalidArgument("events must be a list of sseproxy.sse.Event or a strategy of lists")
    options = {"bom": bom, "comments": comments, "retry": retry, "line_endings": endings}
    return _streams(drawn, {**options, "unicode": unicode})


def chunkings(data: bytes, *, max_chunks: int | None = None) -> st.SearchStrategy[list[bytes]]:
    """Ways to split `data` into non-empty chunks that join back to it (reads, TCP segments).

    Shrinks towards one chunk; `max_chunks` caps the count. With a drawn body:
    `sse_streams().flatmap(chunkings)`.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidArgument(f"data must be bytes, not {type(data).__name__}")
    raw = bytes(data)
    cap = len(raw) if max_chunks is None else _whole("max_chunks", max_chunks, 1)
    if not raw:
        return st.just([])
    cuts = (
        st.sets(st.integers(1, len(raw) - 1), max_size=cap - 1) if len(raw) > 1 else st.just(set())
    )
    return cuts.map(
        lambda chosen: [
            raw[a:b] for a, b in zip([0, *sorted(chosen)], [*sorted(chosen), len(raw)], strict=True)
        ]
    )
