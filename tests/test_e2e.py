"""End to end: the real CLI in subprocesses, real clients (curl, httpx), loopback only.

Nothing here sleeps to wait: tests wait for a subprocess's output line, a client's bytes,
a process's exit, or a journal record. The journal is a named pipe given to `--journal`,
so its records are read the moment the proxy writes them (and its end is the proxy's).
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.subprocesses import Lines

Record = dict[str, Any]

STARTUP = 20.0  # seconds a subprocess may take to print its ready line
CURL_MAX_TIME = "10"
IDLE_SCENARIO = """\
[scenario]
name = "idle-1s"
description = "nginx-like proxy_read_timeout, shortened"

[[faults]]
type = "idle-timeout"
timeout = "1s"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Process:
    popen: subprocess.Popen[str]
    out: Lines


@contextmanager
def spawn(*command: str, stderr: int = subprocess.STDOUT) -> Iterator[Process]:
    """A subprocess whose stdout (and stderr, by default) is `out`; killed on the way out."""
    popen = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert popen.stdout is not None
        yield Process(popen, Lines(popen.stdout))
    finally:
        if popen.poll() is None:
            popen.kill()
        popen.wait(timeout=10)


def sseproxy(*args: str) -> AbstractContextManager[Process]:
    return spawn(sys.executable, "-m", "sseproxy", *args)


def proxy_port(proxy: Process) -> int:
    found = proxy.out.wait_for(r"^sseproxy http proxy on http://127\.0\.0\.1:(\d+) ")
    proxy.out.wait_for(r"^stop with Ctrl-C$")
    return int(found.group(1))


def serving(origin: Process, port: int) -> None:
    origin.out.wait_for(rf"^serving SSE on http://127\.0\.0\.1:{port}/events$")


class JournalPipe:
    """A named pipe to give to `--journal`: records arrive as the proxy writes them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: list[Record] = []
        os.mkfifo(path)
        self._queue: queue.Queue[Record | None] = queue.Queue()
        self._ended = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with open(self.path, encoding="utf-8") as pipe:  # waits for the proxy to open it
            for line in pipe:
                self._queue.put(json.loads(line))
        self._queue.put(None)

    def _next(self, deadline: float, waiting_for: str) -> None:
        try:
            record = self._queue.get(timeout=max(deadline - time.monotonic(), 0))
        except queue.Empty:
            raise AssertionError(f"no {waiting_for} in the journal: {self.records}") from None
        if record is None:
            self._ended = True
        else:
            self.records.append(record)

    def of_kind(self, kind: str) -> list[Record]:
        return [record for record in self.records if record["kind"] == kind]

    def wait_for(self, kind: str, count: int = 1, timeout: float = STARTUP) -> list[Record]:
        deadline = time.monotonic() + timeout
        while len(self.of_kind(kind)) < count:
            if self._ended:
                raise AssertionError(f"the journal ended before {count} {kind!r}: {self.records}")
            self._next(deadline, f"{count} {kind!r} records")
        return self.of_kind(kind)

    def rest(self, timeout: float = STARTUP) -> list[Record]:
        """All records, once the proxy has closed its journal."""
        deadline = time.monotonic() + timeout
        while not self._ended:
            self._next(deadline, "end")
        return self.records

    def __enter__(self) -> JournalPipe:
        return self

    def __exit__(self, *exc: object) -> None:
        with suppress(OSError):  # a reader still waiting for a writer that never came: go
            os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))


def read_until_event(curl: Process, event_id: int) -> None:
    curl.out.wait_for(rf"^id: {event_id}$", timeout=float(CURL_MAX_TIME))


# -- (a) the demo: `sseproxy run` prints a curl command that works ---------------------


def test_run_prints_a_curl_command_that_streams_events() -> None:
    port = free_port()
    with sseproxy("run", "--listen", f"127.0.0.1:{port}") as proxy:
        command = shlex.split(proxy.out.wait_for(r"^try: (curl -N .*)$").group(1))
        assert command == ["curl", "-N", f"http://127.0.0.1:{port}/events"]
        with spawn(*command, "--max-time", CURL_MAX_TIME, stderr=subprocess.DEVNULL) as curl:
            curl.out.wait_for(r"^id: 1$", timeout=float(CURL_MAX_TIME))
            curl.out.wait_for(r'^data: \{"n": 1\}$')


# -- (b) a real SSE client library through the proxy -------------------------------------


def test_httpx_reads_events_through_the_proxy_from_sseproxy_serve() -> None:
    origin_port = free_port()
    with (
        sseproxy("serve", "--listen", f"127.0.0.1:{origin_port}", "--interval", "0.1") as origin,
        sseproxy(
            "run", "--listen", "127.0.0.1:0", "--upstream", f"http://127.0.0.1:{origin_port}"
        ) as proxy,
    ):
        serving(origin, origin_port)
        url = f"http://127.0.0.1:{proxy_port(proxy)}/events"
        ids: list[int] = []
        with (
            httpx.Client(timeout=10, trust_env=False) as client,
            client.stream("GET", url) as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/event-stream"
            for line in response.iter_lines():
                if line.startswith("id: "):
                    ids.append(int(line.removeprefix("id: ")))
                if len(ids) == 3:
                    break
        assert ids == [1, 2, 3]


# -- (c) the acceptance check: an idle timeout cuts curl -----------------------------


def test_idle_timeout_cuts_curl_and_the_journal_says_why(tmp_path: Path) -> None:
    scenario = tmp_path / "idle.toml"
    scenario.write_text(IDLE_SCENARIO, encoding="utf-8")
    origin_port = free_port()
    with (
        JournalPipe(tmp_path / "journal.jsonl") as journal,
        sseproxy(
            "serve",
            "--listen",
            f"127.0.0.1:{origin_port}",
            "--heartbeat",
            "0",
            "--interval",
            "1000",
        ) as origin,
        sseproxy(
            "run",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            f"http://127.0.0.1:{origin_port}",
            "--scenario",
            str(scenario),
            "--journal",
            str(journal.path),
        ) as proxy,
    ):
        serving(origin, origin_port)
        url = f"http://127.0.0.1:{proxy_port(proxy)}/events"
        started = time.monotonic()
        curl = subprocess.run(
            ["curl", "-N", "--max-time", CURL_MAX_TIME, url],
            capture_output=True,
            text=True,
            timeout=float(CURL_MAX_TIME) + 5,
        )
        elapsed = time.monotonic() - started
        assert curl.returncode == 18, curl.stderr
        assert "transfer closed with outstanding read data remaining" in curl.stderr
        assert curl.stdout == 'id: 1\ndata: {"n": 1}\n\n'
        assert 1.0 <= elapsed < 2.0
        (closed,) = journal.wait_for("closed")
        (fault,) = journal.of_kind("fault")
    assert (closed["by"], closed["reason"]) == ("proxy", "idle-timeout")
    assert 1.0 <= closed["duration"] < 2.0
    assert (closed["events_down"], closed["last_id"]) == (1, "1")
    assert (fault["fault"], fault["action"]) == ("idle-timeout", "close")
    assert all(record["scenario"] == "idle-1s" for record in journal.records)


# -- (d) SIGTERM and SIGINT with streams open -------------------------------------------------

SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT}


@dataclass
class Stopped:
    returncode: int
    elapsed: float
    output: list[str]
    records: list[Record]


@pytest.fixture(scope="module")
def stopped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Stopped]:
    """Each signal sent to a proxy with a curl stream and an idle connection open."""
    folder = tmp_path_factory.mktemp("signals")
    results: dict[str, Stopped] = {}
    with ExitStack() as stack:
        runs = {}
        for name in SIGNALS:  # start both proxies at once: startup is the slow part
            journal = stack.enter_context(JournalPipe(folder / f"{name}.jsonl"))
            args = ("run", "--listen", "127.0.0.1:0", "--journal", str(journal.path))
            runs[name] = (journal, stack.enter_context(sseproxy(*args)))
        for name, (journal, proxy) in runs.items():
            port = proxy_port(proxy)
            url = f"http://127.0.0.1:{port}/events"
            curl = stack.enter_context(spawn("curl", "-sN", "--max-time", CURL_MAX_TIME, url))
            read_until_event(curl, 1)
            idle = stack.enter_context(socket.create_connection(("127.0.0.1", port)))
            assert idle is not None
            journal.wait_for("opened", 2)
            started = time.monotonic()
            proxy.popen.send_signal(SIGNALS[name])
            try:
                returncode = proxy.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                returncode = -999
            elapsed = time.monotonic() - started
            results[name] = Stopped(returncode, elapsed, proxy.out.rest(), journal.rest())
    return results


@pytest.mark.parametrize("name", SIGNALS)
def test_a_signal_stops_the_proxy_within_a_second(stopped: dict[str, Stopped], name: str) -> None:
    result = stopped[name]
    assert result.returncode == 0, result.output
    assert result.elapsed < 1.0
    assert result.output[-1] == "stopped"
    assert [r["kind"] for r in result.records].count("opened") == 2


@pytest.mark.parametrize("name", SIGNALS)
def test_a_signal_closes_every_opened_connection_in_the_journal(
    stopped: dict[str, Stopped], name: str
) -> None:
    records = stopped[name].records
    opened = [r["conn"] for r in records if r["kind"] == "opened"]
    closed = {r["conn"]: r for r in records if r["kind"] == "closed"}
    assert len(opened) == 2
    assert sorted(closed) == sorted(opened)
    assert all((r["by"], r["reason"]) == ("proxy", "shutdown") for r in closed.values())
