"""CI smoke check of benchmarks/run.py: tiny workloads, sseproxy paths only; not a timed test.

The benchmark checks every download's status and byte count itself and exits 1 when one is
wrong; these tests check that it runs end to end, that its JSON has every workload for every
path, and that a wrong byte count really fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from measure import Download, download  # noqa: E402
from paths import BenchError, Children, start_upstream  # noqa: E402

PATHS = ["direct", "sseproxy-tcp", "sseproxy-http", "sseproxy-framed"]


def test_quick_run_reports_every_workload_for_every_path() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "run.py"),
            "--quick",
            "--json",
            "--paths",
            ",".join(PATHS),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert {"cpu", "cores", "python", "trio", "h11"} <= set(report["machine"])
    results = report["results"]
    assert set(results) == {
        "small", "big", "packed", "bulk", "ping_pong", "latency", "memory", "startup"
    }  # fmt: skip
    for key in ("small", "big", "packed"):
        assert list(results[key]["paths"]) == PATHS
        for result in results[key]["paths"].values():
            assert result["median"] > 0 and result["count"] > 0 and "vs_direct" in result
    assert list(results["bulk"]["paths"]) == ["direct", "sseproxy-tcp", "sseproxy-http"]
    assert list(results["ping_pong"]["paths"]) == ["direct", "sseproxy-tcp"]
    assert set(results["latency"]["paths"]["sseproxy-framed"]) >= {"p50", "p99", "added_p50"}
    assert list(results["memory"]["paths"]) == PATHS[1:]
    assert results["startup"]["paths"]["sseproxy --help"]["median"] > 0


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    children = Children()
    try:
        yield start_upstream(children)[0]
    finally:
        children.close()


@pytest.mark.parametrize(
    "workload",
    [
        Download("small", "", "/small", "n", 100, "events/s"),
        Download("big", "", "/big", "n", 65536, "MB/s"),
        Download("packed", "", "/packed", "n", 100, "events/s"),
        Download("bulk", "", "/bulk", "bytes", 1, "MB/s"),
    ],
    ids=lambda workload: workload.key,
)
def test_downloads_are_checked_to_the_byte(upstream: int, workload: Download) -> None:
    assert download(upstream, workload, 700) > 0  # 700 events: one packed chunk and a part
    wrong = Download(workload.key, "", workload.route, workload.param, workload.size + 1, "")
    with pytest.raises(BenchError, match="body bytes, expected 200 and"):
        download(upstream, wrong, 700)


def test_the_profiler_reports_cpu_per_event_and_memory_per_stream() -> None:
    """benchmarks/profile.py, tiny: the figures are there and plausible, not timed."""

    def profile(*argv: str) -> str:
        done = subprocess.run(
            [sys.executable, str(BENCHMARKS / "profile.py"), *argv],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    timing = profile("cpu", "http", "--streams", "10", "--events", "3", "--period", "0.05")
    assert re.match(
        r"http: p50 \d+ us \(direct \d+, [+-]\d+\), .* proxy CPU (too little|[\d.]+ us)", timing
    )
    heap = profile("memory", "tcp", "--streams", "20", "--top", "3")
    kept = re.match(r"Python heap kept per idle stream: ([\d,]+) B", heap)
    assert kept and 1000 < int(kept[1].replace(",", "")) < 100_000, heap
    assert "by innermost sseproxy frame" in heap and "sseproxy/" in heap
