"""latency: delays in pure code, then exact virtual times through the proxy."""

from __future__ import annotations

import random
from typing import Any

import pytest

from sseproxy import origin
from sseproxy.faults.base import Deliver, Piece
from sseproxy.faults.latency import Latency
from tests.harness import memory_proxy


def make(delay: float, jitter: float = 0.0, seed: int = 0) -> Latency:
    return Latency({"delay": delay, "jitter": jitter}, random.Random(seed))


def due_times(fault: Latency, arrivals: list[float]) -> list[float]:
    """When each piece (arriving at the given times) is delivered."""
    times = []
    for n, now in enumerate(arrivals):
        piece = Piece(f"piece {n}".encode())
        (action,) = fault.on_piece(piece, now)
        assert isinstance(action, Deliver) and action.piece is piece
        times.append(action.at)
    return times


def test_a_fixed_delay_adds_exactly_the_delay() -> None:
    assert due_times(make(0.25), [0.0, 1.0, 1.5]) == [0.25, 1.25, 1.75]


def test_zero_delay_delivers_at_once() -> None:
    assert due_times(make(0.0), [0.0, 3.0]) == [0.0, 3.0]


def test_jitter_from_a_seeded_rng_is_deterministic() -> None:
    arrivals = [i * 0.05 for i in range(200)]
    first = due_times(make(0.2, 0.1, seed=42), arrivals)
    assert first == due_times(make(0.2, 0.1, seed=42), arrivals)
    assert first != due_times(make(0.2, 0.1, seed=43), arrivals)


def test_jitter_spreads_within_its_bounds() -> None:
    # arrivals far apart, so ordering never raises a due time
    arrivals = [i * 10.0 for i in range(500)]
    lateness = [
        due - now for due, now in zip(due_times(make(1.0, 0.25), arrivals), arrivals, strict=True)
    ]
    assert all(0.75 <= late <= 1.25 for late in lateness)
    assert min(lateness) < 0.8 and max(lateness) > 1.2  # it does spread, both ways
    assert len(set(lateness)) > 400


@pytest.mark.parametrize("seed", range(5))
def test_never_early_even_when_jitter_exceeds_the_delay(seed: int) -> None:
    arrivals = [i * 10.0 for i in range(300)]
    due = due_times(make(0.01, 1.0, seed=seed), arrivals)
    lateness = [d - now for d, now in zip(due, arrivals, strict=True)]
    assert all(late >= 0.0 for late in lateness)
    assert lateness.count(0.0) > 100  # the negative draws are clamped to "now"


@pytest.mark.parametrize("seed", range(5))
def test_order_is_kept_under_jitter(seed: int) -> None:
    # the same seed draws the same spread per piece; far apart, the draws show plainly
    apart = [i * 10.0 for i in range(300)]
    spread = [
        d - now for d, now in zip(due_times(make(0.1, 0.09, seed), apart), apart, strict=True)
    ]
    close = [i * 0.001 for i in range(300)]  # much closer together than the jitter
    fault = make(0.1, 0.09, seed)
    due = due_times(fault, close)
    assert due == sorted(due)
    expected, last = [], float("-inf")
    for now, late in zip(close, spread, strict=True):
        last = max(last, now + late)  # never before the piece ahead of it
        expected.append(last)
    assert due == pytest.approx(expected, abs=1e-12)
    assert fault.last == due[-1]
    held_back = sum(1 for now, late, d in zip(close, spread, due, strict=True) if d > now + late)
    assert held_back > 50  # the order did raise many due times


# -- through the proxy ---------------------------------------------------------------------

LATENCY_200MS = '[[faults]]\ntype = "latency"\ndelay = "200ms"\n'


async def test_every_event_arrives_200ms_after_it_was_sent(autojump_clock: Any) -> None:
    settings = origin.OriginSettings(interval=1.0, heartbeat=0, count=3)
    async with memory_proxy(LATENCY_200MS, settings) as mp:
        got = await mp.client().get("/events")
        assert got.status == 200
        assert got.chunks == [
            (0.2, origin.encode_event(1)),
            (1.2, origin.encode_event(2)),
            (2.2, origin.encode_event(3)),
        ]
        assert (got.ending, got.ended_at) == ("end", 2.2)
        (ended,) = await mp.journal.wait_for("ended")
        assert (ended["by"], ended["reason"]) == ("upstream", "upstream-end")
        assert not mp.journal.of_kind("fault")


async def test_latency_does_not_throttle(autojump_clock: Any) -> None:
    settings = origin.OriginSettings(interval=0, heartbeat=0, count=100)
    async with memory_proxy(LATENCY_200MS, settings) as mp:
        got = await mp.client().get("/events")
        assert got.body == b"".join(origin.encode_event(n) for n in range(1, 101))
        assert {at for at, _ in got.chunks} == {0.2}
        assert (got.ending, got.ended_at) == ("end", 0.2)


async def test_without_latency_the_same_events_arrive_at_once(autojump_clock: Any) -> None:
    settings = origin.OriginSettings(interval=1.0, heartbeat=0, count=3)
    async with memory_proxy("", settings) as mp:
        got = await mp.client().get("/events")
        assert [at for at, _ in got.chunks] == [0.0, 1.0, 2.0]


async def test_latency_on_the_request_body_only(autojump_clock: Any) -> None:
    scenario = '[[faults]]\ntype = "latency"\ndelay = "3s"\ndirection = "up"\n'
    async with memory_proxy(scenario) as mp:
        client = mp.client()
        await client.send("POST", "/echo", body=b"hello, origin")
        got = await client.response()
        assert got.body == b"hello, origin"
        assert got.chunks[0][0] == 3.0  # the origin answers once the delayed body is in
