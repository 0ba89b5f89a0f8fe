"""Header settings either load and work, or are refused when the scenario loads: no
setting of `headers` or `status` may make a matching connection an internal error."""

from __future__ import annotations

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from sseproxy import origin
from sseproxy.errors import ScenarioError
from sseproxy.scenario import Scenario, _toml, parse_scenario
from tests.harness import memory_proxy

NAMES = st.sampled_from(
    ["Host", "host", "Content-Length", "Transfer-Encoding", "Connection", "X-A", "Upgrade"]
)
VALUES = st.sampled_from(["", "x", "chunked", "gzip", "abc", "5", "close", "a b", "é"]) | st.text(
    st.sampled_from(" \t\x01\x7fa"), max_size=3
)
TABLES = st.dictionaries(NAMES, VALUES, max_size=2)
FAULTS = st.one_of(
    st.fixed_dictionaries(
        {
            "type": st.just("headers"),
            "target": st.sampled_from(["request", "response"]),
            "direction": st.sampled_from(["down", "both"]),
        },
        optional={"add": TABLES, "set": TABLES, "remove": st.lists(NAMES, max_size=2)},
    ),
    st.fixed_dictionaries({"type": st.just("status"), "headers": TABLES}),
)
FOUR = origin.OriginSettings(interval=1, heartbeat=0, count=4)


def load(fault: dict[str, object]) -> Scenario | None:
    text = "[[faults]]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in fault.items())
    try:
        return parse_scenario(text, file="h.toml")
    except ScenarioError as error:
        assert all("\n" not in line and "\r" not in line for line in error.lines)
        return None


async def exchange(scenario: Scenario, method: str) -> list[dict[str, object]]:
    async with memory_proxy(scenario, FOUR) as mp:
        client = mp.client()
        await client.send(method, "/events", [], b"body" if method == "POST" else b"")
        await client.response()
        await mp.journal.wait_for("ended")
        return [r for r in mp.journal.records if r["kind"] in ("ended", "closed")]


@settings(max_examples=150, deadline=None)
@given(fault=FAULTS, method=st.sampled_from(["GET", "POST"]))
def test_a_header_setting_that_loads_never_breaks_the_proxy(
    fault: dict[str, object], method: str
) -> None:
    scenario = load(fault)
    if scenario is None:
        return
    clock = trio.testing.MockClock(autojump_threshold=0)
    records = trio.run(exchange, scenario, method, clock=clock)
    reasons = [record.get("reason") for record in records]
    assert "internal-error" not in reasons, records
