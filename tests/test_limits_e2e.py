"""The real CLI at its limits: out of file descriptors, and a journal nobody reads.

Subprocesses on loopback, bounded by timeouts; nothing sleeps to wait. The descriptor
test lowers the running proxy's RLIMIT_NOFILE with prlimit(2) (Linux), so it knows
exactly how many descriptors the proxy has left.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.subprocesses import Lines
from tests.test_e2e import JournalPipe, free_port, proxy_port, serving, spawn, sseproxy

resource = pytest.importorskip("resource")
TIMEOUT = 10.0


def head_of(sock: socket.socket) -> bytes:
    """The response head (status line and headers), or what came before the end."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.partition(b"\r\n\r\n")[0]


def ask(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: test\r\n\r\n")
    return sock


def leave_free(pid: int, free: int) -> None:
    """Set the process's descriptor limit so that exactly `free` more can be opened."""
    in_use = {int(name) for name in os.listdir(f"/proc/{pid}/fd")}
    unused = (number for number in itertools.count() if number not in in_use)
    limit = next(itertools.islice(unused, free, None))  # new descriptors take the lowest
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))


@pytest.mark.skipif(
    not hasattr(resource, "prlimit") or not os.path.isdir("/proc/self/fd"), reason="Linux only"
)
def test_out_of_descriptors_the_proxy_answers_503_blames_itself_and_keeps_accepting(
    tmp_path: Path,
) -> None:
    origin_port = free_port()
    quiet = ("--interval", "1000", "--heartbeat", "0")
    upstream = ("--upstream", f"http://127.0.0.1:{origin_port}", "--max-connections", "1000")
    with (
        JournalPipe(tmp_path / "journal.jsonl") as journal,
        sseproxy("serve", "--listen", f"127.0.0.1:{origin_port}", *quiet) as origin,
        sseproxy(
            "run", "--listen", "127.0.0.1:0", *upstream, "--journal", str(journal.path)
        ) as proxy,
    ):
        serving(origin, origin_port)
        port = proxy_port(proxy)
        leave_free(proxy.popen.pid, 5)
        first, second = ask(port), ask(port)  # two descriptors each: one left
        for client in (first, second):
            assert head_of(client).startswith(b"HTTP/1.1 200 ")
        with ask(port) as third:  # accepted with the last one; no descriptor to connect with
            assert head_of(third).startswith(b"HTTP/1.1 503 ")
            while third.recv(65536):  # the end: the proxy has closed its descriptor
                pass
        journal.wait_for("closed")
        leave_free(proxy.popen.pid, 0)
        with ask(port) as waiting:  # accept fails (EMFILE): it waits in the backlog
            first.close()  # two descriptors free again: the accept loop takes it
            assert head_of(waiting).startswith(b"HTTP/1.1 200 ")
        second.close()
        journal.wait_for("closed", 4)
    closed = journal.of_kind("closed")
    reasons = [(record["by"], record["reason"]) for record in closed]
    assert reasons.count(("proxy", "proxy-overloaded")) == 1
    assert not [reason for _by, reason in reasons if reason.startswith("upstream-")]
    (overloaded,) = [record for record in closed if record["reason"] == "proxy-overloaded"]
    assert "Too many open files" in overloaded["detail"]
    (paused,) = journal.of_kind("accept-paused")
    assert (paused["reason"], paused["detail"]) == ("proxy-overloaded", "Too many open files")
    (resumed,) = journal.of_kind("accept-resumed")
    assert resumed["paused"] > 0


def test_a_journal_nobody_reads_never_stalls_traffic_and_a_stop_writes_it_all() -> None:
    """`--journal -` into a pipe nobody reads (its 64 KiB fill after ~400 lines)."""
    events = 2000
    origin_port = free_port()
    with sseproxy(
        "serve", "--listen", f"127.0.0.1:{origin_port}", "--interval", "0", "--heartbeat", "0"
    ) as origin:
        serving(origin, origin_port)
        command = [sys.executable, "-m", "sseproxy", "run", "--listen", "127.0.0.1:0"]
        command += ["--upstream", f"http://127.0.0.1:{origin_port}"]
        command += ["--journal", "-", "--journal-events"]
        proxy = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert proxy.stderr is not None and proxy.stdout is not None
            found = Lines(proxy.stderr).wait_for(r"^sseproxy http proxy on http://[\d.]+:(\d+) ")
            with socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=5) as sock:
                sock.sendall(f"GET /events?count={events} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                body = b""
                while not body.endswith(b"\r\n0\r\n\r\n"):  # the end of the chunked body
                    chunk = sock.recv(65536)  # times out if the proxy is stuck on its journal
                    assert chunk, body[-200:]
                    body += chunk
            assert body.count(b"\nid: ") == events
            proxy.send_signal(signal.SIGTERM)
            output: list[str] = []
            reader = threading.Thread(target=lambda: output.append(proxy.stdout.read()))  # type: ignore[union-attr]
            reader.start()
            reader.join(timeout=20)
            assert proxy.wait(timeout=20) == 0
        finally:
            if proxy.poll() is None:
                proxy.kill()
            proxy.wait(timeout=10)
    records = [json.loads(line) for line in output[0].splitlines()]
    kinds = [record["kind"] for record in records]
    assert kinds.count("event") == events
    assert kinds.count("closed") == kinds.count("opened") == 1
    assert "journal-overflow" not in kinds


def test_the_default_connection_cap_follows_ulimit_n(tmp_path: Path) -> None:
    """`ulimit -n 70`: (70 - 64) / 2 = 3 connections (2 descriptors each, to spare 64)."""
    origin_port = free_port()
    run = f"{shlex.quote(sys.executable)} -m sseproxy run --listen 127.0.0.1:0"
    run += f" --upstream http://127.0.0.1:{origin_port} --journal -"
    with sseproxy("serve", "--listen", f"127.0.0.1:{origin_port}", "--heartbeat", "0") as origin:
        serving(origin, origin_port)
        with spawn("sh", "-c", f"ulimit -n 70 && exec {run}") as proxy:
            found = proxy.out.wait_for(r'"kind":"started".*"max_connections":(\d+)')
    assert found.group(1) == "3"
