"""`sseproxy demo` over real loopback sockets: the door's routes (page, control API under
/api, streams through the proxy), the catalog the page builds its forms from, the story,
and the command itself (its URL line, `--open`, Ctrl-C). The page in a browser is
tests/test_demo_browser.py."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from io import StringIO
from pathlib import Path

import httpx
import pytest
import trio
from click.testing import CliRunner

from sseproxy.cli import main
from sseproxy.demo import app
from sseproxy.demo.app import DemoAddresses, DemoSettings, serve_demo
from sseproxy.demo.catalog import catalog, load_story, quick_faults
from sseproxy.demo.door import allow_any_origin, rewrite_head
from sseproxy.faults import all_faults
from sseproxy.journal import Journal
from sseproxy.scenario import load_scenario, preset_names
from tests.subprocesses import Lines
from tests.test_control import RawStream
from tests.test_startup import imported


@asynccontextmanager
async def demo_at(settings: DemoSettings | None = None) -> AsyncIterator[DemoAddresses]:
    """The demo in the test's nursery; its journal is `Journal(keep=True)`."""
    async with trio.open_nursery() as nursery:
        yield await nursery.start(serve_demo, settings or DemoSettings(), Journal(keep=True))
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def demo(settings: DemoSettings | None = None) -> AsyncIterator[tuple[str, Journal]]:
    """The demo in the test's nursery: its page URL (no trailing slash) and its journal."""
    journal = Journal(keep=True)
    async with trio.open_nursery() as nursery:
        at: DemoAddresses = await nursery.start(serve_demo, settings or DemoSettings(), journal)
        yield at.page.rstrip("/"), journal
        nursery.cancel_scope.cancel()


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


async def stream(url: str, path: str, *headers: str) -> RawStream:
    """A raw GET on the demo's address (the door), returning what arrives."""
    sock = await trio.open_tcp_stream("127.0.0.1", port_of(url))
    head = "".join(f"{h}\r\n" for h in ("Host: 127.0.0.1", *headers))
    await sock.send_all(f"GET {path} HTTP/1.1\r\n{head}\r\n".encode())
    return RawStream(sock)


async def test_the_page_and_its_files_are_served() -> None:
    async with demo() as (url, _), httpx.AsyncClient(base_url=url) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["connection"] == "close"  # one request per connection
        assert 'src="demo.js"' in page.text
        assert not re.search(r'(src|href)="[^"]*//', page.text)  # nothing from the network
        script = await http.get("/demo.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert "new EventSource" in script.text
        style = await http.get("/demo.css")
        assert style.headers["content-type"].startswith("text/css") and "url(" not in style.text
        for missing in ("/nothing.js", "/../app.py", "/app.py", "/page/demo.js"):
            assert (await http.get(missing)).status_code == 404, missing
        assert (await http.post("/", content=b"x")).status_code == 405


async def test_the_catalog_is_generated_from_the_declarations() -> None:
    async with demo() as (url, _), httpx.AsyncClient(base_url=url) as http:
        data = (await http.get("/catalog.json")).json()
    assert [f["type"] for f in data["faults"]] == list(all_faults())
    idle = next(f for f in data["faults"] if f["type"] == "idle-timeout")
    params = {p["name"]: p for p in idle["params"]}
    assert params["timeout"]["kind"] == "duration" and params["timeout"]["required"]
    assert params["action"]["choices"] == ["close", "reset", "end", "drop"]
    assert params["status"]["default"] == 504
    assert {p["name"] for p in data["common"]} == {"name", "direction", "probability", "after"}
    assert [p["name"] for p in data["presets"]] == ["none", *preset_names()]
    assert data["stream"] == app.STREAM
    assert {"label": "idle-timeout 2 s", "fault": {"type": "idle-timeout", "timeout": "2s"}} in (
        data["quick"]
    )
    assert data["explanations"]["client-closed"].startswith("the client closed")


def test_every_story_step_and_quick_fault_is_valid() -> None:
    steps = load_story()
    assert len(steps) >= 4
    titles = [step.title for step in steps]
    assert "A 30 s comment heartbeat behind an event watchdog" in titles
    assert (
        titles.index("Switch to event heartbeats")
        == titles.index("A 30 s comment heartbeat behind an event watchdog") + 1
    )
    for step in steps:
        scenario = step.check()  # a preset that loads, and stream settings the server takes
        assert step.scenario == "none" or scenario == load_scenario(step.scenario)
        assert step.text.endswith(".") and "\n" not in step.text
    assert quick_faults()  # each checked as a [[faults]] entry
    story = catalog(stream="")["story"]
    assert [s["toml"].startswith("[scenario]") for s in story] == [True] * len(steps)
    switch = story[titles.index("Switch to event heartbeats")]
    assert switch["times"] == {"interval": 600.0, "heartbeat": 15.0}  # scaled by the page


def test_the_door_routes_and_rewrites_request_heads() -> None:
    head = (
        b"GET /client/3/events?interval=1s HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n"
        b"X-Demo-Client: forged\r\nLast-Event-ID: 7\r\n\r\n"
    )
    route, rewritten = rewrite_head(head)
    assert route == "proxy"
    assert rewritten == (
        b"GET /events?interval=1s HTTP/1.1\r\nHost: h\r\nLast-Event-ID: 7\r\n"
        b"Connection: close\r\nX-Demo-Client: client-3\r\n\r\n"
    )
    assert rewrite_head(b"GET /events HTTP/1.1\r\nHost: h\r\n\r\n")[0] == "proxy"
    assert rewrite_head(b"POST /api/faults HTTP/1.1\r\n\r\n") == (
        "api",
        b"POST /faults HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    assert rewrite_head(b"GET /api?x=1 HTTP/1.1\r\n\r\n")[1].startswith(b"GET /?x=1 ")
    for page in (b"/", b"/demo.js", b"/client/0/events", b"/client/3/x", b"/apix", b"/eventsx"):
        assert rewrite_head(b"GET " + page + b" HTTP/1.1\r\n\r\n")[0] == "page", page


async def test_the_control_api_is_mounted_under_api_with_its_own_rules() -> None:
    async with demo() as (url, journal), httpx.AsyncClient(base_url=url) as http:
        status = (await http.get("/api/status")).json()
        assert status["live"] is True and status["scenario"] == "none"
        proxy_port = int(status["listen"].rsplit(":", 1)[1])
        assert proxy_port != port_of(url)
        added = await http.post("/api/faults", json={"type": "latency", "delay": "10ms"})
        assert added.status_code == 201, added.text
        assert [f["name"] for f in (await http.get("/api/faults")).json()["faults"]] == ["latency"]
        assert journal.of_kind("scenario")[-1]["change"] == "add"
        rebinding = await http.get("/api/status", headers={"Host": "evil.example:80"})
        assert rebinding.status_code == 403  # the API's DNS-rebinding check still holds
        not_json = await http.post("/api/faults", content=b"type=latency")
        assert not_json.status_code == 415  # a form post from another site cannot add faults


async def test_a_page_client_streams_through_the_proxy_and_says_who_it_is() -> None:
    quick = DemoSettings(stream="interval=0.05&heartbeat=0")
    async with demo(quick) as (url, journal):
        client = await stream(url, "/client/4/events?interval=0.05&heartbeat=0", "Last-Event-ID: 7")
        await client.read_until(b"id: 9\n")
        assert b"Connection: close\r\n" in client.data
        assert b"id: 8\n" in client.data and b"id: 7\n" not in client.data
        (request,) = journal.of_kind("request")
        assert request["path"] == "/events" and request["query"] == "interval=0.05&heartbeat=0"
        assert request["session"] == "client-4" and request["last_event_id"] == "7"
        curl = await stream(url, "/events?count=2&interval=0", "User-Agent: curl/8")
        assert await curl.read_to_end() == "eof"
        assert b"id: 2\n" in curl.data
        assert "session" not in journal.of_kind("request")[-1]


async def test_the_streams_door_serves_streams_that_the_page_may_read() -> None:
    """Another origin than the page's: the built-in server's CORS stands, the proxy's own
    answers get the same header, a preflight is answered there and never journaled."""
    async with (
        demo_at() as at,
        httpx.AsyncClient(base_url=at.streams) as http,
        httpx.AsyncClient(base_url=at.page) as api,
    ):
        page = at.page.rstrip("/")
        assert (await http.get("/")).status_code == 404  # no page here, and no API
        assert (await http.get("/api/status")).text == "only streams are here\n"
        catalog = (await api.get("/catalog.json")).json()
        assert catalog["streams"] == at.streams.rstrip("/") != page

        served = await stream(at.streams, "/client/1/events?count=1", f"Origin: {page}")
        await served.read_to_end()
        assert b"id: 1\n" in served.data
        head = served.data.split(b"\r\n\r\n")[0].lower()
        assert head.count(b"\r\naccess-control-allow-origin: *\r\n") == 1  # the server's

        fault = {"type": "status", "code": 503, "name": "down"}
        assert (await api.post("/api/faults", json=fault)).status_code == 201
        refused = await stream(at.streams, "/client/1/events", f"Origin: {page}")
        await refused.read_to_end()  # the proxy's own answer, readable as a 503 by the page
        assert refused.data.startswith(b"HTTP/1.1 503 ")
        assert b"\r\nAccess-Control-Allow-Origin: *\r\n" in refused.data
        assert (await api.delete("/api/faults/down")).status_code == 200

        connections = (await api.get("/api/status")).json()["connections"]["total"]
        preflight = await http.options(
            "/client/1/events",
            headers={
                "Origin": page,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "last-event-id",
            },
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "Last-Event-ID" in preflight.headers["access-control-allow-headers"]
        assert preflight.headers["access-control-allow-methods"] == "GET"
        assert (await api.get("/api/status")).json()["connections"]["total"] == connections


def test_cors_is_added_once_after_the_status_line() -> None:
    head = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"
    assert allow_any_origin(head) == (
        b"HTTP/1.1 503 Service Unavailable\r\nAccess-Control-Allow-Origin: *\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    served = b"HTTP/1.1 200 OK\r\naccess-control-allow-origin: *\r\n\r\nid: 1\n"
    assert allow_any_origin(served) == served  # the server's own answer stands
    assert allow_any_origin(b"id: 2\n\n") == b"id: 2\n\n"


async def test_a_fault_added_through_the_api_cuts_a_page_client() -> None:
    async with demo() as (url, journal), httpx.AsyncClient(base_url=url) as http:
        client = await stream(url, "/client/1/events?interval=10s&heartbeat=0")
        await client.read_until(b"id: 1\n")
        fault = {"type": "idle-timeout", "timeout": "200ms"}
        assert (await http.post("/api/faults", json=fault)).status_code == 201
        assert await client.read_to_end() == "eof"
        closed = (await journal.wait_for("closed"))[0]
        assert (closed["by"], closed["reason"], closed["last_id"]) == ("proxy", "idle-timeout", "1")
        reset = await stream(url, "/client/2/events?interval=10s&heartbeat=0")
        await reset.read_until(b"id: 1\n")
        killed = await http.delete("/api/connections", params={"how": "reset"})
        assert killed.json()["killed"] == ["c2"]
        assert await reset.read_to_end() == "reset"  # the RST reaches the browser's socket


async def test_open_launches_the_browser_on_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[str] = []
    launched = trio.Event()

    def fake_open(url: str) -> bool:
        opened.append(url)
        trio.from_thread.run_sync(launched.set)
        return True

    monkeypatch.setattr(app.webbrowser, "open", fake_open)
    out = StringIO()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: app.main(DemoSettings(), None, out, open_page=True))
        with trio.fail_after(10):
            await launched.wait()
        nursery.cancel_scope.cancel()
    assert f"sseproxy demo: open {opened[0]}\n" in out.getvalue()


def test_the_command_serves_until_ctrl_c_and_exits_0(tmp_path: Path) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    command = [sys.executable, "-m", "sseproxy", "demo", "--port", str(port)]
    command += ["--scenario", "idle-3s", "--journal", str(tmp_path / "demo.jsonl")]
    command += ["--time-scale", "0.5", "--close-lines"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            lines = Lines(proc.stdout)
            page = lines.wait_for(r"^sseproxy demo: open (http://127\.0\.0\.1:\d+/)$").group(1)
            assert page == f"http://127.0.0.1:{port}/"
            assert lines.wait_for(r"^scenario (\S+); faults: (.*)$").groups() == (
                "idle-3s",
                "idle-timeout",
            )
            lines.wait_for(r"^time scale 0\.5: .*\(a 60s timeout fires after 30s\)$")
            lines.wait_for("^stop with Ctrl-C$")
            with urllib.request.urlopen(page + "api/scenario", timeout=5) as response:
                assert json.load(response)["name"] == "idle-3s"
            with urllib.request.urlopen(page + "api/time-scale", timeout=5) as response:
                assert json.load(response) == {"factor": 0.5}
            with urllib.request.urlopen(page + "events?count=2&interval=0", timeout=5) as events:
                assert events.read().endswith(b'id: 2\ndata: {"n": 2}\n\n')
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
        assert lines.rest()[-1] == "stopped"
        assert proc.stderr is not None
        console = proc.stderr.read()  # a line per close, as on `run`'s console
        assert "Traceback" not in console
        assert re.search(r"^c1 GET /events from 127\.0\.0\.1: closed by ", console, re.M)
    report = CliRunner().invoke(main, ["report", str(tmp_path / "demo.jsonl"), "--json"])
    assert report.exit_code == 0, report.output
    totals = json.loads(report.output)["totals"]
    assert totals["connections"] == 1 and totals["time_scales"] == [0.5]


def test_demo_help_imports_none_of_the_heavy_libraries() -> None:
    assert imported("from sseproxy.cli import main; main(['demo', '--help'])") == set()


def test_usage_errors_exit_2_in_one_line() -> None:
    result = CliRunner().invoke(main, ["demo", "--scenario", "no-such-preset"])
    assert result.exit_code == 2 and "no preset of that name" in result.output
    for factor in ("0", "-1", "fast", "inf"):
        result = CliRunner().invoke(main, ["demo", "--time-scale", factor])
        assert result.exit_code == 2, result.output
        assert result.output.startswith(f"Error: time scale '{factor}' is not a number above 0")
        assert len(result.output.splitlines()) == 1
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = str(busy.getsockname()[1])
        result = CliRunner().invoke(main, ["demo", "--port", taken])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: --port: cannot listen on 127.0.0.1:")
    assert len(result.output.splitlines()) == 1
