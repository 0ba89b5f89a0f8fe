"""`run`'s console: a line per closed connection on stderr, on when stderr is a terminal."""

from __future__ import annotations

import io
import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from trio.testing import MockClock

from sseproxy import origin
from sseproxy.console import CloseLines, close_line
from tests.harness import memory_proxy
from tests.subprocesses import STARTUP, Lines


def test_the_line_says_who_why_how_long_and_what_it_carried() -> None:
    closed = {
        "conn": "c3",
        "by": "proxy",
        "reason": "idle-timeout",
        "duration": 6.0,
        "bytes_down": 1234,
        "events_down": 5,
        "last_id": "5",
        "bytes_up": 0,
    }
    line = close_line(closed, "127.0.0.1", "GET /events", "no byte for 6s")
    assert line == (
        "c3 GET /events from 127.0.0.1: closed by proxy, idle-timeout (no byte for 6s), "
        "after 6 s; 1.2 KiB and 5 events down, last id 5"
    )
    bare = {"conn": "c9", "by": "client", "reason": "client-closed", "bytes_down": 0}
    assert close_line(bare) == "c9: closed by client, client-closed; 0 B down"
    stopped = {**bare, "by": "proxy", "reason": "shutdown", "detail": "Cancelled(source='x')"}
    assert close_line(stopped) == "c9: closed by proxy, shutdown; 0 B down"  # no Python repr


async def test_a_subscriber_prints_each_close_once(autojump_clock: MockClock) -> None:
    console = io.StringIO()
    scenario = '[[faults]]\ntype = "idle-timeout"\ntimeout = "2500ms"\n'
    async with memory_proxy(scenario, origin.OriginSettings(interval=10, heartbeat=0)) as mp:
        lines = CloseLines(console).attach(mp.journal)
        await mp.client().get("/events")
        await mp.journal.wait_for("closed")
        lines.detach()
    (line,) = console.getvalue().splitlines()
    assert line.startswith("c1 GET /events from ")
    assert "closed by proxy, idle-timeout (no byte for 2500ms), after 2.5 s" in line
    assert line.endswith("; 22 B and 1 event down, last id 1")
    assert lines.seen == {}  # nothing kept once a connection closed


class Terminal:
    """A pseudo-terminal for a child's stderr: what the child writes, read by a thread."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.text = ""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def rest(self) -> str:
        """Everything the child wrote, once it has exited (the terminal reads EIO)."""
        self._reader.join(timeout=STARTUP)
        assert not self._reader.is_alive()
        return self.text

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # EIO: every writer closed the terminal
                return
            if not data:
                return
            with self._lock:
                self.text += data.decode(errors="replace")

    def wait_for(self, pattern: str, timeout: float = STARTUP) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if found := re.search(pattern, self.text):
                    return found
            time.sleep(0.02)
        raise AssertionError(f"no {pattern!r} on the terminal; it shows {self.text!r}")


def run_on_a_terminal(tmp_path: Path, *options: str) -> tuple[Terminal, subprocess.Popen[str]]:
    terminal = Terminal()
    command = [sys.executable, "-m", "sseproxy", "run", "--listen", "127.0.0.1:0"]
    command += ["--scenario", "idle-3s", "--time-scale", "0.1", *options]
    command += ["--journal", str(tmp_path / "run.jsonl")]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proxy = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=terminal.slave, text=True, env=env
    )
    os.close(terminal.slave)
    return terminal, proxy


def curl_through(proxy: subprocess.Popen[str]) -> str:
    assert proxy.stdout is not None
    out = Lines(proxy.stdout)
    port = out.wait_for(r"^sseproxy http proxy on http://127\.0\.0\.1:(\d+) ").group(1)
    out.wait_for(r"^time scale 0\.1: .*\(a 60s timeout fires after 6s\)$")
    out.wait_for("^stop with Ctrl-C$")
    curl = ["curl", "-sN", "--max-time", "10", f"http://127.0.0.1:{port}/events"]
    return subprocess.run(curl, capture_output=True, text=True, timeout=20, check=False).stdout


def wait_for_close(journal: Path) -> None:
    """The proxy journals a connection's close just after curl saw the stream end: wait
    for that record, so that the Ctrl-C of `stop` does not overtake it (and turn it into
    a shutdown)."""
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        lines = journal.read_text().splitlines() if journal.exists() else []
        if any(json.loads(line)["kind"] == "closed" for line in lines if line.endswith("}")):
            return
        time.sleep(0.02)
    raise AssertionError(f"no closed record in {journal} within {STARTUP}s")


def stop(proxy: subprocess.Popen[str]) -> None:
    proxy.send_signal(signal.SIGINT)
    assert proxy.wait(timeout=10) == 0


def test_run_on_a_terminal_prints_the_close_of_a_real_curl(tmp_path: Path) -> None:
    terminal, proxy = run_on_a_terminal(tmp_path)
    try:
        body = curl_through(proxy)  # idle-3s at a tenth: cut after 300 ms
        assert body == 'id: 1\ndata: {"n": 1}\n\n'
        found = terminal.wait_for(r"c1 GET /events from 127\.0\.0\.1: (.*)\r?\n")
        assert found.group(1).startswith(
            "closed by proxy, idle-timeout (no byte for 300ms), after 3"
        )
        assert found.group(1).endswith("; 22 B and 1 event down, last id 1\r")
    finally:
        stop(proxy)
    records = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert records[0]["kind"] == "started" and records[0]["time_scale"] == 0.1
    (closed,) = [r for r in records if r["kind"] == "closed"]
    assert 0.3 <= closed["duration"] < 2.0


def test_quiet_turns_it_off(tmp_path: Path) -> None:
    terminal, proxy = run_on_a_terminal(tmp_path, "--quiet")
    try:
        assert curl_through(proxy) == 'id: 1\ndata: {"n": 1}\n\n'
        wait_for_close(tmp_path / "run.jsonl")
    finally:
        stop(proxy)
    closed = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    assert [r["reason"] for r in closed if r["kind"] == "closed"] == ["idle-timeout"]
    assert "closed by" not in terminal.rest()


def test_off_for_a_pipe_unless_asked_for(tmp_path: Path) -> None:
    """Tests and scripts read a clean stderr; `--close-lines` prints to a pipe too."""
    for options, expected in (((), 0), (("--close-lines",), 1)):
        command = [sys.executable, "-m", "sseproxy", "run", "--listen", "127.0.0.1:0"]
        command += ["--scenario", "idle-3s", "--time-scale", "0.1", *options]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        ) as proxy:
            try:
                assert curl_through(proxy) == 'id: 1\ndata: {"n": 1}\n\n'
            finally:
                stop(proxy)
            assert proxy.stderr is not None
            lines = proxy.stderr.read().splitlines()
        assert len([line for line in lines if "closed by proxy, idle-timeout" in line]) == expected
        assert len(lines) == expected, lines
