"""docs/probe.md's recipe, end to end at a 1 s timeout, so the page cannot rot.

Debian's nginx with `proxy_read_timeout 1s` (the sseproxy log_format, error log at info)
in front of `sseproxy serve` sending one event and then nothing; `sseproxy probe` through
it; `sseproxy report --nginx-log` on that very nginx's logs; then the preset the report
names, set to the value it names (`sseproxy run --scenario ... --control`, `sseproxy ctl
faults set ...`), and the same probe through sseproxy. The probe's and the logs'
conclusions must agree (the same cut interval, the same cause, the same count), and the
reproduction must show the same drops. The stream's `retry: 200` keeps it short: each
client is cut at 1 s, back 0.2 s later, cut again at 2.2 s, back at 2.4 s, and stopped at
2.8 s (margins for a busy machine).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from click.testing import CliRunner

from sseproxy.cli import main
from sseproxy.nginx_format import LOG_FORMAT
from sseproxy.probe.runner import Probe, ProbeSettings
from sseproxy.probe.summary import summarize
from sseproxy.probe.target import Target
from tests.peers.common import HOST, free_port, origin, spawn
from tests.peers.nginx import NGINX, SSE_HTTP11, nginx

if NGINX is None:
    pytest.skip(
        "nginx is not installed (apt-get install nginx-light); .ci/run installs it",
        allow_module_level=True,
    )

TIMEOUT = 1.0
EVENTS = "/events?retry=200"
SSEPROXY = (sys.executable, "-m", "sseproxy")


def sseproxy(*args: str) -> str:
    """An sseproxy command in this process (the report, ctl): its output; exit 0 asserted."""
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def probe(port: int) -> dict[str, Any]:
    """`sseproxy probe URL --clients 2 --duration 2.8s --json`, in this process."""
    url = f"http://{HOST}:{port}{EVENTS}"
    run = Probe(ProbeSettings(Target.parse(url), clients=2, duration=2.8))
    trio.run(run.run)
    return summarize(run)


def cut_every(result: dict[str, Any]) -> tuple[str, int, float]:
    """How the probe saw its drops: (seen as, how many, the silence before each)."""
    (group,) = result["drops"]
    return group["seen_as"], group["count"], group["silence_before"]["p50"]


def test_the_probe_and_nginx_logs_agree_and_the_named_preset_reproduces_them(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "nginx"
    with origin("--heartbeat", "0", "--interval", "100") as upstream:
        location = (
            f"        access_log {folder / 'sse.log'} sseproxy;\n"
            f"        location / {{ proxy_pass http://{HOST}:{upstream}; "
            f"proxy_read_timeout {TIMEOUT:g}s; {SSE_HTTP11} }}"
        )
        with nginx(folder, location, http=f"    {LOG_FORMAT}\n") as port:
            through_nginx = probe(port)
        # nginx has stopped: every line is written
        logs = (
            "--nginx-log",
            str(folder / "sse.log"),
            "--nginx-error-log",
            str(folder / "error.log"),
        )
        nginx_says = json.loads(sseproxy("report", *logs, "--json"))

        # The probe: every drop an incomplete chunked body, ~1 s after the last byte.
        seen_as, drops, silence = cut_every(through_nginx)
        assert (seen_as, drops) == ("incomplete chunked body", 4)
        assert abs(silence - TIMEOUT) < 0.3
        stopped = through_nginx["totals"]["attempts"] - drops
        assert stopped == 2  # one stream per client still open when the probe stopped

        # nginx's logs: the same streams, the same cause, the same interval, the same client.
        causes = {row["cause"]: row["count"] for row in nginx_says["causes"]}
        assert causes == {"proxy_read_timeout": drops, "client-closed": stopped}
        (pile,) = [c for c in nginx_says["clusters"] if abs(c["centre"] - TIMEOUT) < 0.3]
        assert pile["count"] >= drops
        assert "proxy_read_timeout" in pile["known_as"]
        assert [c["family"] for c in nginx_says["clients"]] == ["probe"]
        assert nginx_says["reconnects"]["reconnects"] == drops  # each cut was followed

        # The preset and the value the report names, without nginx.
        advice = re.fullmatch(
            r"sseproxy run --scenario (\S+) \(with (\S+) = (\S+)\)", pile["reproduce"]
        )
        assert advice is not None, pile["reproduce"]
        preset, fault, value = advice.groups()
        assert (preset, fault, value) == ("nginx-default", "proxy_read_timeout", f"{TIMEOUT:g}s")
        control = free_port()
        journal = tmp_path / "run.jsonl"
        command = (
            *(*SSEPROXY, "run", "--listen", f"{HOST}:0", "--upstream", f"http://{HOST}:{upstream}"),
            *("--scenario", preset, "--control", f"{HOST}:{control}", "--journal", str(journal)),
        )
        with spawn(*command) as (_, out):
            proxy = int(
                out.wait_for(r"^sseproxy http proxy on http://127\.0\.0\.1:(\d+) ").group(1)
            )
            out.wait_for(r"^stop with Ctrl-C$")
            api = f"http://{HOST}:{control}"
            sseproxy("ctl", "--control", api, "faults", "set", fault, "--set", f"timeout={value}")
            through_sseproxy = probe(proxy)

    # The same drops, seen the same way, at the same interval.
    again, drops_again, silence_again = cut_every(through_sseproxy)
    assert (again, drops_again) == (seen_as, drops)
    assert abs(silence_again - silence) < 0.3
    proxy_says = json.loads(sseproxy("report", str(journal), "--json"))
    rows = {row["cause"]: row["count"] for row in proxy_says["closes"]["rows"]}
    assert rows[f"proxy/{fault}"] == drops
