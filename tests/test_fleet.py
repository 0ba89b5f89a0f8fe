"""Several proxies in one process: `sseproxy run --config FILE` (TOML `[[proxies]]` or
toxiproxy's JSON), one journal whose records name their proxy, one report with a row per
proxy, and a one-line error (exit 2) for a bad file."""

from __future__ import annotations

import json
import re
import signal
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from sseproxy.cli import main
from sseproxy.errors import ConfigError
from sseproxy.report.analysis import analyse
from sseproxy.report.reader import read_journals
from sseproxy.report.text import render_text
from sseproxy.testing import run_origin
from sseproxy.toxiproxy.config import load_config
from tests.peers.common import HOST, spawn


@pytest.fixture(scope="module")
def origin_url() -> Iterator[str]:
    with run_origin(interval=0.02, heartbeat=0) as url:
        yield url


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_toml_file_lists_proxies(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "proxies.toml",
        """
[[proxies]]
name = "events"
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:9000"
scenario = "nginx-default"

[[proxies]]
name = "raw"
listen = "127.0.0.1:8081"
upstream = "127.0.0.1:9001"
mode = "tcp"
enabled = false
""",
    )
    events, raw = load_config(str(path))
    assert (events.name, events.mode, events.enabled) == ("events", "http", True)
    assert events.scenario is not None and events.scenario.name == "nginx-default"
    assert (raw.name, raw.mode, raw.enabled, raw.scenario) == ("raw", "tcp", False, None)


def test_toxiproxys_json_config_is_read_as_tcp_proxies(tmp_path: Path) -> None:
    entries = [
        {"name": "redis", "listen": "127.0.0.1:26379", "upstream": "127.0.0.1:6379"},
        {"name": "pg", "listen": "127.0.0.1:25432", "upstream": "127.0.0.1:5432", "enabled": False},
    ]
    path = _write(tmp_path, "toxiproxy.json", json.dumps(entries))
    proxies = load_config(str(path))
    assert [(p.name, p.mode, p.enabled) for p in proxies] == [
        ("redis", "tcp", True),
        ("pg", "tcp", False),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[proxies]]\nname = "a"\nupstream = "http://127.0.0.1:9"\n',
            "proxy 'a': listen: required",
        ),
        (
            '[[proxies]]\nname = "a"\nlisten = "nowhere"\nupstream = ":9"\n',
            "proxy 'a': listen: address nowhere: missing port",
        ),
        (
            '[[proxies]]\nname = "a"\nlisten = ":0"\nupstream = "ftp://x:1"\n',
            "proxy 'a': upstream: upstream 'ftp://x:1': scheme 'ftp'",
        ),
        (
            '[[proxies]]\nname = "a"\nlisten = ":0"\nupstream = ":9"\nmode = "udp"\n',
            "proxy 'a': mode: 'udp' is not http or tcp",
        ),
        (
            '[[proxies]]\nname = "a"\nlisten = ":0"\nupstream = ":9"\nscenario = "nope"\n',
            "proxy 'a': scenario: nope: no such file",
        ),
        (
            '[[proxies]]\nname = "a"\nlisten = ":0"\nupstream = ":9"\nport = 3\n',
            "proxy 'a': port: unknown field",
        ),
        (
            '[[proxies]]\nname = "a"\nlisten = ":0"\nupstream = ":9"\n'
            '[[proxies]]\nname = "a"\nlisten = ":0"\nupstream = ":9"\n',
            "proxy 'a': name: used twice",
        ),
        ('[[proxies]]\nlisten = ":0"\nupstream = ":9"\n', "proxy 1: name: required"),
        ("[server]\n", "unknown table 'server'"),
        ("[[proxies]\n", "not TOML"),
    ],
)
def test_a_bad_file_is_one_line_naming_file_proxy_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, "bad.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_config(str(path))
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    result = CliRunner().invoke(main, ["run", "--config", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_two_proxies_one_journal_one_report(tmp_path: Path, origin_url: str) -> None:
    upstream = origin_url
    _write(
        tmp_path,
        "busy.toml",
        '[scenario]\nname = "busy"\n\n[[faults]]\ntype = "status"\ncode = 503\n',
    )
    config = _write(
        tmp_path,
        "proxies.toml",
        f"""
[[proxies]]
name = "plain"
listen = "{HOST}:0"
upstream = "{upstream}"

[[proxies]]
name = "busy"
listen = "{HOST}:0"
upstream = "{upstream}"
scenario = "busy.toml"
""",
    )
    journal = tmp_path / "run.jsonl"
    command = (sys.executable, "-m", "sseproxy", "run", "--config", str(config))
    control = ("--control", f"{HOST}:0", "--time-scale", "0.5", "--close-lines")
    with spawn(*command, *control, "--journal", str(journal)) as (popen, out):
        ports = {}
        for _ in range(2):
            found = out.wait_for(r"^proxy (\w+) \(http\) on 127\.0\.0\.1:(\d+) ")
            ports[found.group(1)] = int(found.group(2))
        out.wait_for(r"^time scale 0\.5: every duration in the scenario is multiplied by 0\.5 ")
        found = out.wait_for(r"^control API on (http://127\.0\.0\.1:\d+)/proxies/NAME/")
        control_url = found.group(1)
        out.wait_for(r"^stop with Ctrl-C$")
        status, body = _get(f"http://{HOST}:{ports['plain']}/events?count=2&interval=0")
        assert status == 200 and b"id: 2" in body
        assert _get(f"http://{HOST}:{ports['busy']}/events?count=2")[0] == 503
        line = r"^(plain|busy) c1 GET /events from 127\.0\.0\.1: closed by "
        closes = {out.wait_for(line)[1], out.wait_for(line)[1]}
        assert closes == {"plain", "busy"}  # a line per close, naming the proxy
        # each proxy's control API under /proxies/NAME/, and `sseproxy ctl` with that prefix
        listing = json.loads(_get(f"{control_url}/proxies")[1])["proxies"]
        assert sorted(listing) == ["busy", "plain"]
        status_busy = json.loads(_get(f"{control_url}/proxies/busy/status")[1])
        assert status_busy["scenario"] == "busy" and status_busy["connections"]["total"] == 1
        added = CliRunner().invoke(
            main,
            [
                *("ctl", "--control", f"{control_url}/proxies/plain"),
                *("faults", "add", "--type", "status", "--set", "code=418"),
            ],
        )
        assert added.exit_code == 0, added.output
        assert _get(f"http://{HOST}:{ports['plain']}/events?count=2")[0] == 418
        assert _get(f"http://{HOST}:{ports['busy']}/events?count=2")[0] == 503
        assert _get(f"{control_url}/proxies/nope/status")[0] == 404
        popen.send_signal(signal.SIGINT)
        out.wait_for(r"^stopped$")
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [r["kind"] for r in records].count("started") == 1
    assert records[0]["kind"] == "started" and records[0]["time_scale"] == 0.5
    by_proxy = {r.get("proxy") for r in records if r["conn"] != "-"}
    assert by_proxy == {"plain", "busy"}
    busy = [r for r in records if r.get("proxy") == "busy"]
    assert all(r["scenario"] == "busy" for r in busy)
    report = analyse(read_journals([str(journal)]))
    rows = {row.name: row for row in report.totals.proxies}
    assert set(rows) == {"plain", "busy"}
    assert rows["busy"].connections == 2 and rows["plain"].connections == 2
    text = render_text(report)
    assert re.search(r"^\s+proxy\s+connections", text, re.MULTILINE), text
    assert re.search(r"^\s+busy\s+2\b", text, re.MULTILINE), text


def test_the_toxiproxy_api_address_defaults_to_toxiproxys_port() -> None:
    from sseproxy.toxiproxy.run import parse_api_address

    assert parse_api_address("127.0.0.1:8474") == ("127.0.0.1", 8474)
    assert parse_api_address("localhost") == ("localhost", 8474)
    assert parse_api_address("9000") == ("127.0.0.1", 9000)
    assert parse_api_address(":9000") == ("127.0.0.1", 9000)
    with pytest.raises(ConfigError, match="--toxiproxy-api"):
        parse_api_address("127.0.0.1:http")


def test_the_toxiproxy_api_off_loopback_needs_a_token() -> None:
    result = CliRunner().invoke(main, ["run", "--toxiproxy-api", "0.0.0.0:8474"])
    assert result.exit_code == 2
    assert "--control-token" in result.output
