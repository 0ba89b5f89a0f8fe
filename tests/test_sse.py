"""Tests for sseproxy.sse: the framer against a naive reference parser, for every chunking.

The reference below is deliberately dumb: decode the whole body at once, then walk it one
character at a time exactly as the WHATWG text reads. The framer is clever (incremental,
byte-level, emits at a trailing CR), so agreement across arbitrary splits is the evidence
that the cleverness did not change the meaning.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sseproxy.sse import Block, Event, Framer

# ---------------------------------------------------------------------------- reference


@dataclass
class RefBlock:
    """What one blank line produced, in the same shape as Block minus the raw bytes."""

    event: tuple[str, str, str] | None
    last_event_id: str
    retry: int | None
    comments: tuple[str, ...]


@dataclass
class RefResult:
    blocks: list[RefBlock] = field(default_factory=list)
    last_event_id: str = ""
    retry: int | None = None  # the stream's reconnection time: set when its line is read


def reference_parse(body: bytes) -> RefResult:
    """Parse a whole event-stream body straight from the spec's wording."""
    text = body.decode("utf-8", "replace")  # "streams must be decoded using UTF-8 decode"
    if text.startswith("\ufeff"):  # UTF-8 decode strips one leading BOM
        text = text[1:]

    # Split into lines: CRLF, a LF not preceded by CR, a CR not followed by LF.
    lines: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\r":
            lines.append("".join(current))
            current = []
            if i + 1 < len(text) and text[i + 1] == "\n":
                i += 1
        elif char == "\n":
            lines.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    # Whatever is left in `current` never got its line ending: discarded at end of file.

    result = RefResult()
    data_buffer = ""
    event_type_buffer = ""
    last_event_id_buffer = ""
    retry: int | None = None
    comments: list[str] = []
    for line in lines:
        if line == "":
            # Dispatch the event.
            result.last_event_id = last_event_id_buffer
            event = None
            if data_buffer != "":
                if data_buffer.endswith("\n"):
                    data_buffer = data_buffer[:-1]
                event = (event_type_buffer or "message", data_buffer, result.last_event_id)
            result.blocks.append(RefBlock(event, result.last_event_id, retry, tuple(comments)))
            data_buffer = event_type_buffer = ""
            retry = None
            comments = []
            continue
        if line.startswith(":"):
            comments.append(line[1:])
            continue
        if ":" in line:
            name, value = line.split(":", 1)
            if value.startswith(" "):
                value = value[1:]
        else:
            name, value = line, ""
        if name == "event":
            event_type_buffer = value
        elif name == "data":
            data_buffer += value + "\n"
        elif name == "id":
            if "\0" not in value:
                last_event_id_buffer = value
        elif name == "retry" and value and all(c in "0123456789" for c in value):
            retry = result.retry = int(value)  # "only ASCII digits"; else ignore the field
    return result


# ---------------------------------------------------------------------------- helpers


def chunked(body: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted({min(c, len(body)) for c in cuts}), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(points) if a < b]


def run(chunks: list[bytes]) -> tuple[list[Block], bytes, Framer]:
    framer = Framer()
    blocks: list[Block] = []
    for chunk in chunks:
        blocks.extend(framer.feed(chunk))
    tail_pending = framer.pending
    tail = framer.close()
    assert len(tail) == tail_pending
    return blocks, tail, framer


def as_ref(blocks: list[Block]) -> list[RefBlock]:
    return [
        RefBlock(
            None if b.event is None else (b.event.type, b.event.data, b.event.id),
            b.last_event_id,
            b.retry,
            b.comments,
        )
        for b in blocks
    ]


def check(body: bytes, chunks: list[bytes]) -> None:
    expected = reference_parse(body)
    blocks, tail, framer = run(chunks)
    assert b"".join(b.raw for b in blocks) + tail == body
    assert as_ref(blocks) == expected.blocks
    assert framer.last_event_id == expected.last_event_id
    assert framer.retry == expected.retry


def events(body: bytes) -> list[Event]:
    blocks, _, _ = run([body])
    return [b.event for b in blocks if b.event is not None]


# ---------------------------------------------------------------------------- strategies

_VALUE_CHARS = st.sampled_from([*"ab09: \0é€\ufeff\U0001f600\t\ufffd"])
_values = st.one_of(
    st.text(_VALUE_CHARS, max_size=8),
    st.integers(0, 10**6).map(str),
    st.sampled_from(["", " ", "  x", "12a", "007", "\0", "1\0", " 2:3", "€"]),
)
_names = st.sampled_from(["data", "event", "id", "retry", "", "Data", "data ", "foo", "\ufeffdata"])


@st.composite
def _line(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["field", "field", "field", "bare", "comment", "blank"]))
    if kind == "blank":
        return ""
    if kind == "comment":
        return ":" + draw(_values)
    if kind == "bare":
        return draw(_names)
    return draw(_names) + draw(st.sampled_from([":", ": ", ":  "])) + draw(_values)


@st.composite
def sse_bodies(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(_line(), max_size=14))
    ends = st.sampled_from(["\n", "\r", "\r\n"])
    text = "".join(line + draw(ends) for line in lines)
    if draw(st.booleans()):
        text += draw(_line())  # an unterminated trailing line
    body = text.encode("utf-8")
    if draw(st.booleans()):
        body = b"\xef\xbb\xbf" + body
    if draw(st.booleans()):  # sprinkle in bytes that are not valid UTF-8
        at = draw(st.integers(0, len(body)))
        body = (
            body[:at] + draw(st.sampled_from([b"\xff", b"\xe2\x82", b"\xed\xa0\x80"])) + body[at:]
        )
    return body


bodies = st.one_of(sse_bodies(), st.binary(max_size=64))


@st.composite
def long_line_bodies(draw: st.DrawFn) -> bytes:
    """LF-only bodies with lines and blocks longer than the framer's near window (1 KiB),
    so the memchr paths that find blank lines and split long blocks are taken."""
    lines = []
    for line in draw(st.lists(st.one_of(_line(), st.sampled_from(["a", ":", ""])), max_size=10)):
        if line and draw(st.booleans()):
            line += draw(st.sampled_from(["x", "é", "\n"])) * draw(st.integers(500, 2500))
        lines.append(line)
    return "\n".join(lines).encode("utf-8") + draw(st.sampled_from([b"", b"\n", b"\n\n"]))


_settings = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------------------- properties


@_settings
@given(bodies)
def test_matches_reference_fed_whole(body: bytes) -> None:
    check(body, [body])


@_settings
@given(bodies)
def test_matches_reference_fed_byte_by_byte(body: bytes) -> None:
    check(body, [body[i : i + 1] for i in range(len(body))])


@_settings
@given(st.data())
def test_matches_reference_for_any_split(data: st.DataObject) -> None:
    body = data.draw(bodies)
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=8))
    check(body, chunked(body, cuts))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_matches_reference_with_long_lines(data: st.DataObject) -> None:
    body = data.draw(long_line_bodies())
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=6))
    check(body, chunked(body, cuts))


@_settings
@given(bodies, st.data())
def test_pending_counts_held_bytes(body: bytes, data: st.DataObject) -> None:
    framer = Framer()
    fed = 0
    emitted = 0
    for chunk in chunked(body, data.draw(st.lists(st.integers(0, len(body)), max_size=6))):
        emitted += sum(len(b.raw) for b in framer.feed(chunk))
        fed += len(chunk)
        assert framer.pending == fed - emitted


# ---------------------------------------------------------------------------- specifics


def test_simple_event_and_raw() -> None:
    framer = Framer()
    [block] = framer.feed(b"event: tick\ndata: 1\nid: 9\n\n")
    assert block == Block(
        raw=b"event: tick\ndata: 1\nid: 9\n\n",
        event=Event(type="tick", data="1", id="9"),
        last_event_id="9",
        retry=None,
        comments=(),
    )
    assert framer.last_event_id == "9"
    assert framer.pending == 0


def test_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    framer = Framer()
    assert framer.feed(b"data: a\r") == []
    # The LF completes the CRLF of "data: a"; it must not be read as a blank line.
    assert framer.feed(b"\n") == []
    [block] = framer.feed(b"data: b\r\n\r")  # a blank line ending in CR: emitted at once
    assert block.raw == b"data: a\r\ndata: b\r\n\r"
    assert block.event == Event("message", "a\nb", "")
    # ...so this LF is the rest of that CRLF, belongs to the next block, and is no blank line.
    assert framer.feed(b"\n") == []
    assert framer.pending == 1
    [block] = framer.feed(b"data: c\n\n")
    assert block.raw == b"\ndata: c\n\n"
    assert block.event == Event("message", "c", "")


def test_heartbeat_comment_block() -> None:
    [block] = Framer().feed(b": heartbeat\n\n")
    assert block.event is None
    assert block.comments == (" heartbeat",)
    assert block.raw == b": heartbeat\n\n"


def test_data_then_two_crs_is_one_event() -> None:
    assert events(b"data:a\r\r") == [Event("message", "a", "")]


def test_bom_stripped_once_and_only_at_start() -> None:
    assert events(b"\xef\xbb\xbfdata:x\n\n") == [Event("message", "x", "")]
    # A second BOM is part of the field name, which is then unknown.
    assert events(b"\xef\xbb\xbf\xef\xbb\xbfdata:x\n\n") == []
    assert events(b"data:x\n\n\xef\xbb\xbfdata:y\n\n") == [Event("message", "x", "")]
    # Split inside the BOM still strips it; the BOM is in the first block's raw.
    framer = Framer()
    assert framer.feed(b"\xef") == []
    assert framer.feed(b"\xbb") == []
    [block] = framer.feed(b"\xbfdata:x\n\n")
    assert block.raw == b"\xef\xbb\xbfdata:x\n\n"
    assert block.event == Event("message", "x", "")


def test_bom_then_blank_line_is_a_block() -> None:
    [block] = Framer().feed(b"\xef\xbb\xbf\n")
    assert block.raw == b"\xef\xbb\xbf\n"
    assert block.event is None


def test_id_with_nul_is_ignored() -> None:
    assert events(b"id: 1\n\nid: a\0b\ndata: x\n\n") == [Event("message", "x", "1")]


def test_retry_only_all_digits() -> None:
    assert [b.retry for b in Framer().feed(b"retry: 12a\n\nretry: 3000\n\nretry:\n\n")] == [
        None,
        3000,
        None,
    ]
    # Too many digits for int(): ignored, like a browser's integer overflow.
    [block] = Framer().feed(b"retry: " + b"9" * 5000 + b"\n\n")
    assert block.retry is None
    [block] = Framer().feed(b"retry: " + b"0" * 5000 + b"42\n\n")
    assert block.retry == 42


def test_id_only_block_updates_last_event_id_without_event() -> None:
    framer = Framer()
    blocks = framer.feed(b"data: a\nid: 1\n\nid: 2\n\ndata: b\n\n")
    assert [b.event for b in blocks] == [
        Event("message", "a", "1"),
        None,
        Event("message", "b", "2"),
    ]
    assert [b.last_event_id for b in blocks] == ["1", "2", "2"]
    assert framer.last_event_id == "2"


def test_empty_id_resets_last_event_id() -> None:
    framer = Framer()
    framer.feed(b"id: 5\n\nid\n\n")
    assert framer.last_event_id == ""


def test_partial_block_at_eof_is_not_an_event() -> None:
    framer = Framer()
    assert framer.feed(b"data: done\n\nid: 7\ndata: half\n") != []
    assert framer.pending == len(b"id: 7\ndata: half\n")
    assert framer.close() == b"id: 7\ndata: half\n"
    assert framer.last_event_id == ""  # the id's blank line never came
    assert framer.close() == b""
    with pytest.raises(RuntimeError):
        framer.feed(b"data: more\n\n")


def test_field_without_colon() -> None:
    assert events(b"data\n\n") == [Event("message", "", "")]
    assert events(b"data\ndata\n\n") == [Event("message", "\n", "")]
    assert events(b"event\ndata:x\n\n") == [Event("message", "x", "")]
    assert events(b"foo\n\n") == []


def test_data_strips_exactly_one_space() -> None:
    assert events(b"data: x\n\n") == [Event("message", "x", "")]
    assert events(b"data:  x\n\n") == [Event("message", " x", "")]
    assert events(b"data:x\n\n") == [Event("message", "x", "")]
    assert events(b"data: a:b \n\n") == [Event("message", "a:b ", "")]


def test_event_without_data_dispatches_nothing_and_resets_type() -> None:
    assert events(b"event: a\n\ndata: x\n\n") == [Event("message", "x", "")]


def test_invalid_utf8_is_replaced() -> None:
    assert events(b"data: \xff\xe2\x82\n\n") == [Event("message", "\ufffd\ufffd", "")]


def test_huge_event_in_many_chunks() -> None:
    payload = b"x" * 65536
    body = b"data: " + payload + b"\n\n"
    framer = Framer()
    blocks: list[Block] = []
    for i in range(0, len(body), 1000):
        blocks.extend(framer.feed(body[i : i + 1000]))
    [block] = blocks
    assert block.raw == body
    assert block.event == Event("message", payload.decode(), "")
    assert framer.pending == 0


@pytest.mark.parametrize(
    ("body", "reconnection_time"),
    [
        (b"retry: 0\n", 0),  # no blank line follows: it takes effect all the same
        (b"retry: 1000\ndata: a\n\nretry:0500\n", 500),
        (b"retry: 1000\n\nretry: x\n", 1000),  # an invalid value leaves it
        (b"retry: 7", None),  # a line without its ending never takes effect
        (b"data: a\n\n", None),
    ],
)
def test_retry_takes_effect_when_its_line_is_read(
    body: bytes, reconnection_time: int | None
) -> None:
    """The spec sets the reconnection time as it interprets the field, not at dispatch."""
    for chunks in ([body], [body[i : i + 1] for i in range(len(body))]):
        framer = Framer()
        for chunk in chunks:
            framer.feed(chunk)
        assert framer.retry == reconnection_time, chunks
        framer.close()
        assert framer.retry == reconnection_time  # the stream's state outlives the body
