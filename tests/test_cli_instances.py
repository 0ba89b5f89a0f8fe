"""`sseproxy run --instances N`: the built-in server's instances as the pool's members,
and a `restart` fault that makes one forget its sessions with no more configuration
(its `restart_url` is the instance's `POST /_restart`)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from sseproxy.cli import main
from tests.subprocesses import Lines

TO_C = {"x-forwarded-for": "10.0.2.1"}
"""ip_hash sends 10.0.2.x to member c."""
JSON = {"accept": "application/json, text/event-stream"}
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t"}},
}
WHO = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "instance"}}


def test_run_instances_restarts_a_member_through_its_restart_endpoint(tmp_path: Path) -> None:
    journal = tmp_path / "run.jsonl"
    command = [
        *(sys.executable, "-m", "sseproxy", "run", "--listen", "127.0.0.1:0"),
        *("--scenario", "mcp-ip-hash-failover", "--instances", "3", "--time-scale", "0.05"),
        *("--client-ip-from", "X-Forwarded-For", "--journal", str(journal), "--quiet"),
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            lines = Lines(proc.stdout)
            found = lines.wait_for(r"on (http://127\.0\.0\.1:\d+) -> ip_hash pool a=http://\S+")
            url = found[1]
            lines.wait_for(r"an MCP client on .*/sse or .*/mcp")
            with httpx.Client(base_url=url, timeout=10, headers=TO_C) as http:
                opened = http.post("/mcp", json=INITIALIZE, headers=JSON)
                session = {"mcp-session-id": opened.headers["mcp-session-id"], **JSON}
                assert '"c"' in http.post("/mcp", json=WHO, headers=session).text
                # c's notification stream: the restart (at 20 s * 0.05) cuts it mid-body
                stream = {**session, "accept": "text/event-stream"}
                with (
                    pytest.raises(httpx.RemoteProtocolError),
                    http.stream("GET", "/mcp", headers=stream) as events,
                ):
                    for _ in events.iter_bytes():
                        pass
                lost = http.post("/mcp", json=WHO, headers=session)
                assert (lost.status_code, lost.json()["error"]["code"]) == (404, -32600)
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=10)
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    [started] = [r for r in records if r["kind"] == "started"]
    assert sorted(started["upstreams"]) == ["a", "b", "c"]
    [restarted] = [r for r in records if r["kind"] == "member-restarted"]
    port = started["upstreams"]["c"].rsplit(":", 1)[1]
    assert restarted["detail"] == f"POST http://127.0.0.1:{port}/_restart: 200"


def test_run_instances_and_upstream_are_exclusive() -> None:
    got = CliRunner().invoke(main, ["run", "--instances", "2", "--upstream", ":9000"])
    assert got.exit_code == 2
    assert "--instances starts the members itself; drop --upstream" in got.output


def test_run_instances_must_start_the_member_a_fault_matches() -> None:
    args = ["run", "--scenario", "mcp-ip-hash-failover", "--instances", "2"]
    got = CliRunner().invoke(main, args)
    assert got.exit_code == 2
    assert "fault 'instance-restart' matches upstream 'c', which --instances 2 does not" in (
        got.output
    )
