"""Plan.chains: which connections get which faults, and when they act (trio time)."""

from __future__ import annotations

import math

import pytest

from sseproxy.faults.base import NO_DRAWS
from sseproxy.faults.latency import Latency
from sseproxy.plan import Chains, Plan
from sseproxy.scenario import RequestInfo, parse_scenario

STARTED = 100.0  # trio time of scenario time 0: makes every offset visible

SSE = RequestInfo("GET", "/sse/feed", {"accept": "text/event-stream"})
OTHER = RequestInfo("GET", "/health")


def plan(faults: str, seed: int = 1, started: float = STARTED) -> Plan:
    return Plan(parse_scenario(faults), seed=seed, started=started)


def fault(body: str = "", type_: str = "latency") -> str:
    return f'[[faults]]\ntype = "{type_}"\n{body}\n'


def chosen(p: Plan, connections: int, request: RequestInfo | None = SSE) -> list[int]:
    """Connection numbers (1-based) whose down chain got any fault."""
    return [n for n in range(1, connections + 1) if p.chains(n, request, STARTED).down]


def test_no_faults_no_slots() -> None:
    chains = plan("").chains(1, SSE, STARTED)
    assert chains == Chains()
    assert chains.names() == []


def test_a_plain_fault_goes_to_every_connection_downstream() -> None:
    p = plan(fault('name = "lag"'))
    for number in range(1, 5):
        chains = p.chains(number, SSE, STARTED + number)
        assert chains.up == []
        (slot,) = chains.down
        assert slot.name == "lag"
        assert isinstance(slot.fault, Latency)
        assert slot.active_from == STARTED + number
        assert slot.active_until == math.inf
        assert chains.names() == ["lag"]


def test_every_counts_matching_connections_only() -> None:
    p = plan(fault('every = 3\nmatch = { path = "/sse/*" }'))
    picked = []
    matching = 0
    for number in range(1, 31):
        request = SSE if number % 2 else OTHER  # odd connections match, even ones do not
        got = p.chains(number, request, STARTED).down
        if request is SSE:
            matching += 1
            if got:
                picked.append(matching)
        else:
            assert not got
    assert picked == [3, 6, 9, 12, 15]


def test_every_on_consecutive_connections() -> None:
    assert chosen(plan(fault("every = 3")), 10) == [3, 6, 9]


def test_first() -> None:
    assert chosen(plan(fault("first = 2")), 10) == [1, 2]


def test_first_counts_matching_connections_only() -> None:
    p = plan(fault('first = 2\nmatch = { method = "GET" }'))
    post = RequestInfo("POST", "/sse/feed")
    assert not p.chains(1, post, STARTED).down
    assert p.chains(2, SSE, STARTED).down
    assert not p.chains(3, post, STARTED).down
    assert p.chains(4, SSE, STARTED).down
    assert not p.chains(5, SSE, STARTED).down


def test_counters_are_per_fault() -> None:
    p = plan(fault('name = "a"\nevery = 2') + fault('name = "b"\nfirst = 1'))
    names = [p.chains(n, SSE, STARTED).names() for n in range(1, 5)]
    assert names == [["b"], ["a"], [], ["a"]]


def test_tcp_connections_only_get_unmatched_faults() -> None:
    p = plan(fault('name = "any"') + fault('name = "web"\nmatch = { path = "/*" }'))
    assert p.chains(1, None, STARTED).names() == ["any"]
    assert p.chains(2, SSE, STARTED).names() == ["any", "web"]


# -- probability ----------------------------------------------------------------------------


def test_probability_is_deterministic_per_seed() -> None:
    faults = fault("probability = 0.5")
    first = chosen(plan(faults, seed=7), 200)
    assert chosen(plan(faults, seed=7), 200) == first
    assert chosen(plan(faults, seed=8), 200) != first
    assert 0 < len(first) < 200


def test_draws_do_not_depend_on_the_order_connections_ask() -> None:
    faults = fault("probability = 0.5")
    forward = plan(faults, seed=3)
    backward = plan(faults, seed=3)
    ahead = {n for n in range(1, 101) if forward.chains(n, SSE, STARTED).down}
    behind = {n for n in range(100, 0, -1) if backward.chains(n, SSE, STARTED).down}
    assert ahead == behind


@pytest.mark.parametrize("probability", [0.1, 0.3, 0.75])
def test_probability_proportion(probability: float) -> None:
    picked = chosen(plan(fault(f"probability = {probability}"), seed=42), 1000)
    assert abs(len(picked) / 1000 - probability) < 0.05


@pytest.mark.parametrize(("probability", "count"), [(0.0, 0), (1.0, 50)])
def test_probability_extremes(probability: float, count: int) -> None:
    assert len(chosen(plan(fault(f"probability = {probability}")), 50)) == count


def test_adding_a_fault_does_not_change_the_first_ones_draws() -> None:
    one = plan(fault('name = "a"\nprobability = 0.5'), seed=5)
    two = plan(
        fault('name = "a"\nprobability = 0.5') + fault('name = "b"\nprobability = 0.5'), seed=5
    )
    alone = [("a" in one.chains(n, SSE, STARTED).names()) for n in range(1, 301)]
    pair = [two.chains(n, SSE, STARTED).names() for n in range(1, 301)]
    assert [("a" in names) for names in pair] == alone
    # and the second fault draws for itself, not a copy of the first
    assert [("b" in names) for names in pair] != alone


def first_draw(seed: int, number: int, direction: str = "down") -> float:
    chains = plan(fault('direction = "both"'), seed).chains(number, SSE, STARTED)
    slot = (chains.down if direction == "down" else chains.up)[0]
    return slot.fault.rng.random()


def test_each_fault_instance_has_its_own_deterministic_rng() -> None:
    p = plan(fault())
    assert p.chains(1, SSE, STARTED).down[0].fault is not p.chains(2, SSE, STARTED).down[0].fault
    assert first_draw(9, 1) == first_draw(9, 1)
    assert first_draw(9, 1) != first_draw(9, 2)
    assert first_draw(9, 1) != first_draw(10, 1)
    assert first_draw(9, 1, "down") != first_draw(9, 1, "up")


# -- when a fault acts ----------------------------------------------------------------------


def test_after_offsets_from_the_connection_start() -> None:
    (slot,) = plan(fault('after = "2s"')).chains(1, SSE, 105.0).down
    assert (slot.active_from, slot.active_until) == (107.0, math.inf)


def test_window_in_trio_time() -> None:
    (slot,) = plan(fault('window = { from = "30s", until = "90s" }')).chains(1, SSE, 105.0).down
    assert (slot.active_from, slot.active_until) == (130.0, 190.0)


def test_after_later_than_the_window_opening_wins() -> None:
    body = 'after = "40s"\nwindow = { from = "30s", until = "90s" }'
    (slot,) = plan(fault(body)).chains(1, SSE, 105.0).down
    assert (slot.active_from, slot.active_until) == (145.0, 190.0)


def test_window_already_open() -> None:
    body = 'after = "1s"\nwindow = { from = "30s", until = "90s" }'
    (slot,) = plan(fault(body)).chains(1, SSE, 150.0).down
    assert (slot.active_from, slot.active_until) == (151.0, 190.0)


@pytest.mark.parametrize("now", [190.0, 250.0])
def test_window_already_closed_selects_nothing(now: float) -> None:
    p = plan(fault('window = { from = "30s", until = "90s" }'))
    assert p.chains(1, SSE, now) == Chains()


def test_window_relative_to_started() -> None:
    p = plan(fault('window = { until = "10s" }'), started=0.0)
    assert p.chains(1, SSE, 9.0).down
    assert not p.chains(2, SSE, 10.0).down


def test_direction_both_gives_a_slot_in_each_chain() -> None:
    body = 'name = "lag"\ndirection = "both"\nafter = "1s"\nwindow = { until = "1m" }'
    chains = plan(fault(body)).chains(1, SSE, 100.0)
    (down,) = chains.down
    (up,) = chains.up
    assert down.name == up.name == "lag"
    assert down.fault is not up.fault
    assert (down.active_from, down.active_until) == (up.active_from, up.active_until)
    assert (down.active_from, down.active_until) == (101.0, 160.0)
    assert chains.names() == ["lag"]


def test_direction_up() -> None:
    chains = plan(fault('direction = "up"')).chains(1, SSE, STARTED)
    assert (len(chains.down), len(chains.up)) == (0, 1)


def test_chain_order_follows_the_scenario() -> None:
    faults = fault('name = "z"') + fault('name = "a"') + fault("events = 3", type_="reset")
    chains = plan(faults).chains(1, SSE, STARTED)
    assert [slot.name for slot in chains.down] == ["z", "a", "reset"]
    assert chains.names() == ["a", "reset", "z"]


def test_only_a_fault_that_draws_gets_a_generator_of_its_own() -> None:
    """A Mersenne Twister is 2.5 KB per stream: an idle timer has no use for one."""
    faults = fault('timeout = "1s"', "idle-timeout") + fault(
        "size = '10B'\nvariation = '5B'", "slicer"
    )
    idle, slicer = plan(faults).chains(1, SSE, STARTED).down
    assert idle.fault.rng is NO_DRAWS
    assert slicer.fault.rng is not NO_DRAWS
    again = plan(faults).chains(1, SSE, STARTED).down[1]
    assert again.fault.rng.random() == slicer.fault.rng.random()  # seeded per stream


def test_a_draw_without_declaring_it_is_refused_loudly() -> None:
    with pytest.raises(AssertionError, match="uses_random"):
        NO_DRAWS.uniform(0, 1)
    with pytest.raises(AssertionError, match="uses_random"):
        NO_DRAWS.randint(1, 10)
