"""`sseproxy ctl` through click's CliRunner against a live control API in a background
trio thread, and once against `sseproxy run --control` in a subprocess."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from sseproxy.cli import main
from sseproxy.ctl import ctl, parse_assignment, parse_value
from sseproxy.errors import ScenarioError
from sseproxy.scenario import load_scenario
from sseproxy.testing import BackgroundTrio
from tests.test_control import LATENCY, TOKEN, Stack, control_stack


@dataclass
class Live:
    url: str
    stack: Stack
    loop: BackgroundTrio

    def ctl(
        self, *args: str, token: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        options = ["--control", self.url] + (["--token", token] if token else [])
        return CliRunner().invoke(main, ["ctl", *options, *args], env=env or {})

    def records(self, kind: str) -> list[dict[str, Any]]:
        return self.loop.run_sync(self.stack.journal.of_kind, kind)

    def names(self) -> list[str]:
        return self.loop.run_sync(lambda: [f.name for f in self.stack.proxy.scenario.faults])


def _live(scenario: str = LATENCY, token: str | None = None) -> Iterator[Live]:
    with BackgroundTrio() as loop:
        stack = loop.enter(control_stack(scenario, token=token))
        yield Live(stack.control_url, stack, loop)


@pytest.fixture
def live() -> Iterator[Live]:
    yield from _live()


@pytest.fixture
def guarded() -> Iterator[Live]:
    yield from _live(token=TOKEN)


def open_stream(live: Live) -> socket.socket:
    """An SSE stream through the proxy, read until its first event."""
    sock = socket.create_connection(("127.0.0.1", live.stack.proxy_port), timeout=5)
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
    data = b""
    while b"id: 1\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return sock


def one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: ")
    return line.removeprefix("Error: ")


def test_status(live: Live) -> None:
    result = live.ctl("status")
    assert result.exit_code == 0, result.output
    assert f"http://127.0.0.1:{live.stack.proxy_port} -> http://127.0.0.1:" in result.output
    assert "scenario   slow (seed 7)" in result.output
    assert "faults     latency" in result.output
    assert "open       0 connections (0 since start)" in result.output
    as_json = json.loads(live.ctl("status", "--json").output)
    assert as_json["scenario"] == "slow" and as_json["connections"]["open"] == 0
    before = json.loads(live.ctl("--json", "status").output)  # either place
    assert before.keys() == as_json.keys() and before["scenario"] == "slow"
    assert json.loads(live.ctl("--json", "faults").output) == json.loads(
        live.ctl("faults", "--json").output
    )


def test_faults_add_list_change_and_remove(live: Live) -> None:
    listed = live.ctl("faults")
    assert listed.exit_code == 0
    assert listed.output.splitlines() == [
        "NAME     TYPE     SETTINGS",
        "latency  latency  delay=10ms",
    ]
    assert live.ctl("faults", "list").output == listed.output

    added = live.ctl(
        "faults",
        "add",
        "--type",
        "idle-timeout",
        "--name",
        "idle",
        "--set",
        "timeout=20s",
        "--set",
        "probability=0.5",
        "--set",
        "match.path=/events*",
    )
    assert added.exit_code == 0, added.output
    assert added.output.strip() == (
        "added idle (idle-timeout): timeout=20s, probability=0.5, match={path=/events*}"
    )
    assert live.names() == ["latency", "idle"]

    changed = live.ctl("faults", "set", "idle", "--set", "timeout=5s", "--unset", "match")
    assert changed.output.strip() == "changed idle (idle-timeout): timeout=5s, probability=0.5"
    as_json = json.loads(live.ctl("faults", "--json").output)
    assert as_json["faults"][1] == {
        "type": "idle-timeout",
        "name": "idle",
        "timeout": "5s",
        "probability": 0.5,
    }

    assert live.ctl("faults", "rm", "latency").output.strip() == "removed latency"
    assert live.names() == ["idle"]
    assert live.ctl("faults", "rm", "--all").output.strip() == "removed idle"
    assert live.ctl("faults").output.strip() == "no faults (scenario slow)"


def test_refused_changes_exit_1_with_one_line(live: Live) -> None:
    clash = live.ctl("faults", "add", "--type", "latency")
    assert "a fault named 'latency' exists" in one_line_error(clash, 1)
    invalid = live.ctl("faults", "add", "--type", "latency", "--name", "x", "--set", "delay=soon")
    assert one_line_error(invalid, 1).startswith("fault #2 (x), field 'delay': ")
    unknown = live.ctl("faults", "add", "--type", "nope")
    assert "unknown fault type 'nope'" in one_line_error(unknown, 1)
    assert "no fault named 'ghost'" in one_line_error(live.ctl("faults", "rm", "ghost"), 1)
    assert one_line_error(live.ctl("faults", "set", "ghost", "--set", "a=1"), 1)
    assert "c9" in one_line_error(live.ctl("kill", "c9"), 1)
    assert live.names() == ["latency"]


def test_usage_errors_exit_2(live: Live) -> None:
    assert live.ctl("faults", "set", "latency").exit_code == 2
    assert live.ctl("faults", "rm").exit_code == 2
    assert live.ctl("kill").exit_code == 2
    assert live.ctl("kill", "c1", "--all").exit_code == 2
    assert live.ctl("faults", "add", "--type", "latency", "--set", "novalue").exit_code == 2
    missing = live.ctl("scenario", "load", "no-such-file.toml")
    assert "no such file, and no preset" in one_line_error(missing, 2)


def test_an_unreachable_control_api_exits_2() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = CliRunner().invoke(main, ["ctl", "--control", f"127.0.0.1:{port}", "status"], env={})
    assert "cannot reach the control API" in one_line_error(result, 2)
    bad_url = CliRunner().invoke(main, ["ctl", "--control", "ftp://x", "status"], env={})
    assert "expected a URL like" in one_line_error(bad_url, 2)


def test_connections_and_kill(live: Live) -> None:
    assert live.ctl("connections").output.strip() == "no open connections"
    first, second = open_stream(live), open_stream(live)
    try:
        listed = live.ctl("connections")
        lines = listed.output.splitlines()
        assert lines[0].split() == [
            "ID",
            "CLIENT",
            "AGE",
            "REQUEST",
            "DOWN",
            "EVENTS",
            "LAST-ID",
            "FAULTS",
        ]
        assert [line.split()[0] for line in lines[1:]] == ["c1", "c2"]
        assert "GET /events" in lines[1] and "latency" in lines[1]
        as_json = json.loads(live.ctl("connections", "--json").output)
        assert [c["id"] for c in as_json["connections"]] == ["c1", "c2"]

        assert live.ctl("kill", "c1").output.strip() == "closed c1"
        assert first.recv(65536) is not None  # the rest, then EOF
        reset = live.ctl("kill", "--all", "--reset", "--json")
        assert json.loads(reset.output) == {"killed": ["c2"], "how": "reset"}
        assert live.ctl("kill", "--all").output.strip() == "no open connections"
        reasons = [(r["conn"], r["reason"]) for r in live.records("closed")]
        assert reasons == [("c1", "killed"), ("c2", "killed")]
    finally:
        first.close()
        second.close()


def test_scenario_show_and_load(live: Live, tmp_path: Path) -> None:
    shown = live.ctl("scenario", "show")
    assert shown.exit_code == 0
    assert tomllib.loads(shown.output)["faults"] == [{"type": "latency", "delay": "10ms"}]
    assert json.loads(live.ctl("scenario", "show", "--json").output)["name"] == "slow"

    good = tmp_path / "two.toml"
    good.write_text('[[faults]]\ntype = "stall"\n\n[[faults]]\ntype = "reset"\nevents = 9\n')
    loaded = live.ctl("scenario", "load", str(good))
    assert loaded.output.strip() == "loaded scenario two: 2 faults (stall, reset)"
    assert live.names() == ["stall", "reset"]
    one = tmp_path / "one.toml"
    one.write_text('[[faults]]\ntype = "stall"\n')
    assert (
        live.ctl("scenario", "load", str(one)).output.strip()
        == "loaded scenario one: 1 fault (stall)"
    )
    assert live.ctl("scenario", "load", str(good)).exit_code == 0
    preset = live.ctl("scenario", "load", "nginx-default")  # resolved as `run --scenario` does
    try:
        expected = f"loaded scenario {load_scenario('nginx-default').name}: "
    except ScenarioError as error:
        assert one_line_error(preset, 1) == str(error)
    else:
        assert preset.output.startswith(expected), preset.output

    before = live.names()
    bad = tmp_path / "bad.toml"
    bad.write_text('[[faults]]\ntype = "latency"\nprobability = 1.5\n')
    refused = live.ctl("scenario", "load", str(bad))
    validated = CliRunner().invoke(main, ["scenarios", "validate", str(bad)])
    assert one_line_error(refused, 1) == validated.output.strip().removeprefix("invalid").strip()
    assert live.names() == before  # kept


def test_metrics_and_journal(live: Live) -> None:
    sock = open_stream(live)
    sock.close()
    live.loop.run(live.stack.journal.wait_for, "closed")
    metrics = live.ctl("metrics")
    assert "sseproxy_connections_total 1" in metrics.output.splitlines()
    follow = live.ctl("journal", "--from-start", "--count", "2", "--json")
    assert follow.exit_code == 0, follow.output
    records = [json.loads(line) for line in follow.output.splitlines()]
    assert [r["kind"] for r in records] == ["opened", "request"]
    human = live.ctl("journal", "--from-start", "--kind", "closed", "--count", "1")
    assert re.match(r"^ +\d+\.\d{3}  c1 +closed +by=client reason=client-closed ", human.output)


def test_a_token_is_sent_and_required(guarded: Live) -> None:
    refused = guarded.ctl("status")
    message = one_line_error(refused, 2)
    assert "token" in message and "$SSEPROXY_CONTROL_TOKEN" in message
    assert one_line_error(guarded.ctl("status", token="wrong"), 2)
    assert guarded.ctl("status", token=TOKEN).exit_code == 0
    from_env = guarded.ctl("faults", env={"SSEPROXY_CONTROL_TOKEN": TOKEN})
    assert from_env.exit_code == 0 and "latency" in from_env.output


def test_set_values_are_read_as_toml() -> None:
    assert parse_value("200ms") == "200ms"
    assert parse_value("/events*") == "/events*"
    assert parse_value("0.5") == 0.5
    assert parse_value("3") == 3
    assert parse_value("true") is True
    assert parse_value('"3"') == "3"
    assert parse_value('["a", "b"]') == ["a", "b"]
    assert parse_value('{ path = "/x" }') == {"path": "/x"}
    assert parse_value("1979-05-27") == "1979-05-27"  # a TOML date stays text
    assert parse_value("inf") == "inf"
    table: dict[str, Any] = {}
    parse_assignment("match.headers.Accept=text/*", table)
    parse_assignment("delay=1s", table)
    parse_assignment("jitter", table, unset=True)
    assert table == {"match": {"headers": {"Accept": "text/*"}}, "delay": "1s", "jitter": None}
    with pytest.raises(click.BadParameter):
        parse_assignment("=1", {})


def _commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name)


@pytest.mark.parametrize("path", list(_commands(ctl)), ids=lambda p: " ".join(p) or "ctl")
def test_every_command_has_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, ["ctl", *path, "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output
    assert " ".join(("sseproxy ctl", *path)) in result.output


def test_run_with_control_in_a_subprocess() -> None:
    command = [sys.executable, "-m", "sseproxy", "run", "--listen", "127.0.0.1:0"]
    command += ["--control", "127.0.0.1:0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("SSEPROXY_CONTROL_TOKEN", None)
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        try:
            assert process.stdout is not None
            lines: list[str] = []
            while not lines or lines[-1] != "stop with Ctrl-C":
                line = process.stdout.readline()
                assert line, lines
                lines.append(line.rstrip("\n"))
            found = re.search(r"^control API on (http://127\.0\.0\.1:\d+); try: ", lines[-2])
            assert found, lines
            url = found.group(1)
            assert f"sseproxy ctl --control {url} status" in lines[-2]
            status = CliRunner().invoke(main, ["ctl", "--control", url, "status", "--json"], env={})
            assert status.exit_code == 0, status.output
            answer = json.loads(status.output)
            assert answer["live"] is True and answer["scenario"] == "none"
        finally:
            process.send_signal(signal.SIGINT)
            assert process.wait(timeout=10) == 0
