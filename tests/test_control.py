"""The control API over real loopback sockets: origin, proxy and control server in the
test's nursery, requests from httpx (and raw sockets where a reset must be seen)."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import h11
import httpx
import pytest
import trio
from click.testing import CliRunner

from sseproxy import origin
from sseproxy.cli import main
from sseproxy.control import check_control_address, is_loopback, merge_patch, serve_control
from sseproxy.errors import ConfigError
from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.scenario import parse_scenario
from sseproxy.server import listen, serve_proxy
from tests.test_scenario import TEN_MISTAKES

FAST = origin.OriginSettings(interval=0.05, heartbeat=0)
TOKEN = "s3cret-token"
JSON = {"Content-Type": "application/json"}
LATENCY = '[scenario]\nname = "slow"\n\n[[faults]]\ntype = "latency"\ndelay = "10ms"\n'


@dataclass
class Stack:
    """Origin, proxy and control server on loopback; `api` talks to the control server."""

    proxy: Proxy
    proxy_port: int
    control_port: int
    api: httpx.AsyncClient
    nursery: trio.Nursery
    token: str | None = None
    streams: list[RawStream] = field(default_factory=list)

    async def open_stream(self, path: str = "/events") -> RawStream:
        """An SSE request through the proxy (closed when the stack closes)."""
        stream = await RawStream.open(self.proxy_port, path)
        self.streams.append(stream)
        return stream

    @property
    def journal(self) -> Journal:
        return self.proxy.journal

    @property
    def control_url(self) -> str:
        return f"http://127.0.0.1:{self.control_port}"


@asynccontextmanager
async def control_stack(
    scenario: str = "",
    *,
    token: str | None = None,
    heartbeat: float = 15.0,
    settings: origin.OriginSettings = FAST,
    mode: str = "http",
) -> AsyncIterator[Stack]:
    async with trio.open_nursery() as nursery:
        origin_port = await nursery.start(origin.serve, "127.0.0.1", 0, settings)
        proxy_settings = ProxySettings(
            Upstream("127.0.0.1", origin_port), "tcp" if mode == "tcp" else "http", live=True
        )
        proxy = Proxy(proxy_settings, parse_scenario(scenario), Journal(keep=True), seed=7)
        listener = await listen("127.0.0.1", 0)
        proxy_port = listener.socket.getsockname()[1]
        await nursery.start(serve_proxy, proxy, listener)
        control_listener = await listen("127.0.0.1", 0)
        control_port = control_listener.socket.getsockname()[1]
        serve = partial(serve_control, proxy, control_listener, token=token, heartbeat=heartbeat)
        await nursery.start(serve)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        base = f"http://127.0.0.1:{control_port}"
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=5) as api:
            stack = Stack(proxy, proxy_port, control_port, api, nursery, token)
            try:
                yield stack
            finally:
                for stream in stack.streams:
                    await stream.aclose()
        nursery.cancel_scope.cancel()


class RawStream:
    """An SSE request through the proxy on a plain socket: bytes as they come, and how
    the connection ended ('eof' or 'reset')."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.data = b""
        self.arrivals: list[tuple[float, bytes]] = []
        self.ending: str | None = None

    @classmethod
    async def open(cls, port: int, path: str = "/events") -> RawStream:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        return cls(stream)

    async def _receive(self) -> bool:
        try:
            chunk = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:
            self.ending = "reset"
            return False
        if not chunk:
            self.ending = "eof"
            return False
        self.data += chunk
        self.arrivals.append((trio.current_time(), chunk))
        return True

    async def read_until(self, needle: bytes, timeout: float = 5.0) -> None:
        with trio.fail_after(timeout):
            while needle not in self.data:
                assert await self._receive(), f"ended ({self.ending}) before {needle!r}"

    async def read_for(self, seconds: float) -> None:
        with trio.move_on_after(seconds):
            while await self._receive():
                pass

    async def read_to_end(self, timeout: float = 5.0) -> str:
        with trio.fail_after(timeout):
            while await self._receive():
                pass
        assert self.ending is not None
        return self.ending

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


async def sse_records(lines: AsyncIterator[str], count: int) -> list[tuple[int, dict[str, Any]]]:
    """The next `count` (id, record) pairs of a /journal stream."""
    found: list[tuple[int, dict[str, Any]]] = []
    event_id: int | None = None
    async for line in lines:
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            assert event_id is not None
            found.append((event_id, json.loads(line[6:])))
            if len(found) == count:
                break
    return found


async def wait_closed(stack: Stack, count: int = 1) -> list[dict[str, Any]]:
    with trio.fail_after(5):
        return await stack.journal.wait_for("closed", count)


# -- binding and the token ----------------------------------------------------------------


def test_loopback_addresses() -> None:
    for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "::ffff:127.0.0.1"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "example.com", ""):
        assert not is_loopback(host), host


def test_a_non_loopback_control_address_needs_a_token() -> None:
    check_control_address("127.0.0.1", None)
    check_control_address("0.0.0.0", TOKEN)
    for host in ("0.0.0.0", "192.168.1.10", "::"):
        with pytest.raises(ConfigError, match="--control-token"):
            check_control_address(host, None)
    with pytest.raises(ConfigError, match="empty"):
        check_control_address("0.0.0.0", "  ")


def test_run_refuses_a_non_loopback_control_without_a_token() -> None:
    result = CliRunner().invoke(main, ["run", "--control", "0.0.0.0:8474"], env={})
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert "control API on 0.0.0.0" in line and "--control-token" in line
    result = CliRunner().invoke(main, ["run", "--control-token", TOKEN])
    assert result.exit_code == 2
    assert "--control-token needs --control" in result.output


async def test_a_token_is_required_on_every_request() -> None:
    async with control_stack(token=TOKEN) as stack:
        plain = httpx.AsyncClient(base_url=stack.control_url, timeout=5)
        async with plain:
            missing = await plain.get("/status")
            assert missing.status_code == 401
            assert missing.headers["www-authenticate"].startswith("Bearer")
            assert "token" in missing.json()["error"]
            wrong = await plain.get("/faults", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            refused = await plain.delete("/connections", headers={"X-Sseproxy-Token": "x"})
            assert refused.status_code == 401
            assert (await plain.get("/nowhere")).status_code == 401  # before routing
            ok = await plain.get("/status", headers={"X-Sseproxy-Token": TOKEN})
            assert ok.status_code == 200
        stack.token = None  # the query parameter only (EventSource cannot send headers)
        async with journal_lines(stack, f"/journal?token={TOKEN}") as (journal, _):
            assert journal.status == 200
        async with journal_lines(stack, "/journal?token=nope") as (journal, _):
            assert journal.status == 401
        assert (await stack.api.get("/status")).status_code == 200  # Bearer


async def test_without_a_token_only_localhost_and_ip_hosts_are_served() -> None:
    async with control_stack() as stack:
        rebound = await stack.api.get("/status", headers={"Host": "evil.example:8474"})
        assert rebound.status_code == 403
        assert "evil.example" in rebound.json()["error"]
        for host in ("localhost:8474", "127.0.0.1", "[::1]:8474"):
            assert (await stack.api.get("/status", headers={"Host": host})).status_code == 200


# -- plumbing -----------------------------------------------------------------------------


async def test_index_status_and_http_errors() -> None:
    async with control_stack(LATENCY) as stack:
        index = (await stack.api.get("/")).json()
        assert "PATCH /faults/{name}" in index["endpoints"]
        status = (await stack.api.get("/status")).json()
        assert status["scenario"] == "slow"
        assert status["faults"] == ["latency"]
        assert status["seed"] == 7
        assert status["live"] is True
        assert status["connections"] == {"open": 0, "total": 0}
        assert status["listen"] == f"127.0.0.1:{stack.proxy_port}"

        missing = await stack.api.get("/nothing/here")
        assert missing.status_code == 404
        wrong = await stack.api.post("/status")
        assert wrong.status_code == 405
        assert wrong.headers["allow"] == "GET"
        bad = await stack.api.post("/faults", content=b'{"type": ', headers=JSON)
        assert bad.status_code == 400
        message = bad.json()["error"]
        assert message.startswith("the body is not valid JSON") and "\n" not in message
        not_json = await stack.api.post("/faults", content=b'{"type": "reset"}')
        assert not_json.status_code == 415
        array = await stack.api.post("/faults", json=["reset"])
        assert array.status_code == 400
        assert "JSON object" in array.json()["error"]
        big = await stack.api.post("/faults", content=b" " * (1024 * 1024 + 1), headers=JSON)
        assert big.status_code == 413


# -- scenario -----------------------------------------------------------------------------


async def test_get_scenario_as_json_and_toml() -> None:
    async with control_stack(LATENCY) as stack:
        answer = (await stack.api.get("/scenario")).json()
        assert answer["name"] == "slow"
        assert answer["faults"] == [{"type": "latency", "name": "latency", "delay": "10ms"}]
        assert answer["run_seed"] == 7
        assert parse_scenario(answer["toml"]) == parse_scenario(LATENCY)
        toml = await stack.api.get("/scenario", params={"format": "toml"})
        assert toml.headers["content-type"] == "application/toml"
        assert toml.text == answer["toml"]


async def test_put_scenario_replaces_it() -> None:
    new = '[scenario]\nname = "two"\n\n[[faults]]\ntype = "reset"\nevents = 3\n'
    async with control_stack(LATENCY) as stack:
        answer = await stack.api.put("/scenario", content=new.encode())
        assert answer.status_code == 200
        assert answer.json()["name"] == "two"
        assert stack.proxy.scenario == parse_scenario(new)
        (record,) = stack.journal.of_kind("scenario")
        assert (record["change"], record["faults"], record["scenario"]) == (
            "replace",
            ["reset"],
            "two",
        )
        as_json = {"scenario": {"name": "three"}, "faults": [{"type": "stall"}]}
        answer = await stack.api.put("/scenario", json=as_json)
        assert answer.status_code == 200
        assert [f.name for f in stack.proxy.scenario.faults] == ["stall"]


async def test_a_bad_scenario_is_refused_with_the_cli_message_and_the_old_one_stays(
    tmp_path: Path,
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nname = "bad"\n\n[[faults]]\ntype = "latency"\ndelay = "fast"\n')
    validated = CliRunner().invoke(main, ["scenarios", "validate", str(bad)])
    assert validated.exit_code == 1
    cli_message = validated.output.strip().removeprefix("invalid").strip()
    assert f"{bad}:6: fault #1 (latency), field 'delay'" in cli_message
    async with control_stack(LATENCY) as stack:
        before = stack.proxy.scenario
        refused = await stack.api.put(
            "/scenario", params={"file": str(bad)}, content=bad.read_bytes()
        )
        assert refused.status_code == 400
        assert refused.json()["error"] == cli_message
        not_toml = await stack.api.put("/scenario", content=b"[[faults]\n")
        assert not_toml.status_code == 400
        assert not_toml.json()["error"].startswith("<scenario>: not valid TOML")
        duplicate = '[[faults]]\ntype = "stall"\n\n[[faults]]\ntype = "stall"\n'
        clash = await stack.api.put("/scenario", content=duplicate.encode())
        assert clash.status_code == 400
        assert "the name 'stall' is taken" in clash.json()["error"]
        assert stack.proxy.scenario is before
        assert (await stack.api.get("/scenario")).json()["name"] == "slow"
        assert not stack.journal.of_kind("scenario")


async def test_a_refusal_carries_every_error_as_the_cli_words_them(tmp_path: Path) -> None:
    bad = tmp_path / "ten.toml"
    bad.write_text(TEN_MISTAKES)
    validated = CliRunner().invoke(main, ["scenarios", "validate", str(bad)])
    cli_lines = [line.removeprefix("invalid  ") for line in validated.output.splitlines()]
    assert len(cli_lines) == 10
    async with control_stack(LATENCY) as stack:
        refused = await stack.api.put(
            "/scenario", params={"file": str(bad)}, content=bad.read_bytes()
        )
        assert refused.status_code == 400
        answer = refused.json()
        assert answer["errors"] == cli_lines
        assert answer["error"] == f"{cli_lines[0]} (and 9 more errors)"
        fault = {"type": "idle-timeout", "timeout": "60", "acton": "close", "every": 0}
        refused = await stack.api.post("/faults", json=fault)
        assert refused.status_code == 400
        assert refused.json()["errors"] == [
            "fault #2 (idle-timeout), field 'timeout': '60' has no unit; write a duration "
            "with a unit, e.g. '250ms', '15s', '10m', '1h'",
            "fault #2 (idle-timeout), field 'acton': unknown field; did you mean 'action'? "
            "idle-timeout takes: action, after, counts, direction, every, first, lazy, match, "
            "name, probability, status, timeout, type, window",
            "fault #2 (idle-timeout), field 'every': 0 is below the minimum; allowed: a whole "
            "number (>= 1)",
        ]
        assert stack.proxy.scenario.name == "slow"


async def test_a_fault_name_with_a_control_character_never_reaches_the_metrics() -> None:
    async with control_stack(LATENCY) as stack:
        refused = await stack.api.post("/faults", json={"type": "stall", "name": "x\r\ny 1"})
        assert refused.status_code == 400
        assert refused.json()["error"] == (
            "fault #2 (stall), field 'name': 'x\\r\\ny 1' contains the control character "
            "'\\r'; names appear in the journal, /metrics and URLs, so use visible characters"
        )
        renamed = await stack.api.patch("/faults/latency", json={"name": "lag\r"})
        assert renamed.status_code == 400
        metrics = (await stack.api.get("/metrics")).text
        assert "\r" not in metrics and "x\ny" not in metrics


def deep_json(depth: int) -> bytes:
    return b'{"faults": [{"type": "latency", "match": ' + b"[" * depth + b"]" * depth + b"}]}"


async def test_deep_nesting_is_a_400_never_a_500() -> None:
    deep_toml = '[[faults]]\ntype = "latency"\nmatch = ' + "[" * 5000 + "]" * 5000 + "\n"
    async with control_stack(LATENCY) as stack:
        for depth in (50, 100_000):  # one json.loads reads, one it cannot
            refused = await stack.api.put("/scenario", content=deep_json(depth), headers=JSON)
            assert refused.status_code == 400, refused.text
            assert "nested" in refused.json()["error"]
            fault = deep_json(depth)[12:-2]  # the fault table alone
            refused = await stack.api.post("/faults", content=fault, headers=JSON)
            assert refused.status_code == 400, refused.text
            assert "nested" in refused.json()["error"]
            patch = b'{"match": {"headers": ' + b"[" * depth + b"]" * depth + b"}}"
            refused = await stack.api.patch("/faults/latency", content=patch, headers=JSON)
            assert refused.status_code == 400, refused.text
            assert "nested" in refused.json()["error"]
        refused = await stack.api.put("/scenario", content=deep_toml.encode())
        assert refused.status_code == 400
        assert refused.json()["error"] == (
            "<scenario>: cannot read: tables or arrays nested over 8 levels deep; "
            "a scenario needs 5 at most"
        )
        assert stack.proxy.scenario.name == "slow"
        assert not stack.journal.of_kind("control-error")


async def longest_pause_while(stack: Stack, request: Any) -> tuple[httpx.Response, float]:
    """The answer to `request` and the longest the event loop stood still meanwhile."""
    pauses: list[float] = []
    last = trio.current_time()

    async def tick() -> None:
        nonlocal last
        while True:
            await trio.sleep(0.005)
            pauses.append(trio.current_time() - last)
            last = trio.current_time()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(tick)
        answer = await request
        nursery.cancel_scope.cancel()
    return answer, max([*pauses, trio.current_time() - last])


async def test_thirteen_thousand_faults_are_refused_without_stalling_the_streams() -> None:
    toml = "".join(f'[[faults]]\ntype = "stall"\nname = "s{n}"\n\n' for n in range(13_000))
    as_json = json.dumps({"faults": [{"type": "stall", "name": f"s{n}"} for n in range(13_000)]})
    async with control_stack(LATENCY) as stack:
        for body, headers in ((toml.encode(), {}), (as_json.encode(), JSON)):
            refused, pause = await longest_pause_while(
                stack, stack.api.put("/scenario", content=body, headers=headers)
            )
            assert refused.status_code == 400
            assert "13000 faults, over the limit of 1000" in refused.json()["error"]
            assert pause < 0.5  # was 1.4 s and more
        assert stack.proxy.scenario.name == "slow"
        thousand = "".join(f'[[faults]]\ntype = "stall"\nname = "s{n}"\n\n' for n in range(1000))
        accepted = await stack.api.put("/scenario", content=thousand.encode())
        assert accepted.status_code == 200
        assert len(stack.proxy.scenario.faults) == 1000


async def test_a_body_over_one_mib_is_413() -> None:
    async with control_stack(LATENCY) as stack:
        big = "# " + "x" * (1024 * 1024) + "\n"
        refused = await stack.api.put("/scenario", content=big.encode())
        assert refused.status_code == 413
        assert refused.json() == {"error": "the body is over 1 MiB, the most this API reads"}


async def test_tcp_mode_refuses_faults_with_match() -> None:
    async with control_stack(mode="tcp") as stack:
        refused = await stack.api.post(
            "/faults", json={"type": "reset", "match": {"path": "/events"}}
        )
        assert refused.status_code == 400
        assert (
            refused.json()["error"] == "a fault with `match` needs HTTP requests; use --mode http"
        )
        assert stack.proxy.scenario.faults == ()


# -- faults -------------------------------------------------------------------------------


async def test_faults_list_add_get_change_and_remove() -> None:
    async with control_stack(LATENCY) as stack:
        api = stack.api
        listed = (await api.get("/faults")).json()
        assert listed == {
            "scenario": "slow",
            "faults": [{"type": "latency", "name": "latency", "delay": "10ms"}],
        }

        added = await api.post(
            "/faults",
            json={
                "type": "idle-timeout",
                "name": "idle",
                "timeout": "20s",
                "match": {"path": "/x*"},
            },
        )
        assert added.status_code == 201
        assert added.headers["location"] == "/faults/idle"
        assert added.json() == {
            "type": "idle-timeout",
            "name": "idle",
            "timeout": "20s",
            "match": {"path": "/x*"},
        }
        assert [f.name for f in stack.proxy.scenario.faults] == ["latency", "idle"]
        assert stack.proxy.scenario.faults[1].settings["timeout"] == 20.0

        clash = await api.post("/faults", json={"type": "stall", "name": "idle"})
        assert clash.status_code == 409
        default_name_clash = await api.post("/faults", json={"type": "latency"})
        assert default_name_clash.status_code == 409
        invalid = await api.post("/faults", json={"type": "latency", "delay": "soon"})
        assert invalid.status_code == 400
        assert invalid.json()["error"].startswith("fault #3 (latency), field 'delay': ")
        unknown = await api.post("/faults", json={"type": "earthquake"})
        assert unknown.status_code == 400
        assert "unknown fault type 'earthquake'" in unknown.json()["error"]
        extra = await api.post("/faults", json={"type": "stall", "colour": "red"})
        assert extra.status_code == 400
        assert "field 'colour'" in extra.json()["error"]

        assert (await api.get("/faults/idle")).json()["timeout"] == "20s"
        assert (await api.get("/faults/none")).status_code == 404

        changed = await api.patch("/faults/idle", json={"timeout": "5s", "match": None})
        assert changed.status_code == 200
        assert changed.json() == {"type": "idle-timeout", "name": "idle", "timeout": "5s"}
        assert stack.proxy.scenario.faults[1].settings["timeout"] == 5.0
        renamed = await api.patch("/faults/idle", json={"name": "cut-idle"})
        assert renamed.json()["name"] == "cut-idle"
        taken = await api.patch("/faults/cut-idle", json={"name": "latency"})
        assert taken.status_code == 409
        bad_value = await api.patch("/faults/latency", json={"jitter": -1})
        assert bad_value.status_code == 400
        assert (await api.patch("/faults/ghost", json={"delay": "1s"})).status_code == 404
        assert [f.name for f in stack.proxy.scenario.faults] == ["latency", "cut-idle"]

        assert (await api.delete("/faults/ghost")).status_code == 404
        removed = await api.delete("/faults/latency")
        assert removed.json() == {"removed": ["latency"]}
        assert [f.name for f in stack.proxy.scenario.faults] == ["cut-idle"]
        assert (await api.delete("/faults")).json() == {"removed": ["cut-idle"]}
        assert stack.proxy.scenario.faults == ()
        changes = [(r["change"], r.get("fault")) for r in stack.journal.of_kind("scenario")]
        assert changes == [
            ("add", "idle"),
            ("change", "idle"),
            ("change", "idle"),
            ("remove", "latency"),
            ("remove", None),
        ]


async def test_a_fault_name_with_a_slash_is_reachable_quoted() -> None:
    async with control_stack() as stack:
        added = await stack.api.post("/faults", json={"type": "stall", "name": "a/b c"})
        assert added.headers["location"] == "/faults/a%2Fb%20c"
        assert (await stack.api.get("/faults/a%2Fb%20c")).json()["name"] == "a/b c"
        assert (await stack.api.delete("/faults/a%2Fb%20c")).status_code == 200


def test_merge_patch() -> None:
    base = {"a": 1, "m": {"path": "/x", "method": "GET"}, "b": 2}
    patched = merge_patch(base, {"a": None, "m": {"method": None, "headers": {}}, "c": 3})
    assert patched == {"m": {"path": "/x", "headers": {}}, "b": 2, "c": 3}


# -- live: changes reach open streams ---------------------------------------------------


async def test_a_reset_added_live_resets_an_open_stream() -> None:
    async with control_stack() as stack:
        stream = await stack.open_stream()
        await stream.read_until(b"id: 3\n")
        added = await stack.api.post("/faults", json={"type": "reset", "name": "kick"})
        assert added.status_code == 201
        assert await stream.read_to_end() == "reset"
        (closed,) = await wait_closed(stack)
        assert (closed["by"], closed["reason"]) == ("proxy", "kick")
        fired = stack.journal.of_kind("fault")
        assert [(r["fault"], r["action"]) for r in fired] == [("kick", "reset")]


async def test_a_latency_added_live_delays_an_open_stream() -> None:
    async with control_stack() as stack:
        stream = await stack.open_stream()
        await stream.read_until(b"id: 3\n")
        await stream.read_for(0.2)
        gaps = [b[0] - a[0] for a, b in itertools.pairwise(stream.arrivals)]
        assert max(gaps[1:]) < 0.3  # every 50 ms before
        await stack.api.post("/faults", json={"type": "latency", "delay": "600ms"})
        (info,) = (await stack.api.get("/connections")).json()["connections"]
        assert info["faults"] == ["latency"]
        seen = len(stream.arrivals)
        await stream.read_for(1.0)
        after = [t for t, _ in stream.arrivals[seen - 1 :]]
        pause = max(b - a for a, b in itertools.pairwise(after))
        assert pause >= 0.45  # the first delayed piece
        assert len(after) > 3  # and then the flow resumes, each piece 600 ms late
        await stream.aclose()


async def test_removing_a_stall_live_releases_the_held_data() -> None:
    async with control_stack('[[faults]]\ntype = "stall"\n') as stack:
        stream = await stack.open_stream()
        await stream.read_for(0.4)
        assert stream.data == b""  # stalled: not even the head
        removed = await stack.api.delete("/faults/stall")
        assert removed.status_code == 200
        released_at = trio.current_time()
        await stream.read_until(b"id: 5\n", timeout=1.0)
        assert stream.data.startswith(b"HTTP/1.1 200 ")
        assert stream.arrivals[0][0] - released_at < 0.3  # at once, not one by one
        await stream.aclose()


# -- connections --------------------------------------------------------------------------


async def test_connections_are_listed_and_killed() -> None:
    async with control_stack() as stack:
        api = stack.api
        assert (await api.get("/connections")).json() == {"connections": []}
        first = await stack.open_stream("/events?hb=comment")
        await first.read_until(b"id: 2\n")
        second = await stack.open_stream()
        await second.read_until(b"id: 1\n")
        listed = (await api.get("/connections")).json()["connections"]
        assert [c["id"] for c in listed] == ["c1", "c2"]
        c1 = listed[0]
        assert (c1["method"], c1["path"], c1["client"], c1["mode"]) == (
            "GET",
            "/events?hb=comment",
            "127.0.0.1",
            "http",
        )
        assert c1["bytes_down"] > 0 and c1["events_down"] >= 2 and int(c1["last_id"]) >= 2
        assert c1["age"] > 0
        assert (await api.get("/connections/c2")).json()["id"] == "c2"
        assert (await api.get("/connections/c9")).status_code == 404

        assert (await api.delete("/connections/c1", params={"how": "gently"})).status_code == 400
        killed = await api.delete("/connections/c1")
        assert killed.json() == {"killed": ["c1"], "how": "close"}
        assert "c1" not in stack.proxy.live  # answered once it is closed
        assert await first.read_to_end() == "eof"
        (closed,) = stack.journal.of_kind("closed")
        assert (closed["conn"], closed["by"], closed["reason"]) == ("c1", "proxy", "killed")
        assert (await api.delete("/connections/c1")).status_code == 404

        reset = await api.delete("/connections/c2", params={"how": "reset"})
        assert reset.json() == {"killed": ["c2"], "how": "reset"}
        assert await second.read_to_end() == "reset"


async def test_all_connections_are_killed_at_once() -> None:
    async with control_stack() as stack:
        streams = [await stack.open_stream() for _ in range(3)]
        for stream in streams:
            await stream.read_until(b"id: 1\n")
        killed = await stack.api.delete("/connections", params={"how": "reset"})
        assert sorted(killed.json()["killed"]) == ["c1", "c2", "c3"]
        assert not stack.proxy.live
        assert [await s.read_to_end() for s in streams] == ["reset"] * 3
        assert (await stack.api.delete("/connections")).json()["killed"] == []


# -- the journal, live --------------------------------------------------------------------


class JournalReader:
    """GET /journal with h11 on a plain trio stream: its head, then its lines."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)
        self.buffer = ""
        self.status = 0
        self.headers: dict[str, str] = {}

    async def _next(self) -> object:
        while (event := self.conn.next_event()) is h11.NEED_DATA:
            self.conn.receive_data(await self.stream.receive_some(65536))
        return event

    async def start(self, target: str, headers: dict[str, str]) -> None:
        request = h11.Request(
            method="GET", target=target, headers=[("Host", "127.0.0.1"), *headers.items()]
        )
        await self.stream.send_all(self.conn.send(request) + self.conn.send(h11.EndOfMessage()))
        response = await self._next()
        assert isinstance(response, h11.Response)
        self.status = response.status_code
        self.headers = {k.decode(): v.decode() for k, v in response.headers}

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            while "\n" in self.buffer:
                line, self.buffer = self.buffer.split("\n", 1)
                yield line
            event = await self._next()
            if not isinstance(event, h11.Data):
                return
            self.buffer += bytes(event.data).decode()


@asynccontextmanager
async def journal_lines(
    stack: Stack, target: str = "/journal", headers: dict[str, str] | None = None
) -> AsyncIterator[tuple[JournalReader, AsyncIterator[str]]]:
    """The /journal response and its lines."""
    stream = await trio.open_tcp_stream("127.0.0.1", stack.control_port)
    async with stream:
        reader = JournalReader(stream)
        auth = {"Authorization": f"Bearer {stack.token}"} if stack.token else {}
        await reader.start(target, {**auth, **(headers or {})})
        lines = aiter(reader)
        try:
            yield reader, lines
        finally:
            await lines.aclose()  # type: ignore[attr-defined]


async def test_the_journal_streams_records_as_they_happen() -> None:
    async with control_stack() as stack, journal_lines(stack) as (journal, lines):
        assert journal.status == 200
        assert journal.headers["content-type"] == "text/event-stream"
        stream = await stack.open_stream()
        with trio.fail_after(5):
            records = await sse_records(lines, 4)
        assert [r["kind"] for _, r in records] == ["opened", "request", "upstream", "response"]
        ids = [i for i, _ in records]
        assert ids == list(range(ids[0], ids[0] + 4))
        assert records[1][1]["path"] == "/events"
        await stream.aclose()
        with trio.fail_after(5):
            rest = await sse_records(lines, 2)
        assert [r["kind"] for _, r in rest] == ["ended", "closed"]
        assert rest[-1][1] == stack.journal.of_kind("closed")[0]


async def test_the_journal_resumes_after_last_event_id_and_filters_kinds() -> None:
    async with control_stack() as stack:
        stream = await stack.open_stream()
        await stream.read_until(b"id: 1\n")
        await stream.aclose()
        await wait_closed(stack)
        kept = stack.journal.records
        resume = {"Last-Event-ID": "1"}
        async with journal_lines(stack, headers=resume) as (_, lines):
            with trio.fail_after(5):
                replayed = await sse_records(lines, len(kept) - 1)
        assert [r for _, r in replayed] == kept[1:]
        assert replayed[0][0] == 2
        async with journal_lines(stack, "/journal?after=0&kind=closed,opened") as (_, lines):
            with trio.fail_after(5):
                only = await sse_records(lines, 2)
        assert [r["kind"] for _, r in only] == ["opened", "closed"]
        async with journal_lines(stack, headers={"Last-Event-ID": "x"}) as (bad, _):
            assert bad.status == 400


async def test_the_journal_sends_a_heartbeat_when_quiet() -> None:
    seen: list[str] = []
    async with control_stack(heartbeat=0.2) as stack, journal_lines(stack) as (_, lines):
        with trio.fail_after(3):
            async for line in lines:
                seen.append(line)
                if line == ": heartbeat":
                    break
    assert seen[:3] == [": sseproxy journal", "retry: 1000", ""]
    assert seen[-1] == ": heartbeat"
