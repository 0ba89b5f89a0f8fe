"""Run the real HAProxy from a generated config, in the foreground (`haproxy -db -f CFG`).

`haproxy(folder, routes)` routes `/NAME/...` to a backend per route (the prefix stripped),
listens on a free 127.0.0.1 port, waits until it accepts, and stops it on the way out.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.peers.common import HOST, find_binary, free_port, spawn, wait_accepting

HAPROXY = find_binary("haproxy")


def require_haproxy() -> str:
    if HAPROXY is None:
        pytest.skip("haproxy is not installed (apt-get install haproxy); .ci/run installs it")
    return HAPROXY


@dataclass(frozen=True)
class Route:
    name: str  # requests to /name/... go to `upstream` as /...
    upstream: int
    options: list[str] = field(default_factory=list)  # backend lines


def config(port: int, routes: list[Route], timeout_server: str) -> str:
    uses = "".join(f"    use_backend {r.name} if {{ path_beg /{r.name}/ }}\n" for r in routes)
    backends = "".join(
        f"backend {r.name}\n"
        f"    http-request set-path %[path,regsub(^/{r.name}/,/)]\n"
        + "".join(f"    {line}\n" for line in r.options)
        + f"    server s {HOST}:{r.upstream}\n"
        for r in routes
    )
    return f"""\
global
    maxconn 200
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server {timeout_server}
frontend fe
    bind {HOST}:{port}
{uses}{backends}"""


@contextlib.contextmanager
def haproxy(folder: Path, routes: list[Route], *, timeout_server: str = "1s") -> Iterator[int]:
    """A running HAProxy with one backend per route; yields its port."""
    binary = require_haproxy()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    cfg = folder / "haproxy.cfg"
    cfg.write_text(config(port, routes, timeout_server), encoding="utf-8")
    with spawn(binary, "-db", "-f", str(cfg)) as (popen, out):
        wait_accepting(port, popen, out)
        yield port
