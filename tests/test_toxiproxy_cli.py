"""toxiproxy's own CLI works against sseproxy's toxiproxy API: the commands its README
documents (list, create, toxic add, toxic remove, delete, and inspect, toggle) print the
same as against the real server, and change sseproxy's proxies and faults."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.toxiproxy_rig import CLI, HOST, call, real_toxiproxy, sseproxy_api

COMMANDS = [
    ["list"],
    ["create", "--listen", f"{HOST}:0", "--upstream", f"{HOST}:9", "web"],
    ["create", "--listen", f"{HOST}:0", "--upstream", f"{HOST}:9", "web"],
    ["list"],
    ["toxic", "add", "--type", "latency", "--attribute", "latency=250", "web"],
    [
        *("toxic", "add", "-t", "bandwidth", "-n", "thin", "-u"),
        *("-a", "rate=100", "--tox", "0.5", "web"),
    ],
    ["toxic", "add", "-t", "nope", "web"],
    ["inspect", "web"],
    ["toxic", "update", "-n", "thin", "-a", "rate=50", "web"],
    ["toxic", "remove", "--toxicName", "latency_downstream", "web"],
    ["toxic", "remove", "--toxicName", "latency_downstream", "web"],
    ["toggle", "web"],
    ["list"],
    ["toggle", "web"],
    ["delete", "web"],
    ["delete", "web"],
    ["list"],
]


def _run(url: str) -> list[str]:
    outputs = []
    for command in COMMANDS:
        done = subprocess.run(
            [str(CLI), "--host", url, *command],
            capture_output=True,
            text=True,
            timeout=20,
        )
        text = re.sub(rf"{re.escape(HOST)}:\d{{4,5}}", f"{HOST}:PORT", done.stdout + done.stderr)
        outputs.append(f"$ {' '.join(command)} -> {done.returncode}\n{text}")
    return outputs


def test_the_cli_prints_the_same_against_both() -> None:
    if not CLI.exists():
        pytest.skip(f"toxiproxy-cli is not at {CLI} (a user's clone has none)")
    with real_toxiproxy() as real:
        expected = _run(real)
    with sseproxy_api() as ours:
        got = _run(ours.url)
        web_gone = call(ours.url, "GET", "/proxies").json() == {}
    assert got == expected
    assert web_gone
    assert "Added downstream latency toxic 'latency_downstream' on proxy 'web'" in got[4]


def test_toxics_added_by_the_cli_become_faults() -> None:
    if not CLI.exists():
        pytest.skip(f"toxiproxy-cli is not at {CLI} (a user's clone has none)")
    with sseproxy_api() as ours:
        for command in COMMANDS[1], COMMANDS[4]:
            subprocess.run([str(CLI), "--host", ours.url, *command], check=True, timeout=20)
        member = ours.fleet.members["web"]
        faults = ours.loop.run_sync(lambda: member.proxy.scenario.faults)
    assert [(f.name, f.type, f.settings["delay"]) for f in faults] == [
        ("latency_downstream", "latency", 0.25)
    ]
