"""The mcp-* presets in virtual time: the built-in server's instances (`Instance`, on
memory streams) as pool members a, b, c, a Streamable HTTP client speaking the wire, and
`report` naming what the journal shows. The real `mcp` SDK is in tests/test_mcp_pool.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace

import trio
import trio.testing

from sseproxy.balance import Ring
from sseproxy.journal import Journal
from sseproxy.origin import OriginSettings
from sseproxy.origin_mcp import Instance
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.report import analyse, render_html, render_json, render_text
from sseproxy.report.reader import build
from sseproxy.report.sessions import BORN_ELSEWHERE, MOVED, RESTARTED
from sseproxy.scenario import load_scenario
from tests.harness import Client, Received

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t"}},
}
CALL = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "instance"}}
ACCEPT = ("accept", "application/json, text/event-stream")


@dataclass
class Rig:
    proxy: Proxy
    nursery: trio.Nursery
    instances: dict[str, Instance]

    def client(self) -> Client:
        client_end, proxy_end = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self.proxy.handle, proxy_end, "127.0.0.1:50000")
        return Client(client_end)

    def members(self) -> list[str]:
        return [str(r.get("member")) for r in self.proxy.journal.of_kind("upstream")]

    def report(self) -> str:
        """The text report (and the HTML and JSON ones are made, and say it too)."""
        records = [json.dumps(record) for record in self.proxy.journal.records]
        report = analyse(build([("mem", records)]))
        for cause in {row.cause for row in report.sessions_lost}:
            assert cause in render_html(report)
            assert json.dumps(cause) in render_json(report)
        return render_text(report)


@asynccontextmanager
async def preset_pool(name: str) -> AsyncIterator[Rig]:
    """The preset's pool on built-in instances named a, b, c; a restart fault restarts the
    instance itself (`on_restart`) instead of POSTing to the preset's `restart_url`."""
    scenario = load_scenario(name)
    instances = {m.name: Instance(m.name, OriginSettings(heartbeat=0)) for m in scenario.upstreams}
    with trio.fail_after(10_000):
        async with trio.open_nursery() as nursery:

            async def connect(member: str) -> trio.abc.Stream:
                proxy_end, instance_end = trio.testing.memory_stream_pair()
                nursery.start_soon(instances[member].handle_connection, instance_end)
                return proxy_end

            settings = ProxySettings(Upstream("127.0.0.1", 9001))
            proxy = Proxy(settings, scenario, Journal(keep=True), member_connector=connect)
            members = proxy.balancer.members
            proxy.balancer.members = {n: replace(m, restart_url=None) for n, m in members.items()}
            proxy.on_restart = lambda member: instances[member].restart() and None
            yield Rig(proxy, nursery, instances)
            nursery.cancel_scope.cancel()


async def post(client: Client, message: object, session: str | None = None) -> Received:
    headers = [ACCEPT, ("content-type", "application/json")]
    if session is not None:
        headers.append(("mcp-session-id", session))
    await client.send("POST", "/mcp", headers, json.dumps(message).encode())
    return await client.response()


def error_of(got: Received) -> tuple[int, int, str]:
    error = json.loads(got.body)["error"]
    return got.status, error["code"], error["message"]


async def test_ip_hash_failover_streamable_session_moves_then_its_member_forgot_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with preset_pool("mcp-ip-hash-failover") as rig:
        client = rig.client()  # 127.0.0.1: ip_hash sends it to c
        opened = await post(client, INITIALIZE)
        session = opened.headers[b"mcp-session-id"].decode()
        assert json.loads((await post(client, CALL, session)).body)["result"]
        await trio.sleep(20.5 - trio.current_time())  # c restarted at 20 s, down for 2 s
        # c refuses: failed (max_fails=1), re-hashed to b, which never knew the session
        assert error_of(await post(client, CALL, session)) == (404, -32600, "Session not found")
        assert rig.instances["c"].restarts == 1
        await trio.sleep(25.4 - trio.current_time())  # c failed at 20.5: skipped for 5 s
        assert (await post(client, CALL, session)).status == 404
        await trio.sleep(25.6 - trio.current_time())  # back to c, restarted: forgot it
        assert error_of(await post(client, CALL, session)) == (404, -32600, "Session not found")
        assert rig.members() == ["c", "c", "b", "b", "c"]
        text = " ".join(rig.report().split())
        assert f"{MOVED} 1 2 c -> b (2)" in text
        assert f"{RESTARTED} 1 1 c (1)" in text


async def test_hash_by_session_the_session_is_born_where_the_empty_key_hashes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ring = Ring(["a", "b", "c"], [1, 1, 1])
    async with preset_pool("mcp-hash-by-session") as rig:
        client = rig.client()
        for _ in range(12):  # an id that hashes to b too works (until b restarts)
            opened = await post(client, INITIALIZE)  # no session id yet: "" hashes to b
            session = opened.headers[b"mcp-session-id"].decode()
            if "abc"[ring.walk(session)[0]] != "b":
                break
        else:
            raise AssertionError("no session id hashed away from b")
        assert error_of(await post(client, CALL, session)) == (404, -32600, "Session not found")
        assert set(rig.members()[:-1]) == {"b"} and rig.members()[-1] != "b"
        assert f"{BORN_ELSEWHERE}" in " ".join(rig.report().split())


def test_scenarios_show_and_validate_take_the_mcp_presets() -> None:
    from click.testing import CliRunner

    from sseproxy.cli import main

    names = ["mcp-ip-hash-failover", "mcp-hash-by-session"]
    validated = CliRunner().invoke(main, ["scenarios", "validate", *names])
    assert validated.exit_code == 0, validated.output
    for name in names:
        shown = CliRunner().invoke(main, ["scenarios", "show", name])
        assert shown.exit_code == 0 and 'type = "restart"' in shown.output
        assert "[[upstreams]]" in shown.output and "fail_timeout" in shown.output
