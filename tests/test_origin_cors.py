"""CORS in the built-in server over real sockets: a page from anywhere (file:// sends
`Origin: null`) may open its streams, directly or through the proxy; the control API
stays same-origin."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import trio

from sseproxy import origin
from tests.report.test_html import needs_chromium, run_chromium
from tests.test_control import control_stack

FAST = origin.OriginSettings(interval=0.05, heartbeat=0)
PREFLIGHT = {
    "Origin": "null",
    "Access-Control-Request-Method": "GET",
    "Access-Control-Request-Headers": "last-event-id, cache-control",
}


async def test_a_stream_answers_any_origin_and_a_preflight_allows_last_event_id() -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(origin.serve, "127.0.0.1", 0, FAST)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            answer = await http.options("/events", headers=PREFLIGHT)
            assert answer.status_code == 204
            assert answer.headers["access-control-allow-origin"] == "*"
            assert "GET" in answer.headers["access-control-allow-methods"].split(", ")
            allowed = answer.headers["access-control-allow-headers"].lower().split(", ")
            assert {"last-event-id", "cache-control"} <= set(allowed)
            assert int(answer.headers["access-control-max-age"]) > 0
            headers = {"Origin": "null", "Last-Event-ID": "41"}
            async with http.stream("GET", "/events?count=42", headers=headers) as response:
                assert response.headers["access-control-allow-origin"] == "*"
                assert b"id: 42" in await response.aread()
            for path in ("/nope", "/status/503"):  # errors are readable too
                response = await http.get(path, headers={"Origin": "https://example.com"})
                assert response.headers["access-control-allow-origin"] == "*"
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    ("path", "method", "allowed"),
    [("/echo", "POST", "POST, PUT"), ("/status/200", "GET", "GET, HEAD")],
)
async def test_preflights_name_what_each_path_allows(path: str, method: str, allowed: str) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(origin.serve, "127.0.0.1", 0, FAST)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            headers = {
                "Origin": "null",
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Private-Network": "true",  # Chrome, page to loopback
            }
            answer = await http.options(path, headers=headers)
            assert answer.status_code == 204
            assert answer.headers["access-control-allow-methods"] == allowed
            assert answer.headers["access-control-allow-private-network"] == "true"
            assert "last-event-id" in answer.headers["access-control-allow-headers"].lower()
            assert (await http.options("/nope", headers=headers)).status_code == 404
        nursery.cancel_scope.cancel()


async def test_through_the_proxy_and_never_on_the_control_api() -> None:
    async with control_stack() as stack:
        base = f"http://127.0.0.1:{stack.proxy_port}"
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            answer = await http.options("/events", headers=PREFLIGHT)
            assert answer.status_code == 204
            assert answer.headers["access-control-allow-origin"] == "*"
            async with http.stream("GET", "/events?count=1", headers={"Origin": "null"}) as r:
                assert r.headers["access-control-allow-origin"] == "*"
                await r.aread()
        control = await stack.api.options("/faults", headers=PREFLIGHT)
        assert control.status_code == 405
        assert not [name for name in control.headers if name.startswith("access-control-")]
        status = await stack.api.get("/status", headers={"Origin": "null"})
        assert "access-control-allow-origin" not in status.headers


PAGE = """<!DOCTYPE html><html><body><pre id="log"></pre><script>
const log = document.getElementById('log');
const es = new EventSource('http://127.0.0.1:' + location.hash.slice(1) +
                           '/events?count=2&interval=0.1&retry=100');
let opens = 0;
es.onopen = () => { opens++; log.textContent += 'open' + opens + ' '; };
es.onmessage = e => { log.textContent += 'id' + e.lastEventId + ' '; };
es.onerror = () => { log.textContent += 'error '; if (opens >= 2) es.close(); };
</script></body></html>"""


@needs_chromium
async def test_an_eventsource_on_a_file_page_reads_the_stream_and_resumes(tmp_path: Path) -> None:
    """Chromium, a page from file:// (Origin: null): the stream opens, ends after 2 events,
    and the reconnect sends Last-Event-ID: 2 cross-origin (the server then resumes at 3,
    past count: an empty stream, not ids 1 and 2 again)."""
    page = tmp_path / "page.html"
    page.write_text(PAGE)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(origin.serve, "127.0.0.1", 0, FAST)
        args = ["--virtual-time-budget=3000", "--dump-dom", f"{page.as_uri()}#{port}"]
        dom = await trio.to_thread.run_sync(run_chromium, args, tmp_path)
        nursery.cancel_scope.cancel()
    (log,) = re.findall(r'<pre id="log">([^<]*)</pre>', dom)
    assert log.split() == ["open1", "id1", "id2", "error", "open2", "error"]
