"""What the toxiproxy tests share: sseproxy's toxiproxy API in a background trio thread,
the real toxiproxy-server (skipped when absent), and a plain HTTP client for both."""

from __future__ import annotations

import contextlib
import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass
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
            await nursery.start(
                lambda task_status: serve_toxiproxy_api(
                    fleet, listener, token=token, task_status=task_status
                )
            )
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
