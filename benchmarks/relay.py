"""Relay benchmark: the built-in origin, direct and through the proxy, over loopback TCP.

    python benchmarks/relay.py [--quick]

Origin, proxies and client all run in ONE `trio.run` on one thread, over real loopback
sockets. They share one CPU core, so every number includes the origin's and the client's
work, and a ratio to "direct" is the cost the proxy adds on top of both. Cases:

- direct:            client -> origin
- proxy, no fault:   client -> proxy (empty scenario, no journal stream) -> origin;
                     the response body is copied by `link.pump` (the fast path)
- proxy, framing on: client -> proxy -> origin with one idle-timeout fault (timeout 1h,
                     counts = "events"), so the down link frames the SSE stream, plus a
                     Journal writing to an in-memory StringIO, so the journal's Tally
                     frames and counts events too

Workloads: throughput with 64 KiB events (MB/s, 1 MB = 10^6 bytes) and event rate with
100-byte events (events/s). Each measurement is repeated and the best run is kept; the
repeats of the three cases are interleaved so drift hits them alike. Every run checks
that the client received exactly count x size body bytes, and the framed proxy's journal
must have counted every event. Exit status 0, or 1 with a FAILED line.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

import h11
import trio

from sseproxy import origin
from sseproxy.journal import Journal
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.scenario import Scenario, parse_scenario
from sseproxy.server import listen, serve_proxy

HOST = "127.0.0.1"
RECEIVE_BYTES = 256 * 1024
RUN_TIMEOUT = 120.0  # seconds; a stuck run fails loudly instead of hanging
REPEATS = 3

FRAMING_SCENARIO = """\
[scenario]
name = "bench-framing"

[[faults]]
type = "idle-timeout"
timeout = "1h"
counts = "events"
"""


class BenchError(Exception):
    """A run did not deliver what it should have."""


@dataclass(frozen=True)
class Workload:
    title: str
    unit: str  # "MB/s" or "events/s"
    count: int
    size: int

    @property
    def target(self) -> str:
        return f"/events?interval=0&heartbeat=0&count={self.count}&size={self.size}"

    @property
    def total_bytes(self) -> int:
        return self.count * self.size

    def rate(self, seconds: float) -> float:
        if self.unit == "MB/s":
            return self.total_bytes / seconds / 1e6
        return self.count / seconds


@dataclass(frozen=True, order=True)
class Timing:
    wall: float
    cpu: float  # this process's CPU time: all of origin, proxy and client


@dataclass(frozen=True)
class Case:
    name: str
    port: int


async def fetch(port: int, target: str) -> int:
    """GET `target` with a minimal h11 client; the number of body bytes up to EndOfMessage."""
    stream = await trio.open_tcp_stream(HOST, port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        request = h11.Request(
            method="GET",
            target=target,
            headers=[("Host", f"{HOST}:{port}"), ("Accept", "text/event-stream")],
        )
        await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
        received = 0
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(RECEIVE_BYTES))
            elif type(event) is h11.Data:
                received += len(event.data)
            elif type(event) is h11.Response:
                if event.status_code != 200:
                    raise BenchError(f"port {port}: status {event.status_code}, expected 200")
            elif type(event) is h11.EndOfMessage:
                return received
            else:
                raise BenchError(f"port {port}: unexpected {event!r} after {received} bytes")


async def measure(case: Case, workload: Workload) -> Timing:
    """One complete response, from connect to EndOfMessage; checks the body size."""
    with trio.fail_after(RUN_TIMEOUT):
        wall, cpu = time.perf_counter(), time.process_time()
        received = await fetch(case.port, workload.target)
        timing = Timing(time.perf_counter() - wall, time.process_time() - cpu)
    if received != workload.total_bytes:
        raise BenchError(
            f"{case.name}: received {received} body bytes, expected "
            f"{workload.count} x {workload.size} = {workload.total_bytes}"
        )
    return timing


async def start_proxy(
    nursery: trio.Nursery,
    upstream: Upstream,
    scenario: Scenario,
    journal: Journal | None,
) -> tuple[Proxy, int]:
    listener = await listen(HOST, 0)
    port: int = listener.socket.getsockname()[1]
    proxy = Proxy(ProxySettings(upstream), scenario, journal, seed=1)
    await nursery.start(serve_proxy, proxy, listener)
    return proxy, port


async def wait_until(check: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    try:
        with trio.fail_after(timeout):
            while not check():
                await trio.sleep(0.01)
    except trio.TooSlowError:
        raise BenchError(f"timed out waiting for {what}") from None


def journal_records(buffer: io.StringIO, kind: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in buffer.getvalue().splitlines()]
    return [record for record in records if record["kind"] == kind]


async def check_framing(buffer: io.StringIO, expected: list[int]) -> None:
    """The framed proxy really framed: its journal counted every event of every run."""
    await wait_until(
        lambda: len(journal_records(buffer, "closed")) >= len(expected),
        "the framed proxy's journal to record every connection",
    )
    counted = sorted(r["events_down"] for r in journal_records(buffer, "closed"))
    if counted != sorted(expected):
        raise BenchError(f"framed journal counted events {counted}, expected {sorted(expected)}")
    requests = journal_records(buffer, "request")
    if any(r.get("faults") != ["idle-timeout"] for r in requests):
        raise BenchError("a framed request ran without the idle-timeout fault")
    if journal_records(buffer, "fault"):
        raise BenchError("the idle-timeout fault fired during the benchmark")


def print_table(workload: Workload, best: dict[str, Timing]) -> None:
    print(f"\n{workload.title}: best of {REPEATS}")
    print(f"  {'case':<20} {workload.unit:>12} {'vs direct':>10} {'best run':>10} {'cpu/wall':>9}")
    direct = workload.rate(best["direct"].wall)
    for name, timing in best.items():
        rate = workload.rate(timing.wall)
        print(
            f"  {name:<20} {rate:>12,.1f} {rate / direct:>9.2f}x {timing.wall:>9.3f}s"
            f" {timing.cpu / timing.wall:>8.0%}"
        )


async def main(quick: bool) -> None:
    throughput = Workload("throughput, 64 KiB events", "MB/s", 200 if quick else 1000, 64 * 1024)
    event_rate = Workload(
        "event rate, 100-byte events", "events/s", 10_000 if quick else 30_000, 100
    )
    workloads = [throughput, event_rate]
    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        origin_port: int = await nursery.start(
            origin.serve, HOST, 0, origin.OriginSettings(heartbeat=0)
        )
        upstream = Upstream(HOST, origin_port)
        fast, fast_port = await start_proxy(nursery, upstream, Scenario(name="none"), None)
        buffer = io.StringIO()
        framed, framed_port = await start_proxy(
            nursery,
            upstream,
            parse_scenario(FRAMING_SCENARIO, file="bench-framing.toml"),
            Journal(buffer, keep=False),
        )
        if fast.counts_events or fast.scenario.faults:
            raise BenchError("the no-fault proxy would frame: it is not the fast path")
        if not framed.counts_events:
            raise BenchError("the framed proxy's journal would not count events")
        cases = [
            Case("direct", origin_port),
            Case("proxy, no fault", fast_port),
            Case("proxy, framing on", framed_port),
        ]
        print(
            f"sseproxy relay benchmark{' (--quick)' if quick else ''}: origin, proxies and "
            "client in one trio.run, one thread, loopback TCP"
        )
        print(
            f"Python {platform.python_version()}, trio {version('trio')}, "
            f"h11 {version('h11')}, {platform.machine()}"
        )
        print(
            f"throughput: {throughput.count} x 64 KiB = {throughput.total_bytes / 2**20:.1f} MiB"
            f" per run; event rate: {event_rate.count:,} x 100 B per run"
        )
        results: dict[str, dict[str, Timing]] = {w.title: {} for w in workloads}
        for workload in workloads:
            best = results[workload.title]
            for _ in range(REPEATS):
                for case in cases:
                    timing = await measure(case, workload)
                    best[case.name] = min(timing, best.get(case.name, timing))
        await check_framing(buffer, [w.count for w in workloads for _ in range(REPEATS)])
        for workload in workloads:
            print_table(workload, results[workload.title])
        print(
            "\ncpu/wall: this process's CPU time over wall time in the best run; well under "
            "100% means other processes took the CPU (or the run waited), so rates are low"
        )
        print(
            f"checked: every run received count x size body bytes; the framed proxy's "
            f"journal counted every event. total {time.perf_counter() - began:.1f}s"
        )
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller runs (under ~15 s)")
    args = parser.parse_args()
    try:
        trio.run(main, args.quick)
    except BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        sys.exit(1)
