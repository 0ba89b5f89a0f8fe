"""Strategies for SSE bodies (`sse_events`, `sse_streams`, `chunkings`) and the reference
parser their output is checked against. Public through `sseproxy.strategies` and
`sseproxy.testing`.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from typing import Any

import hypothesis.strategies as st
from hypothesis.errors import InvalidArgument

from sseproxy.sse import Event, Framer

__all__ = ["Event", "chunkings", "parse_sse", "sse_events", "sse_streams"]


def _whole(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgument(f"{name}={value!r} must be a whole number >= {minimum}")
    return value


def parse_sse(data: bytes) -> list[Event]:
    """The events a browser's EventSource dispatches for `data` (an incomplete last block
    is discarded, as the spec says): the reference to check a client's parser against."""
    framer = Framer()
    events = [block.event for block in framer.feed(data) if block.event is not None]
    framer.close()
    return events


_ENDINGS = ("\n", "\r\n", "\r")
_NOISE_FIELDS = ("Data", "ID", "foo", "x-custom")


def _line_text(unicode: bool, **kwargs: Any) -> st.SearchStrategy[str]:
    if unicode:
        chars = st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\0")
        return st.text(chars, **kwargs)
    return st.text(string.printable.translate({10: None, 13: None, 11: None, 12: None}), **kwargs)


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
    kinds = (
        st.just("message") | _line_text(unicode, min_size=1, max_size=10)
        if types
        else st.just("message")
    )
    data = st.lists(_line_text(unicode, max_size=20), min_size=1, max_size=lines).map("\n".join)
    id_values = st.just("") | _line_text(unicode, max_size=8) if ids else st.just("")
    return st.builds(Event, kinds, data, id_values)


def _field(draw: st.DrawFn, name: str, value: str) -> str:
    if value == "" and draw(st.booleans()):
        return name  # a field name alone: an empty value
    if value.startswith(" ") or draw(st.booleans()):
        return f"{name}: {value}"  # exactly one space after the colon is dropped
    return f"{name}:{value}"


@st.composite
def _block(
    draw: st.DrawFn, event: Event | None, last_id: str, options: dict[str, Any]
) -> list[str]:
    """The lines of one block (without the blank line that ends it)."""
    comments = options["comments"]
    lines: list[str] = []
    extra: list[str] = []
    if event is not None:
        lines = [_field(draw, "data", line) for line in event.data.split("\n")]
        if event.type != "message" or draw(st.booleans()):
            extra.append(
                _field(
                    draw,
                    "event",
                    "" if event.type == "message" and draw(st.booleans()) else event.type,
                )
            )
        if event.id != last_id or draw(st.booleans()):
            extra.append(_field(draw, "id", event.id))
    elif draw(st.booleans()):
        extra.append(_field(draw, "event", draw(_line_text(False, max_size=5))))
    if options["retry"] and draw(st.booleans()):
        extra.append(f"retry: {draw(st.integers(0, 10**6))}")
    if comments:
        extra += [
            ":" + text
            for text in draw(st.lists(_line_text(options["unicode"], max_size=10), max_size=2))
        ]
        if draw(st.booleans()):
            extra.append(_field(draw, draw(st.sampled_from(_NOISE_FIELDS)), "ignored"))
    for line in extra:
        lines.insert(draw(st.integers(0, len(lines))), line)
    return lines


@st.composite
def _stream(draw: st.DrawFn, events: list[Event], options: dict[str, Any]) -> bytes:
    lines: list[str] = []
    last_id = ""
    for event in events:
        if options["comments"] and draw(st.integers(0, 3)) == 0:
            lines += [*draw(_block(None, last_id, options)), ""]
        lines += [*draw(_block(event, last_id, options)), ""]
        last_id = event.id
    out, previous = [], ""
    for line in lines:
        allowed = [
            e for e in options["line_endings"] if not (previous == "\r" and not line and e == "\n")
        ]
        previous = draw(st.sampled_from(allowed))
        out.append(line + previous)
    bom = options["bom"] if options["bom"] is not None else draw(st.booleans())
    return ("\ufeff" if bom else "").encode() + "".join(out).encode()


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
    options = {
        "bom": bom,
        "comments": comments,
        "retry": retry,
        "line_endings": endings,
        "unicode": unicode,
    }
    return drawn.flatmap(lambda chosen: _stream(chosen, options))


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
