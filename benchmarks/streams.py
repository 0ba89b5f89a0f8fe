"""Many-stream client, in a process of its own (asyncio, standard library only).

    python benchmarks/streams.py tick PORT UPSTREAM STREAMS EVENTS PERIOD
        STREAMS streams of /tick, EVENTS events each, one every PERIOD s, spread over the
        period; the events start (GET /go on the UPSTREAM port) once every stream is open, so
        connecting is not measured. Prints one JSON line: {"latencies_us": [...],
        "events": N}: each event's arrival time minus the upstream's stamp
    python benchmarks/streams.py idle PORT STREAMS
        opens STREAMS streams of /idle, waits for each one's first event, prints "ready",
        then holds them open until stdin closes

Its own overhead (parsing, scheduling) is part of every figure; the benchmark subtracts it by
measuring "direct" in the same run and reporting the difference.
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
import uuid

CONNECT_BATCH = 100  # connections opened at once


async def open_stream(
    port: int, target: str, status: bytes = b"HTTP/1.1 200"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
    writer.write(request.encode() + b"\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(status):
        raise SystemExit(f"{target}: {head.splitlines()[0]!r}, expected {status.decode()}")
    return reader, writer


async def open_all(
    port: int, targets: list[str]
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    opened = []
    for start in range(0, len(targets), CONNECT_BATCH):
        batch = targets[start : start + CONNECT_BATCH]
        opened += await asyncio.gather(*(open_stream(port, t) for t in batch))
    return opened


async def read_ticks(reader: asyncio.StreamReader, events: int, out: list[int]) -> None:
    """Chunked SSE: every line "data: STAMP" is one event."""
    seen = 0
    while seen < events:
        line = await reader.readline()
        if not line:
            raise SystemExit(f"stream ended after {seen} of {events} events")
        if line.startswith(b"data: "):
            out.append(time.monotonic_ns() - int(line[6:]))
            seen += 1


async def tick(port: int, upstream: int, streams: int, events: int, period: float) -> None:
    name = uuid.uuid4().hex
    targets = [
        f"/tick?n={events}&period={period}&phase={period * (0.1 + i / streams):.6f}&group={name}"
        for i in range(streams)
    ]
    opened = await open_all(port, targets)
    _, go = await open_stream(upstream, f"/go?group={name}", b"HTTP/1.1 204")
    go.close()
    latencies: list[int] = []
    await asyncio.gather(*(read_ticks(reader, events, latencies) for reader, _ in opened))
    for _, writer in opened:
        writer.close()
    print(json.dumps({"latencies_us": [ns / 1000 for ns in latencies], "events": len(latencies)}))


async def idle(port: int, streams: int) -> None:
    opened = await open_all(port, ["/idle"] * streams)
    await asyncio.gather(*(reader.readuntil(b"\n\n") for reader, _ in opened))
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for _, writer in opened:
        writer.close()


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if sys.argv[1] == "tick":
        port, upstream, streams, events = map(int, sys.argv[2:6])
        asyncio.run(tick(port, upstream, streams, events, float(sys.argv[6])))
    else:
        asyncio.run(idle(int(sys.argv[2]), int(sys.argv[3])))
