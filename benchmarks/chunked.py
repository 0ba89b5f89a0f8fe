"""A benchmark, not a test: the fast chunked reader against h11 (issue 10).

    python3 benchmarks/chunked.py micro          µs per 100-byte chunk, 64 KiB reads
    python3 benchmarks/chunked.py e2e BEFORE [SCENARIO]
                                                  events/s through `sseproxy run` with the
                                                  package in BEFORE (a checkout) and here

Both print medians of interleaved repeats (the machine may be busy with other work).
`e2e` runs a raw upstream that sends one pre-built chunked body of 100-byte events (one
chunk per event) and reads it with `curl -sN -o /dev/null`, checking the byte count.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import h11

from sseproxy.chunked import Dechunker

EVENT = b"data: " + b"x" * 92 + b"\n\n"  # 100 bytes
CHUNKED = b"64\r\n" + EVENT + b"\r\n"
HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"
HERE = Path(__file__).resolve().parent.parent


def per_chunk_h11(reads: list[bytes], chunks: int) -> float:
    """What `sseproxy.http._read_body` does per read: every Data event, joined."""
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=16384)
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "t")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(HEAD)
    conn.next_event()
    started = time.perf_counter()
    total = 0
    for read in reads:
        conn.receive_data(read)
        parts = []
        while (event := conn.next_event()) is not h11.NEED_DATA:
            parts.append(event.data)  # type: ignore[union-attr]
        total += len(b"".join(parts))
    elapsed = time.perf_counter() - started
    assert total == len(EVENT) * chunks
    return elapsed / chunks * 1e6


def per_chunk_fast(reads: list[bytes], chunks: int) -> float:
    dechunker = Dechunker(16384)
    started = time.perf_counter()
    total = sum(len(dechunker.feed(read)) for read in reads)
    elapsed = time.perf_counter() - started
    assert total == len(EVENT) * chunks
    return elapsed / chunks * 1e6


def micro(chunks: int = 20_000, repeats: int = 15) -> None:
    wire = CHUNKED * chunks
    reads = [wire[i : i + 65536] for i in range(0, len(wire), 65536)]
    old: list[float] = []
    new: list[float] = []
    for _ in range(repeats):
        old.append(per_chunk_h11(reads, chunks))
        new.append(per_chunk_fast(reads, chunks))
    a, b = statistics.median(old), statistics.median(new)
    print(f"h11 {a:.2f} µs/chunk, fast {b:.2f} µs/chunk: {a / b:.1f}x (median of {repeats})")


def upstream(events: int) -> tuple[socket.socket, int]:
    """A raw server answering every request with the pre-built body, in a thread."""
    response = HEAD + CHUNKED * events + b"0\r\n\r\n"
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            seen = b""
            while b"\r\n\r\n" not in seen:
                part = conn.recv(65536)
                if not part:
                    return
                seen += part
            conn.sendall(response)
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener, listener.getsockname()[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def e2e(before: str, scenario: str = "", events: int = 200_000, repeats: int = 5) -> None:
    listener, up = upstream(events)
    ports = {"direct": up}
    proxies = []
    for name, path in [("before", before), ("after", str(HERE))]:
        port = ports[name] = free_port()
        command = [sys.executable, "-m", "sseproxy", "run", "--listen", f"127.0.0.1:{port}"]
        command += ["--upstream", f"http://127.0.0.1:{up}"]
        command += ["--scenario", str(Path(scenario).resolve())] if scenario else []
        env = {**os.environ, "PYTHONPATH": path}
        out = subprocess.DEVNULL
        proxies.append(subprocess.Popen(command, env=env, cwd=path, stdout=out, stderr=out))
    time.sleep(3)  # both proxies listening
    rates: dict[str, list[float]] = {name: [] for name in ports}
    try:
        for _ in range(repeats):
            for name, port in ports.items():
                url = f"http://127.0.0.1:{port}/events"
                started = time.perf_counter()
                curl = subprocess.run(
                    ["curl", "-sN", "-o", "/dev/null", "-w", "%{size_download}", url],
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                elapsed = time.perf_counter() - started
                assert int(curl.stdout) == len(EVENT) * events, (name, curl.stdout)
                rates[name].append(events / elapsed)
    finally:
        for proxy in proxies:
            proxy.terminate()
            proxy.wait()
        listener.close()
    for name, runs in rates.items():
        each = " ".join(f"{rate / 1e3:.0f}" for rate in runs)
        print(f"{name:7} {statistics.median(runs) / 1e3:7.1f} k events/s (runs: {each})")
    ratio = statistics.median(rates["after"]) / statistics.median(rates["before"])
    print(f"after / before: {ratio:.1f}x")


if __name__ == "__main__":
    if sys.argv[1:2] == ["micro"]:
        micro()
    elif sys.argv[1:2] == ["e2e"] and len(sys.argv) in (3, 4):
        e2e(sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else "")
    else:
        sys.exit(__doc__)
