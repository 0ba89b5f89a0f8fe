"""The processes a benchmark runs: the upstream and every proxy, each a real subprocess.

Every server listens on 127.0.0.1 on a free port; `Children` stops every process it started,
by its PID, when the run ends (also on Ctrl-C or a failure).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
STARTUP = 20.0  # seconds a server may take to start
NGINX = Path("/usr/sbin/nginx")
TOXIPROXY = HERE.parent.parent / "shared" / "peers" / "toxiproxy-server"
MAX_CONNECTIONS = 9000  # sseproxy's --max-connections: room for 5,000 idle streams

FRAMING_SCENARIO = """\
[scenario]
name = "bench-framing"

[[faults]]
type = "idle-timeout"
timeout = "1h"
counts = "events"
"""


class BenchError(Exception):
    """A run did not deliver what it should have, or a server did not start."""


@dataclass
class Route:
    """One way from the client to the upstream: where to connect, and which processes to weigh."""

    name: str
    port: int  # HTTP (or raw TCP) port in front of the upstream's HTTP port
    echo_port: int | None = None  # raw TCP port in front of the echo server (TCP paths only)
    pids: list[int] = field(default_factory=list)  # whose RSS is the proxy's
    events: int = 0  # SSE events delivered through it so far (checked against a journal)


@dataclass
class Children:
    """Every subprocess of the run and a scratch directory; `close` stops them all."""

    scratch: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ssebench-")))
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, argv: list[str], name: str, pipe: bool = False) -> subprocess.Popen[bytes]:
        """Output goes to NAME.log (a full pipe would stall a chatty server, like toxiproxy);
        with `pipe`, stdout is a pipe for `ready_line`, drained to the log after it."""
        log = (self.scratch / f"{name}.log").open("wb")
        stdout = subprocess.PIPE if pipe else log
        process = subprocess.Popen(argv, stdout=stdout, stderr=log, stdin=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def ready_line(
        self, process: subprocess.Popen[bytes], pattern: str, name: str
    ) -> re.Match[str]:
        """The first stdout line matching `pattern` (the server says where it listens)."""
        assert process.stdout is not None
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline:
            line = process.stdout.readline().decode(errors="replace")
            if not line:
                break
            if found := re.search(pattern, line):
                threading.Thread(target=drain, args=(process.stdout,), daemon=True).start()
                return found
        log = (self.scratch / f"{name}.log").read_text(errors="replace")
        raise BenchError(f"{name} did not start: {log.strip()[-500:]}")

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)

    def close(self) -> None:
        for process in reversed(self.processes):
            self.stop(process)
        shutil.rmtree(self.scratch, ignore_errors=True)


def drain(stream: IO[bytes]) -> None:
    while stream.read(65536):
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_listening(port: int, process: subprocess.Popen[bytes], name: str) -> None:
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{name} exited with status {process.returncode} at start-up")
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise BenchError(f"{name} did not listen on {HOST}:{port} within {STARTUP:.0f}s")


def start_upstream(children: Children) -> tuple[int, int]:
    """The upstream process; (HTTP port, echo port)."""
    process = children.start([sys.executable, str(HERE / "upstream.py")], "upstream", pipe=True)
    found = children.ready_line(process, r"http (\d+) echo (\d+)", "upstream")
    return int(found[1]), int(found[2])


def start_sseproxy(
    children: Children, name: str, mode: str, upstream: int, framed: bool = False
) -> Route:
    argv = [sys.executable, "-m", "sseproxy", "run", "--listen", f"{HOST}:0"]
    argv += ["--upstream", f"http://{HOST}:{upstream}", "--mode", mode]
    argv += ["--max-connections", str(MAX_CONNECTIONS)]
    if framed:
        scenario = children.scratch / "framing.toml"
        scenario.write_text(FRAMING_SCENARIO, encoding="utf-8")
        argv += ["--scenario", str(scenario), "--journal", str(children.scratch / f"{name}.jsonl")]
    process = children.start(argv, name, pipe=True)
    found = children.ready_line(process, rf"proxy on http://{re.escape(HOST)}:(\d+)", name)
    return Route(name, int(found[1]), pids=[process.pid])


def sseproxy_tcp(children: Children, name: str, upstream: int, echo: int) -> Route:
    """Two TCP-mode proxies: one in front of the HTTP upstream, one in front of the echo."""
    path = start_sseproxy(children, name, "tcp", upstream)
    path.echo_port = start_sseproxy(children, f"{name}-echo", "tcp", echo).port
    return path


NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
worker_rlimit_nofile {nofile};
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen {host}:{port};
        location / {{
            proxy_pass http://{host}:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }}
    }}
}}
"""


def start_nginx(children: Children, name: str, upstream: int) -> Route:
    """Debian's nginx as a C reference: one worker, no buffering, HTTP/1.1 to the upstream."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    port = free_port()
    scratch = children.scratch / name
    scratch.mkdir()
    conf = scratch / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            dir=scratch,
            nofile=nofile,
            connections=max(1024, nofile - 64),
            host=HOST,
            port=port,
            upstream=upstream,
        ),
        encoding="utf-8",
    )
    argv = [str(NGINX), "-p", str(scratch), "-c", str(conf), "-e", str(scratch / "nginx-error.log")]
    process = children.start(argv, name)
    wait_listening(port, process, name)
    return Route(name, port, pids=[process.pid])


def start_toxiproxy(children: Children, name: str, upstream: int, echo: int) -> Route:
    """Shopify's toxiproxy (a Go TCP proxy) with a proxy for each upstream port, no toxics."""
    api = free_port()
    process = children.start([str(TOXIPROXY), "-host", HOST, "-port", str(api)], name)
    wait_listening(api, process, name)

    def proxy(name: str, port: int) -> int:
        body = {"name": name, "listen": f"{HOST}:0", "upstream": f"{HOST}:{port}", "enabled": True}
        request = urllib.request.Request(
            f"http://{HOST}:{api}/proxies",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            listen: str = json.load(response)["listen"]
        return int(listen.rsplit(":", 1)[1])

    return Route(name, proxy("http", upstream), proxy("echo", echo), [process.pid])


def rss_bytes(pid: int) -> int:
    """Resident memory of `pid` and all its descendants (nginx: master and worker)."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) * 1024
        for task in os.listdir(f"/proc/{pid}/task"):
            children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            total += sum(rss_bytes(int(child)) for child in children)
    except FileNotFoundError:
        pass
    return total


def unavailable(name: str) -> str | None:
    """Why a reference path can't run here, or None."""
    if name == "nginx" and not os.access(NGINX, os.X_OK):
        return f"{NGINX} not found (apt-get install nginx-light)"
    if name == "toxiproxy" and not os.access(TOXIPROXY, os.X_OK):
        return f"{TOXIPROXY} not found (a clone without ../shared/peers)"
    return None
