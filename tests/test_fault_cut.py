"""cut: decisions in pure code, then every combination through the proxy in virtual time."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sseproxy import origin
from sseproxy.errors import ScenarioError
from sseproxy.faults.base import Close, Deliver, End, Piece, Reset
from sseproxy.faults.cut import Cut
from sseproxy.sse import Event
from tests.harness import memory_proxy, scenario_of


def make(**settings: Any) -> Cut:
    defaults: dict[str, Any] = {"bytes": None, "events": None, "where": "boundary", "how": "close"}
    return Cut(defaults | settings, random.Random(0))


def event(n: int) -> Piece:
    data = origin.encode_event(n)
    return Piece(data, framed=True, event=Event("message", f'{{"n": {n}}}', str(n)))


COMMENT = Piece(b": heartbeat\n\n", framed=True)


def test_comments_pass_but_do_not_count_as_events() -> None:
    fault = make(events=2)
    assert fault.needs_events()
    assert fault.start(0.0) == []
    assert fault.on_piece(event(1), 1.0) == [Deliver(event(1), 1.0)]
    assert fault.on_piece(COMMENT, 1.5) == [Deliver(COMMENT, 1.5)]
    assert fault.on_piece(event(2), 2.0) == [Deliver(event(2), 2.0), Close("after 2 events")]


def test_bytes_cut_at_the_end_of_the_event_that_reaches_the_limit() -> None:
    fault = make(bytes=len(event(1).data) + 1, how="reset")
    assert fault.on_piece(event(1), 1.0) == [Deliver(event(1), 1.0)]
    detail = f"after {len(event(1).data) + 1}B"
    assert fault.on_piece(event(2), 2.0) == [Deliver(event(2), 2.0), Reset(detail)]
    size = len(event(1).data)
    exact = make(bytes=size, how="end")  # a limit on a boundary cuts right there
    assert exact.on_piece(event(1), 1.0) == [Deliver(event(1), 1.0), End(f"after {size}B")]


def test_mid_event_passes_comments_whole_and_cuts_the_next_event_in_half() -> None:
    fault = make(events=1, where="mid-event")
    assert fault.on_piece(event(1), 1.0) == [Deliver(event(1), 1.0)]
    assert fault.on_piece(COMMENT, 1.5) == [Deliver(COMMENT, 1.5)]
    half = event(2).data[: len(event(2).data) // 2]
    assert half == b"id: 2\ndata:"
    assert fault.on_piece(event(2), 2.0) == [
        Deliver(Piece(half), 2.0),
        Close("after 1 event and half an event"),
    ]


def test_zero_cuts_at_once_or_halves_the_first_event() -> None:
    assert make(bytes=0).start(3.0) == [Close("after 0B")]
    assert make(events=0, how="end").start(3.0) == [End("after 0 events")]
    fault = make(events=0, where="mid-event")
    assert fault.start(3.0) == []
    assert fault.on_piece(event(1), 4.0)[1:] == [Close("after 0 events and half an event")]


def test_an_end_before_the_cut_is_the_source_end() -> None:
    assert make(events=5).on_eof(1.0) == [End()]


@pytest.mark.parametrize(
    ("fields", "message"),
    [("", "give `bytes` or `events`"), ('bytes = "1KiB"\nevents = 3\n', "not both")],
)
def test_exactly_one_cut_point(fields: str, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        scenario_of(f'[[faults]]\ntype = "cut"\n{fields}')


def events(*numbers: int) -> bytes:
    return b"".join(origin.encode_event(n, 100) for n in numbers)


EVERY_SECOND = origin.OriginSettings(interval=1, heartbeat=0, size=100)  # event n at n-1 s
CASES = [  # cut point, where -> (bytes the client gets, when the cut comes, journal detail)
    ('bytes = "250B"', "boundary", events(1, 2, 3), 2.0, "after 250B"),
    ('bytes = "250B"', "mid-event", events(1, 2, 3, 4)[:350], 3.0, "after 250B and half an event"),
    ("events = 2", "boundary", events(1, 2), 1.0, "after 2 events"),
    ("events = 2", "mid-event", events(1, 2, 3)[:250], 2.0, "after 2 events and half an event"),
]


@pytest.mark.parametrize("how", ["end", "close", "reset"])
@pytest.mark.parametrize(("point", "where", "body", "at", "detail"), CASES)
async def test_every_combination_through_the_proxy(
    autojump_clock: object, point: str, where: str, body: bytes, at: float, detail: str, how: str
) -> None:
    scenario = f'[[faults]]\ntype = "cut"\n{point}\nwhere = "{where}"\nhow = "{how}"\n'
    async with memory_proxy(scenario, EVERY_SECOND) as mp:
        got = await mp.client().get("/events")
        assert got.body == body
        assert (got.ending, got.ended_at) == ("end" if how == "end" else "closed", at)
        (fault,) = mp.journal.of_kind("fault")
        assert (fault["fault"], fault["action"], fault["detail"], fault["t"]) == (
            "cut",
            how,
            detail,
            at,
        )
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"], ended["detail"]) == ("proxy", "cut", detail)


async def test_heartbeats_between_events_are_no_events(autojump_clock: object) -> None:
    settings = origin.OriginSettings(interval=1, heartbeat=0.4, size=100)
    scenario = '[[faults]]\ntype = "cut"\nevents = 2\nwhere = "mid-event"\n'
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events")
        beat = origin.encode_heartbeat("comment", 0)
        # 0: e1, 0.4 hb, 0.8 hb, 1: e2 (the cut point), 1.2 hb and 1.6 hb pass, 2: half of e3
        assert got.body == events(1) + beat * 2 + events(2) + beat * 2 + events(3)[:50]
        assert (got.ending, got.ended_at) == ("closed", 2.0)
