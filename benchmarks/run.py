"""sseproxy against direct, nginx and toxiproxy: every path and workload in one run.

    python benchmarks/run.py [--quick] [--json] [--paths direct,sseproxy-http,...]

Upstream (benchmarks/upstream.py), proxies and clients are separate processes on 127.0.0.1.
Repeats are interleaved (repeat 1 of every path, then repeat 2, ...) so drift hits every path
alike, and each figure is the median of its repeats. Exit status 0, or 1 with a FAILED line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from importlib.metadata import version
from typing import Any

from measure import Download, download, idle_rss, latencies, ping_pong, start_up
from paths import (
    BenchError,
    Children,
    Route,
    sseproxy_tcp,
    start_nginx,
    start_sseproxy,
    start_toxiproxy,
    start_upstream,
    unavailable,
)
from table import render

PATHS = ["direct", "sseproxy-tcp", "sseproxy-http", "sseproxy-framed", "nginx", "toxiproxy"]
SSEPROXY = PATHS[1:4]
SMALL = Download("small", "100-byte events, one HTTP chunk each", "/small", "n", 100, "events/s")
BIG = Download("big", "64 KiB events, one HTTP chunk each", "/big", "n", 65536, "MB/s")
PACKED = Download(
    "packed", "100-byte events packed into 64 KiB chunks", "/packed", "n", 100, "events/s"
)
BULK = Download("bulk", "bulk: 1 GiB over one connection", "/bulk", "bytes", 1, "MB/s")


@dataclass(frozen=True)
class Settings:
    repeats: int
    seconds: float  # a throughput run's target length (its count is calibrated); 0: fixed
    first: dict[str, int]  # count of the warm-up run (and of every run when seconds == 0)
    cap: dict[str, int]  # most count per run
    bulk_bytes: int
    streams: int  # latency: concurrent streams
    events: int  # latency: events per stream
    period: float  # latency: seconds between a stream's events
    latency_repeats: int
    rounds: int  # ping-pong round trips per run
    idle_streams: int
    fresh: bool  # measure RSS in freshly started proxies
    settle: float  # seconds between the last idle stream's first event and reading RSS
    startup_runs: int


FULL = Settings(
    repeats=5,
    seconds=1.0,
    first={"small": 5_000, "big": 200, "packed": 5_000},
    cap={"small": 20_000_000, "big": 50_000, "packed": 50_000_000},
    bulk_bytes=1 << 30,
    streams=1000,
    events=5,
    period=1.0,
    latency_repeats=5,
    rounds=10_000,
    idle_streams=5000,
    fresh=True,
    settle=0.5,
    startup_runs=11,
)
QUICK = Settings(
    repeats=2,
    seconds=0.0,
    first={"small": 2_000, "big": 20, "packed": 2_000},
    cap={"small": 2_000, "big": 20, "packed": 2_000},
    bulk_bytes=4 << 20,
    streams=10,
    events=3,
    period=0.05,
    latency_repeats=1,
    rounds=200,
    idle_streams=20,
    fresh=False,
    settle=0.0,
    startup_runs=1,
)


def machine() -> dict[str, Any]:
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model")]
    model = next((m for m in models if not m.isdigit()), platform.processor())
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True, timeout=10).stdout
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "trio": version("trio"),
        "h11": version("h11"),
        "curl": curl.split()[1] if curl else None,
        "load_average_start": os.getloadavg(),
    }


def median_of(runs: list[float]) -> dict[str, Any]:
    return {"median": statistics.median(runs), "runs": runs}


def ratios(results: dict[str, dict[str, Any]], key: str = "median") -> None:
    """Add each path's ratio to direct and to toxiproxy (where both were measured)."""
    for against in ("direct", "toxiproxy"):
        if against in results:
            base = results[against][key]
            for result in results.values():
                result[f"vs_{against}"] = result[key] / base if base else None


def interleaved(
    routes: list[Route], repeats: int, run: Callable[[Route], float]
) -> dict[str, dict[str, Any]]:
    runs: dict[str, list[float]] = {route.name: [] for route in routes}
    for _ in range(repeats):
        for route in routes:
            runs[route.name].append(run(route))
    return {name: median_of(values) for name, values in runs.items()}


def fetch(route: Route, workload: Download, count: int) -> float:
    """Seconds for one download; counts the events delivered through `route`."""
    seconds = download(route.port, workload, count)
    if workload.key != "bulk":
        route.events += count
    return seconds


def throughput(routes: list[Route], workload: Download, settings: Settings) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for route in routes:  # warm-up run, which also sizes the measured runs
        count = first = settings.first.get(workload.key, settings.bulk_bytes)
        cap = settings.cap.get(workload.key, count)
        seconds = fetch(route, workload, count)
        while seconds < settings.seconds / 10 and count < cap:  # too short to size from
            count = min(count * 10, cap)
            seconds = fetch(route, workload, count)
        wanted = int(count / seconds * settings.seconds) if settings.seconds else count
        counts[route.name] = max(first, min(wanted, cap))
    results = interleaved(
        routes,
        settings.repeats,
        lambda r: workload.rate(counts[r.name], fetch(r, workload, counts[r.name])),
    )
    for name, result in results.items():
        result["count"] = counts[name]
    ratios(results)
    return {"title": workload.title, "unit": workload.unit, "paths": results}


def latency(routes: list[Route], upstream: int, settings: Settings) -> dict[str, Any]:
    runs: dict[str, list[tuple[float, float]]] = {route.name: [] for route in routes}
    for _ in range(settings.latency_repeats):
        for route in routes:
            got = latencies(
                route.port, upstream, settings.streams, settings.events, settings.period
            )
            runs[route.name].append((got.p50, got.p99))
            route.events += got.events
    results: dict[str, dict[str, Any]] = {}
    for name, values in runs.items():
        results[name] = {
            "p50": statistics.median(v[0] for v in values),
            "p99": statistics.median(v[1] for v in values),
            "runs": values,
        }
    if "direct" in results:
        for result in results.values():
            result["added_p50"] = result["p50"] - results["direct"]["p50"]
            result["added_p99"] = result["p99"] - results["direct"]["p99"]
    return {
        "title": f"latency per event, {settings.streams:,} streams x 1 event per "
        f"{settings.period:g} s",
        "unit": "us",
        "paths": results,
    }


def memory(
    children: Children, routes: list[Route], upstream: tuple[int, int], settings: Settings
) -> dict[str, Any]:
    """RSS per idle stream; with settings.fresh, in freshly started proxies (no earlier garbage)."""
    results: dict[str, dict[str, Any]] = {}
    proxies = [route for route in routes if route.name != "direct"]
    if settings.fresh:
        proxies = start_all(children, [f"{route.name}-memory" for route in proxies], upstream)
    for route in proxies:
        download(route.port, SMALL, 100)  # warm: imports and first-connection allocations
        per_stream = idle_rss(route.port, route.pids, settings.idle_streams, settings.settle)
        name = route.name.removesuffix("-memory")
        results[name] = {"median": per_stream / 1024, "streams": settings.idle_streams}
        if settings.fresh:
            for process in [p for p in children.processes if p.pid in route.pids]:
                children.stop(process)
    ratios(results)
    return {
        "title": f"RSS per idle stream at {settings.idle_streams:,} streams",
        "unit": "KiB",
        "paths": results,
    }


def start_all(children: Children, names: list[str], upstream: tuple[int, int]) -> list[Route]:
    """Start the paths' servers side by side (each takes a few hundred ms to start)."""
    with ThreadPoolExecutor(max(1, len(names))) as pool:
        return list(pool.map(lambda name: start(children, name, upstream), names))


def start(children: Children, name: str, upstream: tuple[int, int]) -> Route:
    http, echo = upstream
    kind = name.removesuffix("-memory")
    if kind == "direct":
        return Route("direct", http, echo)
    if kind == "sseproxy-tcp":
        return sseproxy_tcp(children, name, http, echo)
    if kind == "sseproxy-http":
        return start_sseproxy(children, name, "http", http)
    if kind == "sseproxy-framed":
        return start_sseproxy(children, name, "http", http, framed=True)
    if kind == "nginx":
        return start_nginx(children, name, http)
    return start_toxiproxy(children, name, http, echo)


def check_framed(children: Children, expected: int) -> None:
    """The framed proxy really framed: its journal counted every event, and no fault fired."""
    journal = children.scratch / "sseproxy-framed.jsonl"
    deadline = time.monotonic() + 10
    counted = -1
    while time.monotonic() < deadline:
        records = [json.loads(line) for line in journal.read_text().splitlines() if line]
        if any(record["kind"] == "fault" for record in records):
            raise BenchError("the framed proxy's idle-timeout fault fired during the benchmark")
        counted = sum(r.get("events_down", 0) for r in records if r["kind"] == "closed")
        if counted >= expected:
            break
        time.sleep(0.05)
    if counted != expected:
        raise BenchError(
            f"the framed proxy's journal counted {counted} events, expected {expected}"
        )


WORKLOADS = ("small", "big", "packed", "bulk", "ping_pong", "latency", "memory", "startup")


def run(
    settings: Settings,
    names: list[str],
    say: Callable[[str], None],
    workloads: tuple[str, ...] = WORKLOADS,
) -> dict[str, Any]:
    report: dict[str, Any] = {"machine": machine(), "settings": asdict(settings), "skipped": {}}
    children = Children()
    try:
        upstream = start_upstream(children)
        for name in names:
            if reason := unavailable(name):
                report["skipped"][name] = reason
                say(f"skipping {name}: {reason}")
        routes = start_all(children, [n for n in names if n not in report["skipped"]], upstream)
        names = [route.name for route in routes]
        say("paths: " + ", ".join(names))
        results: dict[str, Any] = {}
        for workload in (SMALL, BIG, PACKED):
            if workload.key not in workloads:
                continue
            say(f"measuring {workload.title} ...")
            results[workload.key] = throughput(routes, workload, settings)
        if "bulk" in workloads:
            say(f"measuring bulk: {settings.bulk_bytes:,} bytes over one connection ...")
            bulk_routes = [r for r in routes if r.name != "sseproxy-framed"]
            results["bulk"] = throughput(bulk_routes, BULK, settings)
            results["bulk"]["title"] = (
                f"bulk: {settings.bulk_bytes / 2**20:g} MiB over one connection"
            )
        if "ping_pong" in workloads:
            say("measuring 1-byte ping-pong ...")
            results["ping_pong"] = ping_pongs(routes, settings)
        if "latency" in workloads:
            say("measuring latency per event ...")
            results["latency"] = latency(routes, upstream[0], settings)
        for route in routes:
            if route.name == "sseproxy-framed" and route.events:
                check_framed(children, route.events)
        if "memory" in workloads:
            say(f"measuring RSS at {settings.idle_streams:,} idle streams ...")
            results["memory"] = memory(children, routes, upstream, settings)
        if "startup" in workloads:
            say("measuring start-up ...")
            results["startup"] = startup(settings)
        report["results"] = results
        report["machine"]["load_average_end"] = os.getloadavg()
        return report
    finally:
        children.close()


def ping_pongs(routes: list[Route], settings: Settings) -> dict[str, Any]:
    echo_routes = [r for r in routes if r.echo_port is not None]
    pongs = interleaved(
        echo_routes,
        settings.repeats,
        lambda r: ping_pong(r.echo_port or 0, settings.rounds, r.name),
    )
    for result in pongs.values():
        if "direct" in pongs:
            result["added"] = result["median"] - pongs["direct"]["median"]
    ratios(pongs)
    return {"title": "1-byte ping-pong round trip", "unit": "us", "paths": pongs}


def startup(settings: Settings) -> dict[str, Any]:
    runs = settings.startup_runs
    return {
        "title": f"start-up, median of {runs} runs",
        "unit": "ms",
        "paths": {
            "sseproxy --help": {
                "median": start_up([sys.executable, "-m", "sseproxy", "--help"], runs)
            },
            "import trio": {"median": start_up([sys.executable, "-c", "import trio"], runs)},
            "python -c pass": {"median": start_up([sys.executable, "-c", "pass"], runs)},
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny workloads (a smoke check)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--paths", default=",".join(PATHS), help=f"comma-separated subset of {','.join(PATHS)}"
    )
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)}",
    )
    args = parser.parse_args()
    workloads = tuple(w for w in args.workloads.split(",") if w)
    if unknown_workloads := sorted(set(workloads) - set(WORKLOADS)):
        parser.error(f"unknown workload {', '.join(unknown_workloads)}")
    names = [name for name in args.paths.split(",") if name]
    if unknown := sorted(set(names) - set(PATHS)):
        parser.error(f"unknown path {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    began = time.perf_counter()

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    try:
        report = run(QUICK if args.quick else FULL, names, say, workloads)
    except BenchError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; every child stopped", file=sys.stderr)
        return 130
    report["seconds"] = round(time.perf_counter() - began, 1)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(render(report))
        print(f"\ntotal {report['seconds']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
