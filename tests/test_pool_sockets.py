"""A pool over real loopback sockets: three built-in upstreams behind the proxy, each
balancing method's distribution, and failover from a member that refuses connections.

The clients look like many (`--client-ip-from X-Forwarded-For`), as ip_hash needs.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial

import h11
import pytest
import trio

from sseproxy import origin
from sseproxy.journal import Journal
from sseproxy.pool import MemberSpec
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.scenario import Scenario, parse_scenario
from sseproxy.server import listen, serve_proxy

REQUESTS = 30


def closed_port() -> int:
    """A loopback port nothing listens on (connects to it are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Rig:
    proxy: Proxy
    port: int

    async def get(self, target: str, headers: list[tuple[str, str]]) -> int:
        conn = h11.Connection(h11.CLIENT)
        stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        async with stream:
            request = h11.Request(method="GET", target=target, headers=[("host", "pool"), *headers])
            await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(await stream.receive_some(65536))
                elif isinstance(event, h11.Response):
                    return event.status_code

    def members(self) -> list[str]:
        """The member of every exchange that reached one, in order."""
        return [r["member"] for r in self.proxy.journal.records if r["kind"] == "upstream"]

    def failed(self) -> list[str]:
        return [r["member"] for r in self.proxy.journal.records if r["kind"] == "upstream-failed"]


@asynccontextmanager
async def pool_rig(
    balance: str, *, refusing: str | None = None, **extra: str
) -> AsyncIterator[Rig]:
    """Members a, b, c on built-in upstreams (the `refusing` one on a closed port)."""
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            members = []
            for name in "abc":
                if name == refusing:
                    port = closed_port()
                else:
                    port = await nursery.start(
                        origin.serve, "127.0.0.1", 0, origin.OriginSettings()
                    )
                members.append(MemberSpec(name, f"http://127.0.0.1:{port}"))
            settings = ProxySettings(
                Upstream.parse(members[0].url),
                upstreams=tuple(members),
                balance=balance,
                client_ip_from="X-Forwarded-For",
                **extra,  # type: ignore[arg-type]
            )
            proxy = Proxy(settings, Scenario(name="pool"), Journal(keep=True), seed=3)
            listener = await listen("127.0.0.1", 0)
            await nursery.start(serve_proxy, proxy, listener)
            yield Rig(proxy, listener.socket.getsockname()[1])
            nursery.cancel_scope.cancel()


def client(n: int) -> list[tuple[str, str]]:
    """Client n: its own /24 (ip_hash keys on three octets)."""
    return [("X-Forwarded-For", f"10.{n // 250}.{n % 250}.9, 127.0.0.1")]


async def test_round_robin_and_least_conn_share_evenly() -> None:
    for balance in ("round_robin", "least_conn"):
        async with pool_rig(balance) as rig:
            for n in range(REQUESTS):
                assert await rig.get("/status/200", client(n)) == 200
            counts = Counter(rig.members())
            print(balance, dict(sorted(counts.items())))
            assert counts == {"a": 10, "b": 10, "c": 10}


async def test_ip_hash_keeps_each_client_on_one_member() -> None:
    async with pool_rig("ip_hash") as rig:
        for n in range(REQUESTS):  # ten clients, three requests each
            assert await rig.get("/status/200", client(n % 10)) == 200
        members = rig.members()
        per_client = {n: {members[i] for i in range(n, REQUESTS, 10)} for n in range(10)}
        print("ip_hash", dict(sorted(Counter(members).items())))
        assert all(len(seen) == 1 for seen in per_client.values()), per_client
        assert len(set(members)) >= 2


async def test_hash_on_a_query_parameter_keeps_each_key_on_one_member() -> None:
    async with pool_rig("hash", hash_key="query:sessionId") as rig:
        for n in range(REQUESTS):
            assert await rig.get(f"/status/200?sessionId=s{n % 10}", []) == 200
        members = rig.members()
        print("hash", dict(sorted(Counter(members).items())))
        assert all(len({members[i] for i in range(n, REQUESTS, 10)}) == 1 for n in range(10))
        assert len(set(members)) >= 2


async def test_random_reaches_every_member() -> None:
    async with pool_rig("random") as rig:
        for n in range(REQUESTS):
            assert await rig.get("/status/200", client(n)) == 200
        counts = Counter(rig.members())
        print("random", dict(sorted(counts.items())))
        assert set(counts) == {"a", "b", "c"}


@pytest.mark.parametrize("balance", ["round_robin", "ip_hash", "least_conn", "random"])
async def test_a_refusing_member_fails_over_once_then_is_skipped(balance: str) -> None:
    async with pool_rig(balance, refusing="c") as rig:
        statuses = [await rig.get("/status/200", client(n)) for n in range(REQUESTS)]
        assert statuses == [200] * REQUESTS  # every request moved on to a live member
        counts = Counter(rig.members())
        print(balance, "with c refusing:", dict(sorted(counts.items())), "failed:", rig.failed())
        assert set(counts) <= {"a", "b"} and sum(counts.values()) == REQUESTS
        # max_fails=1, fail_timeout=10s: c is tried once, then skipped for 10 s
        assert rig.failed() == ["c"]


async def test_every_member_refusing_is_a_502() -> None:
    async with pool_rig("round_robin", refusing="c") as rig:
        rig.proxy.balancer.upstreams["a"] = rig.proxy.balancer.upstreams["c"]
        rig.proxy.balancer.upstreams["b"] = rig.proxy.balancer.upstreams["c"]
        assert await rig.get("/status/200", []) == 502
        assert sorted(rig.failed()) == ["a", "b", "c"]
        # every member failed: "no live upstreams" at once, and they are live again after
        assert await rig.get("/status/200", []) == 502
        assert sorted(rig.failed()) == ["a", "b", "c"]
        ended = await rig.proxy.journal.wait_for("ended", 2)
        assert "no live upstreams" in ended[1]["detail"]
        assert await rig.get("/status/200", []) == 502  # revived: all three tried again
        assert sorted(rig.failed()) == ["a", "a", "b", "b", "c", "c"]


async def test_restart_posts_to_the_members_restart_url_before_contacting_it() -> None:
    posted: list[str] = []

    async def admin(stream: trio.SocketStream) -> None:
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while (event := conn.next_event()) is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(4096))
            assert isinstance(event, h11.Request)
            posted.append(f"{event.method.decode()} {event.target.decode()}")
            await stream.send_all(
                conn.send(h11.Response(status_code=204, headers=[])) + conn.send(h11.EndOfMessage())
            )

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            serve_admin = partial(trio.serve_tcp, admin, 0, host="127.0.0.1")
            (admin_listener,) = await nursery.start(serve_admin)
            admin_port = admin_listener.socket.getsockname()[1]
            port = await nursery.start(origin.serve, "127.0.0.1", 0, origin.OriginSettings())
            member = MemberSpec(
                "a",
                f"http://127.0.0.1:{port}",
                restart_url=f"http://127.0.0.1:{admin_port}/admin/restart?all=1",
            )
            scenario = parse_scenario(
                '[[faults]]\ntype = "restart"\nwindow = { from = "0s" }\n', file="r.toml"
            )
            settings = ProxySettings(Upstream.parse(member.url), upstreams=(member,))
            proxy = Proxy(settings, scenario, Journal(keep=True), seed=3)
            listener = await listen("127.0.0.1", 0)
            await nursery.start(serve_proxy, proxy, listener)
            rig = Rig(proxy, listener.socket.getsockname()[1])
            assert await rig.get("/status/200", []) == 200
            assert await rig.get("/status/200", []) == 200  # once per restart
            assert posted == ["POST /admin/restart?all=1"]
            (record,) = [r for r in proxy.journal.records if r["kind"] == "member-restarted"]
            assert record["member"] == "a" and record["detail"].endswith(": 204")
            nursery.cancel_scope.cancel()
