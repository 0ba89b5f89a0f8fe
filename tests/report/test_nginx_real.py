"""`sseproxy report --nginx-log` on logs written by Debian's nginx, not by hand.

One nginx (`proxy_read_timeout 1s`, the sseproxy log_format, error_log at info level)
in front of: an upstream that sends one event and falls silent (streams cut by the read
timeout), one that streams on (clients that go away mid-stream), a port where nothing
listens (502) and an upstream that never answers (504; a client that gives up before the
head: 499). Every client runs at once, so the whole thing takes about a second and a half.
The report must name each request's cause as nginx's error log gives it, and infer what
it can without the error log.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from click.testing import CliRunner

from sseproxy.nginx_format import LOG_FORMAT
from sseproxy.report.nginx_analysis import analyse_nginx
from sseproxy.report.nginx_errors import read_error_log
from sseproxy.report.nginx_log import read_access_log
from sseproxy.report_cli import report_command
from tests.peers.common import HOST, RawServer, events_at, free_port, parallel, silent, trickle
from tests.peers.nginx import NGINX, SSE_HTTP11, nginx

if NGINX is None:
    pytest.skip(
        "nginx is not installed (apt-get install nginx-light); .ci/run installs it",
        allow_module_level=True,
    )

TIMEOUT = 1.0
CURL = "curl/8.5.0"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
JAVA = "Java-http-client/17.0.2"
HTTPX = "python-httpx/0.27.0"


def client(
    port: int,
    target: str,
    agent: str,
    *,
    leave: float | None,
    timeout: float,
    source: str = HOST,
) -> str:
    """GET with an EventSource's Accept from `source`; read until nginx closes or ends the
    body or, after `leave` s, hang up (a tab closed). Returns how it ended."""
    with socket.create_connection(
        (HOST, port), timeout=timeout, source_address=(source, 0)
    ) as sock:
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\nUser-Agent: {agent}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        deadline = time.monotonic() + (leave if leave is not None else timeout)
        data = b""
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                return "closed by nginx"
            data += chunk
            if data.endswith(b"\r\n0\r\n\r\n"):
                return "ended"
            if leave is None and b"\r\n\r\n" in data and not data.startswith(b"HTTP/1.1 200"):
                return "answered " + data.split(b" ", 2)[1].decode()
        return "left"


@dataclass
class Logs:
    access: Path
    error: Path
    ends: dict[str, str]


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Logs:
    folder = tmp_path_factory.mktemp("nginx-logs")
    dead = free_port()
    with (
        RawServer(events_at(0.0)) as quiet,
        RawServer(trickle(100, 0.05, "X-Accel-Buffering: no\r\n")) as lively,
        RawServer(silent) as hung,
        RawServer(trickle(1, 0.0)) as first,
        RawServer(trickle(1, 0.0)) as second,
    ):
        read = f"proxy_read_timeout {TIMEOUT:g}s;"
        locations = "\n".join(
            [
                f"        access_log {folder / 'sse.log'} sseproxy;",
                f"        location /quiet/ {{ proxy_pass http://{HOST}:{quiet.port}; {read} "
                f"{SSE_HTTP11} }}",
                f"        location /lively/ {{ proxy_pass http://{HOST}:{lively.port}; {read} "
                f"{SSE_HTTP11} }}",
                f"        location /dead/ {{ proxy_pass http://{HOST}:{dead}; }}",
                f"        location /hung/ {{ proxy_pass http://{HOST}:{hung.port}; {read} }}",
                "        location /pool/ { proxy_pass http://pool; }",
            ]
        )
        pool = f"server {HOST}:{first.port}; server {HOST}:{second.port};"
        http = f"    {LOG_FORMAT}\n    upstream pool {{ ip_hash; {pool} }}\n"
        with nginx(folder, locations, http=http) as port:
            get: Callable[..., str] = partial(client, port, timeout=5)
            cases = {
                "/quiet/1": partial(get, "/quiet/1", CURL, leave=None),
                "/quiet/2": partial(get, "/quiet/2", CURL, leave=None),
                "/lively/1": partial(get, "/lively/1", BROWSER, leave=0.3),
                "/lively/2": partial(get, "/lively/2", BROWSER, leave=0.3),
                "/dead/1": partial(get, "/dead/1", JAVA, leave=None),
                "/hung/1": partial(get, "/hung/1", JAVA, leave=None),
                "/hung/2": partial(get, "/hung/2", BROWSER, leave=0.3),
                # ip_hash: four clients of one /24 network go to one server, one to the other
                **{
                    f"/pool/{n}": partial(get, f"/pool/{n}", HTTPX, leave=None, source=source)
                    for n, source in enumerate(
                        ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.1.1"), 1
                    )
                },
            }
            ends = dict(zip(cases, parallel(*cases.values()), strict=True))
    # nginx has stopped: every line is written
    return Logs(folder / "sse.log", folder / "error.log", ends)


def test_the_clients_saw_what_the_log_should_explain(logs: Logs) -> None:
    assert logs.ends == {
        "/quiet/1": "closed by nginx",
        "/quiet/2": "closed by nginx",
        "/lively/1": "left",
        "/lively/2": "left",
        "/dead/1": "answered 502",
        "/hung/1": "answered 504",
        "/hung/2": "left",
        **{f"/pool/{n}": "ended" for n in range(1, 6)},
    }


def test_causes_come_from_nginx_itself(logs: Logs) -> None:
    report = analyse_nginx(read_access_log(str(logs.access)), read_error_log(str(logs.error)))
    got = {r.target: (r.status, r.cause, r.side, r.source) for r in report.requests}
    assert got == {
        "/quiet/1": (200, "proxy_read_timeout", "nginx", "error log"),
        "/quiet/2": (200, "proxy_read_timeout", "nginx", "error log"),
        "/lively/1": (200, "client-closed", "client", "error log"),
        "/lively/2": (200, "client-closed", "client", "error log"),
        "/dead/1": (502, "upstream-refused", "server", "error log"),
        "/hung/1": (504, "proxy_read_timeout-before-head", "nginx", "error log"),
        "/hung/2": (499, "client-closed-before-head", "client", "error log"),
        # no error line, and the error log is at info level: the upstream ended them
        **{f"/pool/{n}": (200, "upstream-end", "server", "error log") for n in range(1, 6)},
    }
    durations = {r.target: r.duration for r in report.requests}
    for target in ("/quiet/1", "/quiet/2", "/hung/1"):  # the read timeout (0.999 s seen)
        assert abs(durations[target] - TIMEOUT) < 0.35, durations
    assert durations["/dead/1"] < 0.05
    pile = next(c for c in report.clusters if abs(c.centre - TIMEOUT) < 0.35)
    assert pile.count == 3
    assert pile.statuses == {"200": 2, "504": 1}
    assert "proxy_read_timeout" in pile.known_as
    assert pile.reproduce.startswith("sseproxy run --scenario nginx-default")
    families = {c.family: c.requests for c in report.clients}
    assert families == {"curl": 2, "browser": 3, "java": 2, "python httpx": 5}
    ups = {u.upstream.rsplit(":", 1)[1]: u for u in report.upstreams}
    assert len(ups) == 6  # one $upstream_addr per location, two for the pool
    pool = sorted((u for u in report.upstreams if len(u.pool) == 2), key=lambda u: -u.requests)
    assert [(u.requests, u.networks) for u in pool] == [(4, 1), (1, 1)]
    assert any(
        s.startswith(f"Upstreams are unbalanced: {pool[0].upstream} took 80 %")
        for s in report.summary
    )
    assert sum(u.status_502 for u in ups.values()) == 1
    assert sum(u.status_504 for u in ups.values()) == 1
    assert report.totals.error_log_info is True
    assert report.totals.selection == "Accept: text/event-stream"


def test_without_the_error_log_causes_are_inferred_and_the_report_says_so(logs: Logs) -> None:
    result = CliRunner().invoke(
        report_command, ["--nginx-log", str(logs.access), "--limit", f"{TIMEOUT:g}s=ours", "--json"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    got = {r["target"]: (r["cause"], r["source"]) for r in data["requests"]}
    assert got["/quiet/1"] == got["/quiet/2"] == ("at the 1 s limit", "inferred")
    pile = next(c for c in data["clusters"] if c["limit"] == TIMEOUT)
    assert (
        pile["known_as"] == "ours (--limit); nginx proxy_read_timeout ~1 s (its 504s last as long)"
    )
    assert got["/lively/1"] == ("ended", "inferred")  # only the error log can tell
    assert got["/dead/1"] == ("upstream-refused", "inferred")
    assert got["/hung/1"] == ("upstream-timeout", "status")
    assert got["/hung/2"] == ("client-closed-before-head", "status")
    assert data["totals"]["causes_from"] == "inferred from durations and statuses"
    assert any("No error log" in note for note in data["notes"])


def test_without_the_error_log_504s_at_the_same_time_name_the_read_timeout(logs: Logs) -> None:
    report = analyse_nginx(read_access_log(str(logs.access)))
    pile = next(c for c in report.clusters if abs(c.centre - TIMEOUT) < 0.35)
    assert pile.known_as == "nginx proxy_read_timeout ~1 s (its 504s last as long)"
    assert pile.reproduce == "sseproxy run --scenario nginx-default (with proxy_read_timeout = 1s)"
    causes = {r.target: r.cause for r in report.requests}
    assert causes["/quiet/1"] == causes["/quiet/2"] == "at the 1 s limit"


def test_text_and_html_from_the_command_line(logs: Logs, tmp_path: Path) -> None:
    page = tmp_path / "nginx.html"
    args = ["--nginx-log", str(logs.access), "--nginx-error-log", str(logs.error)]
    result = CliRunner().invoke(report_command, [*args, "--html", str(page)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "proxy_read_timeout nginx error log 2" in text
    assert "upstream timed out (110: Connection timed out) while reading upstream" in text
    assert "reproduce: sseproxy run --scenario nginx-default (with proxy_read_timeout = 1s)" in text
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert '"cause":"proxy_read_timeout"' in html  # the timeline's bars
    assert "client-closed-before-head" in html


def test_nginx_writes_the_format_as_documented(logs: Logs) -> None:
    """Every line the real nginx wrote parses, with every field (none left unreadable)."""
    access = read_access_log(str(logs.access))
    assert access.unreadable == 0
    assert access.accept_logged
    assert len(access.requests) == 12
    assert all(r.connection > 0 and r.upstream for r in access.requests)
