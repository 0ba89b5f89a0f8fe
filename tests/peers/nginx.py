"""Run the real nginx from a generated config in a temporary folder, as the current user.

`nginx(folder, locations)` writes `nginx.conf` with one `server` on a free 127.0.0.1 port
whose body is `locations`, starts `nginx -p FOLDER -c nginx.conf -g 'daemon off; ...'` in
the foreground (master and one worker, as deployed), waits until it accepts, and stops it
(SIGTERM to the process group, then SIGKILL) on the way out. Everything nginx writes (temp
files, pid, error log) stays in the folder.
"""

from __future__ import annotations

import contextlib
import os
import pwd
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers.common import HOST, find_binary, free_port, spawn, wait_accepting

NGINX = find_binary("nginx")

SSE_HTTP11 = 'proxy_http_version 1.1;\n        proxy_set_header Connection "";'
"""What people add for SSE (and upstream keep-alive); without it nginx < 1.29.7 speaks 1.0."""


def require_nginx() -> str:
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx-light); .ci/run installs it")
    return NGINX


def config(folder: Path, port: int, locations: str, http: str = "") -> str:
    # As root, the workers would switch to `nobody`, who cannot write to a pytest tmp dir.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"    {kind}_temp_path {folder / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""\
{user}worker_processes 1;
events {{ worker_connections 256; }}
http {{
{http}    access_log {folder / "access.log"};
{temp}    server {{
        listen {HOST}:{port};
{locations}
    }}
}}
"""


@contextlib.contextmanager
def nginx(folder: Path, locations: str, http: str = "") -> Iterator[int]:
    """A running nginx with `locations` in its server block (and `http`, lines ending in a
    newline, at the top of its http block: log_format, upstream); yields its port."""
    binary = require_nginx()
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = folder / "nginx.conf"
    conf.write_text(config(folder, port, locations, http), encoding="utf-8")
    globals_ = f"daemon off; pid {folder / 'nginx.pid'}; error_log {folder / 'error.log'} info;"
    command = (binary, "-p", f"{folder}/", "-e", str(folder / "error.log"), "-c", str(conf))
    with spawn(*command, "-g", globals_) as (popen, out):
        wait_accepting(port, popen, out, lambda: error_log(folder))
        yield port


def error_log(folder: Path) -> str:
    with contextlib.suppress(OSError):
        return (folder / "error.log").read_text(encoding="utf-8", errors="replace")
    return ""
