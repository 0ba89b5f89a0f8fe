"""What the toxiproxy tests share: sseproxy's toxiproxy API in a background trio thread,
the real toxiproxy-server (skipped when absent), and a plain HTTP client for both."""

from __future__ import annotations

import contextlib
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from sseproxy.fleet import Fleet
from sseproxy.journal import Journal
from sseproxy.testing import BackgroundTrio
from sseproxy.toxiproxy.api import serve_toxiproxy_api
from tests.peers.common import HOST, free_port, spawn, wait_accepting

PEERS = Path(__file__).resolve().parents[1] / ".." / "shared" / "peers"
SERVER = PEERS / "toxiproxy-server"
CLI = PEERS / "toxiproxy-cli"


@dataclass
class Reply:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(base: str, method: str, path: str, body: Any = None, raw: bytes | None = None) -> Reply:
    """One request, a fresh connection each (as the clients do); JSON `body` or `raw` bytes."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        return Reply(response.status, response.getheader("Content-Type") or "", response.read())
    finally:
        connection.close()


@dataclass
class SseproxyApi:
    url: str
    fleet: Fleet
    journal: Journal
    loop: BackgroundTrio


@contextlib.contextmanager
def sseproxy_api(token: str | None = None) -> Iterator[SseproxyApi]:
    """sseproxy's toxiproxy API on a free loopback port, its journal kept."""

    async def serve(task_status: trio.TaskStatus[tuple[Fleet, Journal, int]]) -> None:
        journal = Journal(keep=True)
        async with trio.open_nursery() as nursery:
            fleet = Fleet(journal, nursery, seed=1)
            listener = (await trio.open_tcp_listeners(0, host=HOST))[0]
            port = listener.socket.getsockname()[1]
            await nursery.start(partial(serve_toxiproxy_api, fleet, listener, token=token))
            task_status.started((fleet, journal, port))

    with BackgroundTrio() as loop:
        fleet, journal, port = loop.start(serve)
        yield SseproxyApi(f"http://{HOST}:{port}", fleet, journal, loop)


@contextlib.contextmanager
def real_toxiproxy() -> Iterator[str]:
    """The real toxiproxy-server on a free loopback port (skip when it is absent)."""
    if not SERVER.exists():
        pytest.skip(f"the real toxiproxy-server is not at {SERVER} (a user's clone has none)")
    port = free_port()
    command = (str(SERVER), "-host", HOST, "-port", str(port))
    with spawn(*command) as (popen, out):
        wait_accepting(port, popen, out)
        yield f"http://{HOST}:{port}"


# -- traffic through a proxy ----------------------------------------------------------------


@dataclass
class Seen:
    """What a TCP client saw: (seconds since connecting, bytes) per recv, and the end."""

    reads: list[tuple[float, bytes]]
    end: str
    """'eof', 'reset' or 'timeout'."""
    ended_at: float

    @property
    def data(self) -> bytes:
        return b"".join(chunk for _, chunk in self.reads)

    @property
    def first_at(self) -> float | None:
        return self.reads[0][0] if self.reads else None


@contextlib.contextmanager
def tcp_upstream(payload: bytes, *, linger: float = 0.0) -> Iterator[int]:
    """A TCP server on a free port: every client gets `payload`, then (after `linger`
    seconds) a FIN. Runs in a thread; yields its port."""
    import socket
    import threading

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, 0))
    server.listen()
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            conn.sendall(payload)
            if linger:
                stop.wait(linger)
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(5)
            while conn.recv(65536):
                pass

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        with contextlib.suppress(OSError):  # wakes the accept() blocked in the thread
            socket.create_connection((HOST, server.getsockname()[1]), timeout=1).close()
        thread.join(5)
        server.close()


def read_all(port: int, *, send: bytes = b"", timeout: float = 5.0) -> Seen:
    """Connect to `port`, send `send`, and read until EOF, RST or `timeout`."""
    import socket
    import time

    start = time.monotonic()
    reads: list[tuple[float, bytes]] = []
    with socket.create_connection((HOST, port), timeout=timeout) as conn:
        if send:
            conn.sendall(send)
        while True:
            try:
                chunk = conn.recv(65536)
            except ConnectionResetError:
                return Seen(reads, "reset", time.monotonic() - start)
            except TimeoutError:
                return Seen(reads, "timeout", time.monotonic() - start)
            if not chunk:
                return Seen(reads, "eof", time.monotonic() - start)
            reads.append((time.monotonic() - start, chunk))
