"""The probe on real sockets: what only sockets do (RST, refused), through `sseproxy run`
with an idle timeout, and through Debian's nginx with `proxy_read_timeout 2s`.

Streams are kept short: the origin's `retry=200` makes the clients reconnect after
0.2 s, so a few seconds show several drops per client.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sseproxy.probe.output import render_text
from sseproxy.probe.runner import Probe, ProbeSettings
from sseproxy.probe.summary import summarize
from sseproxy.probe.target import Target
from tests.peers.common import (
    HOST,
    RawServer,
    free_port,
    origin,
    read_request_head,
    scenario_toml,
    sse_head,
    sseproxy_run,
)
from tests.peers.nginx import NGINX, SSE_HTTP11, nginx

QUIET = "/events?interval=100&heartbeat=0&retry=200"  # event 1 at once, then silence


def _probe(port: int, target: str = QUIET, **kw: object) -> Probe:
    values: dict[str, object] = {"clients": 2, "duration": 1.0, **kw}
    return Probe(ProbeSettings(Target.parse(f"http://{HOST}:{port}{target}"), **values))  # type: ignore[arg-type]


def _reset_after_one_event(sock: socket.socket, stop: threading.Event) -> None:
    read_request_head(sock)
    sock.sendall(sse_head("X-Accel-Buffering: no\r\n") + b"retry: 5000\nid: 1\ndata: x\n\n")
    stop.wait(0.2)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


async def test_an_rst_and_a_refused_connect_are_told_apart() -> None:
    with RawServer(_reset_after_one_event) as server:
        reset = _probe(server.port, "/", clients=1, duration=0.6)
        await reset.run()
    attempt = reset.records[0].attempts[0]
    assert (attempt.kind, attempt.label) == ("rst", "RST (connection reset)")
    assert attempt.events == 1 and 0.15 < (attempt.duration or 0) < 0.55

    refused = _probe(free_port(), clients=1, duration=0.2)
    await refused.run()
    (attempt,) = refused.records[0].attempts
    assert attempt.kind == "refused" and "refused" in attempt.detail


def test_through_sseproxy_run_the_verdict_names_the_drops_and_their_cause(
    tmp_path: Path,
) -> None:
    scenario = scenario_toml("idle-1s", {"type": "idle-timeout", "timeout": "1s"})
    proxy_journal, probe_journal = tmp_path / "proxy.jsonl", tmp_path / "probe.jsonl"
    with (
        origin() as upstream,
        sseproxy_run(upstream, scenario, tmp_path, "--journal", str(proxy_journal)) as port,
    ):
        command = (
            *(sys.executable, "-m", "sseproxy", "probe", f"http://{HOST}:{port}{QUIET}"),
            *("--clients", "2", "--duration", "2.5s", "--max-drops", "0", "--json"),
            *("--journal", str(probe_journal)),
        )
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
    assert done.returncode == 1, done.stderr
    (fail,) = [line for line in done.stderr.splitlines() if line.startswith("FAIL")]
    # Cut 1 s after event 1, back 0.2 s later, cut again 1 s after the resumed event 2...
    found = re.fullmatch(
        r"FAIL --max-drops 0: (\d+) drops: \1 incomplete chunked body "
        r"\(each ~1\.0 s after the last byte: an idle timeout\)",
        fail,
    )
    assert found, fail
    drops = int(found.group(1))
    result = json.loads(done.stdout)
    assert drops >= 3 and result["totals"]["ids"]["lost"] == 0
    (group,) = result["drops"]
    assert "idle timeout of about 1 s" in group["pattern"]

    # Both journals: each connection once, with the proxy's cause and the client's view.
    both = (str(probe_journal), str(proxy_journal))
    merged = subprocess.run(
        (sys.executable, "-m", "sseproxy", "report", *both, "--json"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    report = json.loads(merged.stdout)
    attempts = result["totals"]["attempts"]
    assert report["totals"]["connections"] == attempts, report["totals"]
    rows = {row["cause"]: row["count"] for row in report["closes"]["rows"]}
    assert rows["proxy/idle-timeout"] == drops
    (note,) = [n for n in report["notes"] if "merged" in n]
    assert f"{attempts} of {attempts} probe connections matched" in note
    assert f"proxy/idle-timeout seen as incomplete chunked body {drops}" in note
    assert report["reconnects"]["chains"] == 2  # per probe client, from its session


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (apt-get install nginx-light)")
async def test_through_nginx_the_drops_come_2s_after_the_last_byte(tmp_path: Path) -> None:
    with origin() as upstream:
        location = (
            f"        location / {{ proxy_pass http://{HOST}:{upstream}; {SSE_HTTP11} "
            "proxy_read_timeout 2s; proxy_buffering off; }"
        )
        with nginx(tmp_path / "nginx", location) as port:
            probe = _probe(port, duration=5.0)
            await probe.run()
    result = summarize(probe)
    (group,) = result["drops"]
    # Each client: event 1 at once, cut at 2 s; back at 2.2 s, event 2, cut at 4.2 s.
    assert group["seen_as"] == "incomplete chunked body"
    assert group["count"] == 4
    assert 1.9 <= group["silence_before"]["p50"] <= 2.3
    text = render_text(result, [])
    assert "4  incomplete chunked body, 2.0 s after the last byte" in text
    assert "every one after ~2.0 s without a byte: the mark of an idle timeout of about 2 s" in text
    assert result["totals"]["ids"]["lost"] == result["totals"]["ids"]["duplicated"] == 0
