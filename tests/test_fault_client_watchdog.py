"""client-watchdog: idle-timeout from the client's side; decisions, then the user story."""

from __future__ import annotations

import random

import pytest
from trio.testing import MockClock

from sseproxy import origin
from sseproxy.errors import ScenarioError
from sseproxy.faults import get_fault
from sseproxy.faults.base import Close, Deliver, Piece, Wake
from sseproxy.faults.client_watchdog import ClientWatchdog
from sseproxy.faults.idle_timeout import IdleTimeout
from sseproxy.sse import Framer
from tests.harness import memory_proxy, scenario_of


def blocks(raw: bytes) -> list[Piece]:
    return [Piece(block.raw, True, block.event) for block in Framer().feed(raw)]


def test_is_idle_timeout_with_client_defaults() -> None:
    assert get_fault("client-watchdog") is ClientWatchdog
    assert issubclass(ClientWatchdog, IdleTimeout)
    assert [(p.name, p.default) for p in ClientWatchdog.params][1] == ("counts", "events")
    assert [p.name for p in ClientWatchdog.params] == ["timeout", "counts"]
    assert [p.default for p in IdleTimeout.params][1:] == ["bytes", "close", 504, 0.0]  # untouched
    spec = scenario_of('[[faults]]\ntype = "client-watchdog"\ntimeout = "45s"\n').faults[0]
    assert dict(spec.settings) == {"timeout": 45.0, "counts": "events"}


def test_action_is_not_a_choice() -> None:
    with pytest.raises(ScenarioError, match="field 'action': unknown field"):
        scenario_of('[[faults]]\ntype = "client-watchdog"\ntimeout = "5s"\naction = "reset"\n')


def test_only_events_feed_the_watchdog() -> None:
    fault = ClientWatchdog({"timeout": 45.0, "counts": "events"}, random.Random(0))
    assert fault.needs_events()
    event, comment = blocks(origin.encode_event(1) + b": heartbeat\n\n")
    assert fault.start(0.0) == [Wake(45.0)]
    assert fault.on_piece(event, 10.0) == [Deliver(event, 10.0), Wake(55.0)]
    assert fault.on_piece(comment, 40.0) == [Deliver(comment, 40.0)]
    assert fault.on_timer(55.0) == [Close("no event for 45s")]


def test_counting_bytes_is_a_read_timeout() -> None:
    fault = ClientWatchdog({"timeout": 5.0, "counts": "bytes"}, random.Random(0))
    assert not fault.needs_events()
    comment = Piece(b": heartbeat\n\n")
    assert fault.on_piece(comment, 4.0) == [Deliver(comment, 4.0), Wake(9.0)]
    assert fault.on_timer(9.0) == [Close("no byte for 5s")]


WATCHDOG = '[[faults]]\ntype = "client-watchdog"\ntimeout = "45s"\n'


async def test_comment_heartbeats_do_not_keep_the_client(autojump_clock: MockClock) -> None:
    settings = origin.OriginSettings(interval=100, heartbeat=30)
    async with memory_proxy(WATCHDOG, settings) as mp:
        got = await mp.client().get("/events")
        hb = origin.encode_heartbeat("comment", 30.0)
        assert got.chunks == [(0.0, origin.encode_event(1)), (30.0, hb)]
        assert (got.ending, got.ended_at) == ("closed", 45.0)
        (closed,) = await mp.journal.wait_for("closed")
        assert (closed["by"], closed["reason"], closed["t"]) == ("proxy", "client-watchdog", 45.0)
        assert (closed["detail"], closed["events_down"]) == ("no event for 45s", 1)


async def test_event_heartbeats_keep_the_client(autojump_clock: MockClock) -> None:
    settings = origin.OriginSettings(interval=100, heartbeat=15, hb="event", count=2)
    async with memory_proxy(WATCHDOG, settings) as mp:
        got = await mp.client().get("/events")
        beats = [(15.0 * k, origin.encode_heartbeat("event", 15.0 * k)) for k in range(1, 7)]
        assert got.chunks == [
            (0.0, origin.encode_event(1)),
            *beats,
            (100.0, origin.encode_event(2)),
        ]
        assert (got.ending, got.ended_at) == ("end", 100.0)
        assert not mp.journal.of_kind("fault")


async def test_httpx_read_timeout(autojump_clock: MockClock) -> None:
    scenario = '[[faults]]\ntype = "client-watchdog"\ntimeout = "5s"\ncounts = "bytes"\n'
    settings = origin.OriginSettings(interval=100, heartbeat=30)
    async with memory_proxy(scenario, settings) as mp:
        got = await mp.client().get("/events")
        assert (got.body, got.ending, got.ended_at) == (origin.encode_event(1), "closed", 5.0)
        (fault,) = await mp.journal.wait_for("fault")
        assert (fault["fault"], fault["action"], fault["detail"]) == (
            "client-watchdog",
            "close",
            "no byte for 5s",
        )
