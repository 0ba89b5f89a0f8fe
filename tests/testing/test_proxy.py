"""`open_proxy` and `open_origin`: trio-native, on loopback sockets, in the test's nursery."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import trio
import trio.testing

from sseproxy.errors import ConfigError, ScenarioError
from sseproxy.scenario import Scenario, parse_scenario
from sseproxy.testing import as_scenario, open_origin, open_proxy
from tests.testing.clients import Response, get_events

CUT_AFTER_2 = "[[faults]]\ntype = 'cut'\nevents = 2\nhow = 'end'\n"
QUERY = "/events?interval=0&heartbeat=0&count=5"


async def fetch(url: str, path: str = QUERY, last_event_id: str | None = None) -> Response:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    return await get_events(stream, path, last_event_id)


def ids(response: Response) -> list[str]:
    return [event.id for event in response.events]


async def test_open_origin_yields_the_url_of_the_builtin_server() -> None:
    async with open_origin(interval=0, count=3, heartbeat=0) as url:
        assert ids(await fetch(url, "/events")) == ["1", "2", "3"]


async def test_a_proxy_in_front_of_an_origin_applies_its_scenario() -> None:
    async with open_origin() as origin, open_proxy(origin, CUT_AFTER_2) as proxy:
        assert proxy.upstream == origin and proxy.url.endswith(f":{proxy.port}")
        assert ids(await fetch(proxy.url)) == ["1", "2"]
        [closed] = await proxy.wait_for_closed(1)
        assert closed["events_down"] == 2
        assert [r["fault"] for r in proxy.of_kind("fault")] == ["cut"]
        assert proxy.records[0]["kind"] == "started"


async def test_waits_are_event_driven() -> None:
    async with open_proxy() as proxy, trio.open_nursery() as nursery:
        done: list[str] = []
        finished = trio.Event()

        async def wait() -> None:
            await proxy.wait_for_connections(2)
            done.append("opened")
            await proxy.wait_for_closed(2)
            done.append("closed")
            finished.set()

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        assert done == []
        await fetch(proxy.url)
        await fetch(proxy.url)
        with trio.fail_after(5):
            await finished.wait()
        assert done == ["opened", "closed"]


@pytest.mark.parametrize("live", [True, False])
async def test_set_scenario_reaches_open_connections_when_live(live: bool) -> None:
    async with open_proxy(seed=5, live=live) as proxy, trio.open_nursery() as nursery:
        slow: list[Response] = []

        async def read_slowly() -> None:
            slow.append(await fetch(proxy.url, "/events?interval=0.05&heartbeat=0&count=5"))

        nursery.start_soon(read_slowly)
        await proxy.wait_for("response")
        proxy.set_scenario(parse_scenario(CUT_AFTER_2))
        assert ids(await fetch(proxy.url)) == ["1", "2"]
        await proxy.wait_for_closed(2)
    # live: the open stream gets the cut too (2 events from now on); else it keeps none
    assert len(ids(slow[0])) < 5 if live else ids(slow[0]) == ["1", "2", "3", "4", "5"]
    [change] = proxy.of_kind("scenario")
    assert change["faults"] == ["cut"] and change["seed"] == 5 and proxy.proxy.seed == 5


async def test_set_scenario_takes_the_seed_of_the_scenario_or_the_one_given() -> None:
    async with open_proxy(seed=1) as proxy:
        proxy.set_scenario(Scenario(name="a", seed=9))
        assert proxy.proxy.seed == 9 and proxy.journal.scenario == "a"
        proxy.set_scenario(Scenario(name="b", seed=9), seed=3)
        assert proxy.proxy.seed == 3 and proxy.scenario.name == "b"


async def test_tcp_mode_relays_bytes() -> None:
    async with open_proxy(mode="tcp") as proxy:
        assert ids(await fetch(proxy.url)) == ["1", "2", "3", "4", "5"]
        [opened] = await proxy.wait_for_connections(1)
        assert opened["mode"] == "tcp"


async def test_an_error_in_the_block_comes_out_as_itself() -> None:
    with pytest.raises(AssertionError, match="the client lost events"):
        async with open_proxy():
            raise AssertionError("the client lost events")


async def test_bad_arguments_raise_plain_errors() -> None:
    with pytest.raises(ConfigError, match="scheme 'ftp'"):
        async with open_proxy("ftp://x:1"):
            pass
    with pytest.raises(ValueError, match="mode must be"):
        async with open_proxy(mode="udp"):
            pass


def test_as_scenario_accepts_toml_names_scenarios_and_none() -> None:
    assert as_scenario(None).faults == ()
    assert as_scenario(CUT_AFTER_2).faults[0].type == "cut"
    assert as_scenario("nginx-default").name
    scenario = Scenario(name="x")
    assert as_scenario(scenario) is scenario
    with pytest.raises(ScenarioError, match="no such file"):
        as_scenario("no-such-preset")
    with pytest.raises(TypeError, match="scenario must be"):
        as_scenario(42)  # type: ignore[arg-type]
