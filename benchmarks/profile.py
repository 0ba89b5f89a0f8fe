"""Where a proxy's time per event and memory per idle stream go (for tuning, not a benchmark).

    python benchmarks/profile.py cpu MODE [--streams N --events N --period S] [--spy FILE]
        MODE is tcp, http or framed (as in run.py). Runs the latency workload through
        the proxy and prints its p50 beside a direct run, and the proxy's CPU time per
        event: the difference between a run of `--events` and a run of 2 events, so
        opening the streams is not counted. With `--spy`, py-spy (if installed) samples
        the proxy into FILE (raw format, one line per stack).
    python benchmarks/profile.py memory MODE [--streams N] [--top N]
        Runs the proxy under tracemalloc, opens N idle streams (after a warm-up of 50),
        and prints the Python heap each one keeps, by allocating line and by the innermost
        sseproxy frame (whose code made it).

Each event of the cpu workload arrives on its own wake-up, as in production: every cache
is cold, so figures are several times what a tight loop (benchmarks/engine.py) shows.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from measure import latencies
from paths import FRAMING_SCENARIO, HERE, HOST, BenchError, Children, start_sseproxy, start_upstream

SETTLE = 1.0
"""Seconds for the proxy to close the warm-up streams before the first snapshot."""
TRACED = """\
import gc, os, signal, sys, tracemalloc
tracemalloc.start(30)
target = sys.argv[1]
def dump(*_):
    gc.collect()
    tracemalloc.take_snapshot().dump(target + ".part")
    os.rename(target + ".part", target)
signal.signal(signal.SIGUSR1, dump)
sys.argv = ["sseproxy"] + sys.argv[2:]
from sseproxy.cli import main
main()
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu(args: argparse.Namespace, children: Children) -> None:
    upstream, _ = start_upstream(children)
    framed = args.mode == "framed"
    mode = "tcp" if args.mode == "tcp" else "http"
    route = start_sseproxy(children, args.mode, mode, upstream, framed=framed)
    pid = route.pids[0]
    latencies(route.port, upstream, args.streams, 2, args.period)  # warm up
    before = cpu_seconds(pid)
    latencies(route.port, upstream, args.streams, 2, args.period)
    setup = cpu_seconds(pid) - before
    spy = None
    if args.spy:
        if shutil.which("py-spy") is None:
            raise BenchError("--spy needs py-spy (pip install py-spy)")
        argv = ["py-spy", "record", "-r", "500", "-f", "raw", "-o", args.spy, "-p", str(pid)]
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    direct = latencies(upstream, upstream, args.streams, args.events, args.period)
    before = cpu_seconds(pid)
    got = latencies(route.port, upstream, args.streams, args.events, args.period)
    spent = cpu_seconds(pid) - before - setup
    if spy is not None:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
        spy.wait(60)
    per_event = spent / (args.streams * (args.events - 2)) * 1e6
    # the kernel counts CPU time in clock ticks (10 ms): a small run measures nothing
    cpu_time = f"{per_event:.1f} us per event" if spent >= 0.05 else "too little to measure"
    print(
        f"{args.mode}: p50 {got.p50:.0f} us (direct {direct.p50:.0f}, "
        f"{got.p50 - direct.p50:+.0f}), p99 {got.p99:.0f} (direct {direct.p99:.0f}); "
        f"proxy CPU {cpu_time}"
    )


def memory(args: argparse.Namespace, children: Children) -> None:
    scratch = children.scratch
    upstream, _ = start_upstream(children)
    script = scratch / "traced.py"
    script.write_text(TRACED, encoding="utf-8")
    snapshot = scratch / "snapshot"
    argv = [sys.executable, str(script), str(snapshot), "run", "--listen", f"{HOST}:0"]
    argv += ["--upstream", f"http://{HOST}:{upstream}", "--max-connections", "9000"]
    argv += ["--mode", "tcp" if args.mode == "tcp" else "http"]
    if args.mode == "framed":
        (scratch / "framing.toml").write_text(FRAMING_SCENARIO, encoding="utf-8")
        argv += ["--scenario", str(scratch / "framing.toml")]
        argv += ["--journal", str(scratch / "journal.jsonl")]
    proxy = children.start(argv, "proxy", pipe=True)
    found = children.ready_line(proxy, rf"proxy on http://{re.escape(HOST)}:(\d+)", "proxy")
    port = int(found[1])

    def take() -> tracemalloc.Snapshot:
        os.kill(proxy.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 60
        while not snapshot.exists():
            if time.monotonic() > deadline:
                raise BenchError("the proxy wrote no tracemalloc snapshot in 60 s")
            time.sleep(0.05)
        taken = tracemalloc.Snapshot.load(str(snapshot))
        snapshot.unlink()
        return taken

    IdleStreams(port, 50).close()  # warm-up: first-use caches are not per stream
    time.sleep(SETTLE)  # the proxy lets the warm-up's connections go
    before = take()
    streams = IdleStreams(port, args.streams)
    after = take()
    streams.close()
    report(after.compare_to(before, "traceback"), args.streams, args.top)


class IdleStreams:
    """`count` idle streams held open by streams.py until `close`."""

    def __init__(self, port: int, count: int) -> None:
        argv = [sys.executable, str(HERE / "streams.py"), "idle", str(port), str(count)]
        self.client = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.client.stdout is not None
        if self.client.stdout.readline().strip() != "ready":
            raise BenchError(f"{count} idle streams did not open")

    def close(self) -> None:
        assert self.client.stdin is not None
        self.client.stdin.close()
        self.client.wait(60)


def report(diff: list[tracemalloc.StatisticDiff], streams: int, top: int) -> None:
    root = str(HERE.parent) + os.sep
    total = sum(d.size_diff for d in diff)
    print(f"Python heap kept per idle stream: {total / streams:,.0f} B")

    def where(frame: tracemalloc.Frame) -> str:
        name = frame.filename.removeprefix(root).split("site-packages" + os.sep)[-1]
        return f"{name}:{frame.lineno}"

    by_line: collections.Counter[str] = collections.Counter()
    by_ours: collections.Counter[str] = collections.Counter()
    for entry in diff:
        frames = list(entry.traceback)  # oldest first
        by_line[where(frames[-1])] += entry.size_diff
        ours = [f for f in frames if f.filename.startswith(root + "sseproxy")]
        by_ours[where(ours[-1]) if ours else "(no sseproxy frame)"] += entry.size_diff
    for title, counter in (("allocating line", by_line), ("innermost sseproxy frame", by_ours)):
        print(f"\nbytes per stream, by {title}:")
        for name, size in counter.most_common(top):
            print(f"{size / streams:8,.0f}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    timing = commands.add_parser("cpu", help="CPU time per event and added latency")
    timing.add_argument("mode", choices=("tcp", "http", "framed"))
    timing.add_argument("--streams", type=int, default=1000)
    timing.add_argument("--events", type=int, default=12)
    timing.add_argument("--period", type=float, default=1.0)
    timing.add_argument("--spy", help="py-spy raw profile of the proxy to this file")
    heap = commands.add_parser("memory", help="Python heap per idle stream, by line")
    heap.add_argument("mode", choices=("tcp", "http", "framed"))
    heap.add_argument("--streams", type=int, default=1000)
    heap.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    if args.command == "cpu" and args.events < 3:
        parser.error("--events must be at least 3 (2 are the baseline)")
    children = Children()
    try:
        (cpu if args.command == "cpu" else memory)(args, children)
    except BenchError as error:
        sys.exit(f"profile: {error}")
    finally:
        children.close()


if __name__ == "__main__":
    main()
