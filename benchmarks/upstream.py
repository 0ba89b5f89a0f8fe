"""The benchmark's upstream: a fast SSE server and a TCP echo server, in a process of its own.

    python benchmarks/upstream.py      prints "http PORT echo PORT", then serves until killed

Standard library only, so it never shares a GIL or a scheduler with the proxy or a client.
Bodies are generated ahead of time and written in large blocks from a thread (`sendall`
releases the GIL), so the upstream is never the bottleneck. Every response ends with
`Connection: close`. Routes (`n` = number of events):

- /small?n=N   100-byte events, one HTTP chunk each (a server that flushes every event)
- /big?n=N     64 KiB events, one chunk each
- /packed?n=N  100-byte events packed 655 to a chunk (65,500-byte chunks)
- /bulk?bytes=N  N bytes of application/octet-stream with a Content-Length
- /tick?n=N&period=P&phase=F&group=G  response headers at once, then, from F seconds after
                 /go?group=G: one event every P seconds whose data is time.monotonic_ns() when
                 written (a client connects every stream first, then starts them all)
- /go?group=G   start the ticks of group G
- /idle        one event, then nothing until the client goes away

The echo port sends every byte back (TCP ping-pong).
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import time
from typing import cast
from urllib.parse import parse_qs, urlsplit

SMALL = 100
BIG = 64 * 1024
PACK = 655  # 100-byte events per 64 KiB-ish chunk
BLOCK = 1 << 20  # bytes per write
SEND_TIMEOUT = 600.0


def event(size: int) -> bytes:
    """One SSE event of exactly `size` bytes: "data: xxx...\\n\\n"."""
    return b"data: " + b"x" * (size - 8) + b"\n\n"


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def blocks(unit: bytes, count: int) -> list[tuple[bytes, int]]:
    """(block, repeats) pairs that write `unit` `count` times in blocks of about BLOCK bytes."""
    per = max(1, BLOCK // len(unit))
    whole, rest = divmod(count, per)
    return [(unit * per, whole), (unit * rest, 1)]


def body_plan(route: str, n: int) -> list[tuple[bytes, int]]:
    if route == "/small":
        return [*blocks(chunk(event(SMALL)), n), (b"0\r\n\r\n", 1)]
    if route == "/big":
        return [*blocks(chunk(event(BIG)), n), (b"0\r\n\r\n", 1)]
    packs, rest = divmod(n, PACK)
    plan = blocks(chunk(event(SMALL) * PACK), packs)
    if rest:
        plan.append((chunk(event(SMALL) * rest), 1))
    return [*plan, (b"0\r\n\r\n", 1)]


SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
    b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
)


def send_plan(fd: int, head: bytes, plan: list[tuple[bytes, int]]) -> None:
    """Blocking writes on a duplicate of the connection's socket (run in a thread)."""
    with socket.socket(fileno=os.dup(fd)) as sock:
        sock.settimeout(SEND_TIMEOUT)
        sock.sendall(head)
        for block, repeats in plan:
            for _ in range(repeats):
                sock.sendall(block)


async def serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        target = urlsplit(head.split(b" ", 2)[1].decode("ascii"))
        query = {key: values[0] for key, values in parse_qs(target.query).items()}
        route = target.path
        if route in ("/small", "/big", "/packed", "/bulk"):
            cast(asyncio.ReadTransport, writer.transport).pause_reading()  # the thread writes
            fd = writer.get_extra_info("socket").fileno()
            if route == "/bulk":
                size = int(query["bytes"])
                response = (
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % size
                )
                plan = blocks(b"x", size)
            else:
                response, plan = SSE_HEAD, body_plan(route, int(query["n"]))
            await asyncio.to_thread(send_plan, fd, response, plan)
        elif route == "/tick":
            writer.write(SSE_HEAD)
            await writer.drain()
            began = await group(query["group"])
            start = began + float(query["phase"])
            await tick(writer, int(query["n"]), start, float(query["period"]))
        elif route == "/go":
            group(query["group"]).set_result(time.monotonic())
            writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
        elif route == "/idle":
            writer.write(SSE_HEAD + chunk(b"data: ready\n\n"))
            await reader.read()  # until the client (or proxy) closes
        else:
            writer.write(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, ValueError, KeyError, IndexError):
        pass
    finally:
        writer.close()


GROUPS: dict[str, asyncio.Future[float]] = {}


def group(name: str) -> asyncio.Future[float]:
    """When /go?group=NAME came (a future until then)."""
    if name not in GROUPS:
        GROUPS[name] = asyncio.get_running_loop().create_future()
    return GROUPS[name]


async def tick(writer: asyncio.StreamWriter, n: int, start: float, period: float) -> None:
    for i in range(n):
        await asyncio.sleep(max(0.0, start + i * period - time.monotonic()))
        writer.write(chunk(b"data: %d\n\n" % time.monotonic_ns()))
        await writer.drain()
    writer.write(b"0\r\n\r\n")


async def serve_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.close()


async def main() -> None:
    http = await asyncio.start_server(serve_http, "127.0.0.1", 0, backlog=4096)
    echo = await asyncio.start_server(serve_echo, "127.0.0.1", 0)
    ports = [server.sockets[0].getsockname()[1] for server in (http, echo)]
    print(f"http {ports[0]} echo {ports[1]}", flush=True)
    async with http, echo:
        await asyncio.gather(http.serve_forever(), echo.serve_forever())


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main())
