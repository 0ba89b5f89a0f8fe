"""One measurement each: a curl download, a round of stream latencies, ping-pong, idle RSS.

Every function is bounded in time (a timeout on each subprocess and socket) and checks what
it received: a wrong byte count or status fails the run loudly with BenchError.
"""

from __future__ import annotations

import json
import select
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from paths import HERE, HOST, BenchError, rss_bytes

RUN_TIMEOUT = 120.0  # seconds for any one run


@dataclass(frozen=True)
class Download:
    """A curl workload: GET `route` with `param`=count; `size` body bytes per count."""

    key: str
    title: str
    route: str
    param: str
    size: int  # body bytes per unit of count
    unit: str  # "events/s" or "MB/s"

    def target(self, count: int) -> str:
        return f"{self.route}?{self.param}={count}"

    def rate(self, count: int, seconds: float) -> float:
        if self.unit == "MB/s":
            return count * self.size / seconds / 1e6
        return count / seconds


def download(port: int, workload: Download, count: int) -> float:
    """Seconds curl took (its time_total) to receive exactly the expected body."""
    expected = count * workload.size
    url = f"http://{HOST}:{port}{workload.target(count)}"
    argv = ["curl", "-sS", "-N", "-o", "/dev/null", "--max-time", str(int(RUN_TIMEOUT))]
    argv += ["-w", "%{http_code} %{size_download} %{time_total}", url]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT + 10)
    except subprocess.TimeoutExpired:
        raise BenchError(f"curl {url} did not finish in {RUN_TIMEOUT:.0f}s") from None
    try:
        status, size, seconds = done.stdout.split()
    except ValueError:
        raise BenchError(f"curl {url}: {done.stderr.strip() or done.stdout!r}") from None
    if done.returncode != 0 or status != "200" or int(size) != expected:
        raise BenchError(
            f"curl {url}: status {status}, {size} body bytes, expected 200 and {expected} "
            f"({done.stderr.strip()})"
        )
    return float(seconds)


@dataclass(frozen=True)
class Latency:
    p50: float  # µs from the upstream's write to the client's read
    p99: float
    events: int


def latencies(port: int, upstream: int, streams: int, events: int, period: float) -> Latency:
    """`streams` concurrent /tick streams from the streams.py client process."""
    argv = [
        sys.executable,
        str(HERE / "streams.py"),
        "tick",
        str(port),
        str(upstream),
        str(streams),
    ]
    argv += [str(events), str(period)]
    budget = RUN_TIMEOUT + events * period
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=budget)
    except subprocess.TimeoutExpired:
        raise BenchError(
            f"the stream client on port {port} did not finish in {budget:.0f}s"
        ) from None
    if done.returncode != 0:
        raise BenchError(f"the stream client on port {port} failed: {done.stderr.strip()[-500:]}")
    result = json.loads(done.stdout)
    if result["events"] != streams * events:
        raise BenchError(f"port {port}: {result['events']} events, expected {streams * events}")
    cuts = statistics.quantiles(result["latencies_us"], n=100, method="inclusive")
    return Latency(cuts[49], cuts[98], result["events"])


def ping_pong(port: int, rounds: int, name: str) -> float:
    """Median µs for a 1-byte round trip through `port` to the echo server."""
    times: list[float] = []
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for done in range(rounds):
            began = time.perf_counter()
            sock.sendall(b"x")
            try:
                echoed = sock.recv(1)
            except TimeoutError:
                echoed = b"(nothing in 10 s)"
            if echoed != b"x":
                raise BenchError(f"ping-pong through {name}: round {done + 1} got {echoed!r}")
            times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e6


def idle_rss(port: int, pids: list[int], streams: int, settle: float) -> float:
    """Bytes of proxy RSS per idle stream: RSS with `streams` open minus RSS before."""
    before = sum(rss_bytes(pid) for pid in pids)
    argv = [sys.executable, str(HERE / "streams.py"), "idle", str(port), str(streams)]
    client = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert client.stdout and client.stdin and client.stderr
        if not select.select([client.stdout], [], [], RUN_TIMEOUT)[0]:
            raise BenchError(f"{streams} idle streams on port {port}: not ready in time")
        line = client.stdout.readline()  # "ready" once every stream has its first event
        if line.strip() != "ready":
            client.wait(RUN_TIMEOUT)
            raise BenchError(f"idle streams on port {port}: {client.stderr.read().strip()[-500:]}")
        time.sleep(settle)  # let the proxy finish its bookkeeping for the last streams
        during = sum(rss_bytes(pid) for pid in pids)
        client.stdin.close()
        client.wait(RUN_TIMEOUT)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    return (during - before) / streams


def start_up(argv: list[str], runs: int) -> float:
    """Median ms for `argv` to run to its end."""
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, timeout=RUN_TIMEOUT)
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1e3
