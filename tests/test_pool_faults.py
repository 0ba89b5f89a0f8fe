"""Faults on pool members, in virtual time on memory streams: `match.upstream`, `down`,
`restart`, `connect-retries`, and `--client-ip-from` for ip_hash."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio
import trio.testing

from sseproxy import origin
from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.scenario import Scenario
from tests.harness import Client, scenario_of

POOL = """
[scenario]
balance = "{balance}"

[[upstreams]]
url = "http://127.0.0.1:9001"
[[upstreams]]
url = "http://127.0.0.1:9002"
[[upstreams]]
url = "http://127.0.0.1:9003"
"""


@dataclass
class MemoryPool:
    proxy: Proxy
    nursery: trio.Nursery
    refusing: set[str] = field(default_factory=set)
    connects: list[tuple[float, str]] = field(default_factory=list)

    def client(self, peer: str = "127.0.0.1:50000") -> Client:
        client_end, proxy_end = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self.proxy.handle, proxy_end, peer)
        return Client(client_end)

    def records(self, kind: str) -> list[dict[str, object]]:
        return [r for r in self.proxy.journal.records if r["kind"] == kind]

    def members(self) -> list[object]:
        return [r.get("member") for r in self.records("upstream")]


@asynccontextmanager
async def memory_pool(
    scenario: Scenario | str, *, mode: str = "http", **settings: object
) -> AsyncIterator[MemoryPool]:
    """A proxy whose pool members a, b, c are built-in origins on memory streams."""
    if isinstance(scenario, str):
        scenario = scenario_of(scenario)
    with trio.fail_after(10_000):
        async with trio.open_nursery() as nursery:
            rig: MemoryPool

            async def connect(member: str) -> trio.abc.Stream:
                rig.connects.append((trio.current_time(), member))
                if member in rig.refusing:
                    raise OSError(errno.ECONNREFUSED, "Connection refused")
                proxy_end, origin_end = trio.testing.memory_stream_pair()
                nursery.start_soon(origin.handle_connection, origin_end, origin.OriginSettings())
                return proxy_end

            proxy = Proxy(
                ProxySettings(Upstream("127.0.0.1", 9001), mode, **settings),  # type: ignore[arg-type]
                scenario,
                Journal(keep=True),
                seed=1,
                member_connector=connect,
            )
            rig = MemoryPool(proxy, nursery)
            yield rig
            nursery.cancel_scope.cancel()


async def test_a_fault_matching_one_member_acts_only_on_its_exchanges(
    autojump_clock: object,
) -> None:
    scenario = POOL.format(balance="round_robin") + (
        '[[faults]]\ntype = "status"\ncode = 418\nmatch = { upstream = "b" }\n'
    )
    async with memory_pool(scenario) as rig:
        client = rig.client()
        statuses = [(await client.get("/status/200")).status for _ in range(6)]
        assert statuses == [200, 418, 200, 200, 418, 200]
        faulted = [r.get("faults") for r in rig.records("request")]
        assert faulted == [None, ["status"], None, None, ["status"], None]


async def test_down_refuse_fails_over_and_the_member_returns_after_its_window(
    autojump_clock: object,
) -> None:
    scenario = POOL.format(balance="round_robin") + (
        '[[faults]]\ntype = "down"\nmatch = { upstream = "b" }\n'
        'window = { from = "0s", until = "5s" }\n'
    )
    async with memory_pool(scenario) as rig:
        client = rig.client()
        for _ in range(6):
            assert (await client.get("/status/200")).status == 200
        assert "b" not in rig.members()
        failed = rig.records("upstream-failed")
        assert [(f["member"], f["reason"]) for f in failed] == [("b", "upstream-refused")]
        assert all(member != "b" for _, member in rig.connects)  # refused by the proxy
        await trio.sleep(20)  # past the window and fail_timeout
        seen = [(await client.get("/status/200")).status for _ in range(3)]
        assert seen == [200, 200, 200]
        assert "b" in rig.members()[-3:]


async def test_down_502_is_answered_by_the_member_without_failover(
    autojump_clock: object,
) -> None:
    scenario = POOL.format(balance="round_robin") + (
        '[[faults]]\ntype = "down"\nhow = "502"\nmatch = { upstream = "a" }\n'
    )
    async with memory_pool(scenario) as rig:
        client = rig.client("127.0.0.1:50001")
        got = await client.get("/status/200")
        assert got.status == 502 and got.body == b"502 Bad Gateway\n"
        assert rig.members() == ["a"]  # the member's own answer: no failover, no failure
        assert rig.records("upstream-failed") == []


async def test_restart_breaks_the_members_streams_and_it_forgets_its_sessions(
    autojump_clock: object,
) -> None:
    scenario = POOL.format(balance="round_robin") + (
        '[[faults]]\ntype = "restart"\ndowntime = "2s"\nmatch = { upstream = "a" }\n'
        'window = { from = "5s" }\n'
    )
    async with memory_pool(scenario) as rig:
        restarted: list[tuple[float, str]] = []
        rig.proxy.on_restart = lambda member: restarted.append((trio.current_time(), member))
        on_a, on_b = rig.client(), rig.client()
        results: dict[str, object] = {}

        async def watch(name: str, client: Client) -> None:
            results[name] = await client.get("/events?interval=1")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, "a", on_a)
            await trio.sleep(0.5)
            nursery.start_soon(watch, "b", on_b)
            await trio.sleep(6)
            nursery.cancel_scope.cancel()  # b's stream goes on: the restart was a's
        got_a = results["a"]
        assert got_a.ending == "closed" and got_a.ended_at == 5.0  # type: ignore[attr-defined]
        assert "b" not in results
        fired = [(r["fault"], r["action"]) for r in rig.records("fault")]
        assert fired == [("restart", "close")]
        assert restarted == []  # not yet: a is told before it is contacted again
        # round robin: c, then a, which is down for 2 s after its restart: on to b
        client = rig.client()
        t0 = trio.current_time()
        assert [(await client.get("/status/200")).status for _ in range(2)] == [200, 200]
        assert rig.members()[-2:] == ["c", "b"]
        assert restarted == [(t0, "a")]
        assert rig.records("member-restarted")[0]["member"] == "a"
        assert rig.records("upstream-failed")[-1]["member"] == "a"
        await trio.sleep(11)  # the downtime is over, and so is a's fail_timeout (10 s)
        for _ in range(4):  # smooth round robin owes a a turn after its failover
            assert (await client.get("/status/200")).status == 200
        assert rig.members()[-4:] == ["c", "b", "c", "a"]


async def test_an_exchange_after_the_restart_is_not_touched(autojump_clock: object) -> None:
    scenario = POOL.format(balance="round_robin") + (
        '[[faults]]\ntype = "restart"\nwindow = { from = "1s" }\n'
    )
    async with memory_pool(scenario) as rig:
        await trio.sleep(2)
        got = await rig.client().get("/events?interval=1&count=3")
        assert got.status == 200 and got.ending == "end"
        assert rig.records("fault") == []
        assert len(rig.records("member-restarted")) == 1


async def test_client_ip_from_makes_one_machine_many_clients_for_ip_hash(
    autojump_clock: object,
) -> None:
    async with memory_pool(POOL.format(balance="ip_hash"), client_ip_from="X-Forwarded-For") as rig:
        client = rig.client()
        for n in range(12):
            await client.get("/status/200", [("X-Forwarded-For", f"10.0.{n}.5, 192.0.2.1")])
        assert set(rig.members()) == {"a", "b", "c"}
        for _ in range(3):  # no header: the peer's own address, one member
            await client.get("/status/200")
        assert len(set(rig.members()[-3:])) == 1


async def test_tcp_mode_picks_a_member_per_connection(autojump_clock: object) -> None:
    scenario = POOL.format(balance="round_robin") + (
        '[[faults]]\ntype = "reset"\nmatch = { upstream = "b" }\n'
    )
    async with memory_pool(scenario, mode="tcp") as rig:
        outcomes = []
        for _ in range(3):
            outcomes.append((await rig.client().get("/status/200")).status)
        assert rig.members() == ["a", "b", "c"]
        assert outcomes == [200, 0, 200]  # b's connection was reset before any response


async def test_connect_retries_answers_503_after_its_retries_like_haproxy(
    autojump_clock: object,
) -> None:
    scenario = '[[faults]]\ntype = "connect-retries"\n'  # retries 3, wait 1s, 503
    async with memory_pool(scenario) as rig:
        rig.refusing.add("a")
        got = await rig.client().get("/events")
        assert got.status == 503
        assert [t for t, _ in rig.connects] == [0.0, 1.0, 2.0, 3.0]
        (ended,) = await rig.proxy.journal.wait_for("ended")
        assert ended["reason"] == "upstream-refused" and "4 connects" in str(ended["detail"])


async def test_connect_retries_wait_no_longer_than_the_connect_timeout(
    autojump_clock: object,
) -> None:
    scenario = '[[faults]]\ntype = "connect-retries"\nretries = 2\n'
    async with memory_pool(scenario, connect_timeout=0.2) as rig:
        rig.refusing.add("a")
        assert (await rig.client().get("/events")).status == 503
        assert [round(t, 6) for t, _ in rig.connects] == [0.0, 0.2, 0.4]


async def test_the_report_has_a_row_per_member(autojump_clock: object) -> None:
    from sseproxy.report import analyse, journal_from_records, render_html, render_text

    scenario = POOL.format(balance="round_robin") + (
        '[[faults]]\ntype = "down"\nmatch = { upstream = "b" }\n'
    )
    async with memory_pool(scenario) as rig:
        client = rig.client()
        for _ in range(4):
            await client.get("/status/200")
        await client.get("/events?count=2&interval=1")
        await rig.proxy.journal.wait_for("ended", 5)
        records = list(rig.proxy.journal.records)
    report = analyse(journal_from_records(records))
    assert "<h2>Upstream members</h2>" in render_html(report)
    text = render_text(report)
    section = text.split("UPSTREAM MEMBERS\n", 1)[1].split("\n\n", 1)[0]
    rows = [line.split() for line in section.splitlines()[1:]]
    assert rows == [  # b refused once, then was skipped (fail_timeout); c took its turns
        ["a", "2", "0", "0", "upstream/upstream-end", "(2)"],
        ["b", "0", "0", "1", "-"],
        ["c", "3", "1", "0", "upstream/upstream-end", "(3)"],
    ], section


async def test_a_restart_added_live_acts_at_once_on_the_members_open_streams(
    autojump_clock: object,
) -> None:
    pool = POOL.format(balance="round_robin")
    async with memory_pool(pool, live=True) as rig:
        results: dict[str, object] = {}

        async def watch(name: str) -> None:
            results[name] = await rig.client().get("/events?interval=1")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(watch, "a")
            await trio.sleep(0.5)
            nursery.start_soon(watch, "b")
            await trio.sleep(2.5)
            restart = '[[faults]]\ntype = "restart"\nmatch = { upstream = "a" }\n'
            rig.proxy.set_scenario(scenario_of(pool + restart))
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
        assert list(results) == ["a"]
        assert results["a"].ending == "closed" and results["a"].ended_at == 3.0  # type: ignore[attr-defined]
        later = await rig.client().get("/events?interval=1&count=2")  # c: not a's
        assert later.ending == "end"
        await rig.client().get("/status/200")  # a again: it forgets its sessions once
        assert [r["member"] for r in rig.records("member-restarted")] == ["a"]
