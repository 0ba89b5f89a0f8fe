"""The demo page in a real browser: `sseproxy demo` in a subprocess, Debian's chromium
driven by Playwright (`executable_path`, never `playwright install`).

Skipped when Playwright or /usr/bin/chromium is missing. Every wait is on a condition of
the page (`wait_for_function`, `expect`), never a fixed sleep. With
`SSEPROXY_DEMO_SCREENSHOT=docs/demo.png` it also saves the screenshot the docs show.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.subprocesses import Lines

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's /usr/bin/chromium")

WAIT = 15_000  # ms: the longest any one page condition may take


@pytest.fixture
def demo_url() -> Iterator[tuple[str, int]]:
    """The page's URL and the proxy's port."""
    with running_demo() as at:
        yield at


@contextlib.contextmanager
def running_demo(*options: str) -> Iterator[tuple[str, int]]:
    """`sseproxy demo OPTIONS` in a subprocess: the page's URL and the proxy's port."""
    command = [sys.executable, "-m", "sseproxy", "demo", *options]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            lines = Lines(proc.stdout)
            url = lines.wait_for(r"^sseproxy demo: open (http://127\.0\.0\.1:\d+/)$").group(1)
            proxy = lines.wait_for(r"^proxy on http://127\.0\.0\.1:(\d+)/").group(1)
            yield url, int(proxy)
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0


def curl_like(port: int) -> socket.socket:
    """An SSE request straight to the proxy, as curl sends it (same address, same agent)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.0\r\n\r\n")
    return sock


def test_an_idle_timeout_cuts_the_page_and_the_browser_resumes_without_loss(
    demo_url: tuple[str, int],
) -> None:
    url, proxy_port = demo_url
    with sync_api.sync_playwright() as playwright, contextlib.ExitStack() as curls:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url + "?clients=2")
            client = "window.sseproxyDemo.clients[0]"

            # events arrive, one EventSource per client, through the proxy
            page.wait_for_function(  # (before the page's start, there is no client yet)
                f"{client}?.events >= 1 && {client}.conn !== null", timeout=WAIT
            )
            card = page.locator('[data-client="1"]')
            sync_api.expect(card.locator('[data-field="state"]')).to_have_text("OPEN")
            sync_api.expect(card.locator('[data-field="last-id"]')).to_have_text("1")

            # two streams open at once from one client (curl) get a lane each
            for _ in range(2):
                curls.enter_context(curl_like(proxy_port))
            curl_row = "window.sseproxyDemo.rows.find((row) => row.key === '127.0.0.1 curl/8.0')"
            page.wait_for_function(f"{curl_row}?.lanes === 2", timeout=WAIT)
            lanes = page.evaluate(
                "[...window.sseproxyDemo.conns.values()].filter((c) => c.agent === 'curl/8.0')"
                ".map((c) => c.lane)"
            )
            assert sorted(lanes) == [0, 1]

            # the button adds a 2 s idle-timeout to the open streams
            page.get_by_role("button", name="+ idle-timeout 2 s").click()
            sync_api.expect(page.locator('#faults [data-fault="idle-timeout"]')).to_be_visible()

            # the cut, then the browser's reconnect about 3 s later, with the right
            # Last-Event-ID (as the proxy's journal recorded it), and no id lost or repeated
            page.wait_for_function(f"{client}.errorAt !== null", timeout=WAIT)
            cut_at = page.evaluate(f"{client}.idAtError")
            assert cut_at is not None
            page.wait_for_function(
                f"{client}.reconnects >= 1 && {client}.sent !== undefined "
                f"&& {client}.sent !== null && {client}.lastId > {cut_at}",
                timeout=WAIT,
            )
            seen = page.evaluate(
                f"({{delay: {client}.lastDelay, sent: {client}.sent, ok: {client}.sentOk, "
                f"lost: {client}.lost, duplicated: {client}.duplicated, lastId: {client}.lastId}})"
            )
            assert 2.5 <= seen["delay"] <= 5.0, seen
            assert seen["sent"] == str(cut_at) and seen["ok"] is True, seen
            assert (seen["lost"], seen["duplicated"]) == (0, 0), seen
            sync_api.expect(card.locator('[data-field="last-event-id"]')).to_have_text(
                f"{cut_at} ✓"
            )
            sync_api.expect(card.locator('[data-field="lost"]')).to_have_text("0")

            # the close on the timeline, labelled with who closed it and why
            label = page.locator("#timeline text.close-label", has_text="proxy · idle-timeout")
            sync_api.expect(label.first).to_be_visible()
            conn = label.first.get_attribute("data-conn")
            bar = page.locator(f'#timeline rect.bar[data-conn="{conn}"] title')
            sync_api.expect(bar).to_contain_text("no byte for 2s")
            resumed = page.evaluate(f"{client}.conn")
            gap = page.locator(f'#timeline line.gap[data-conn="{resumed}"] title')
            sync_api.expect(gap).to_contain_text(
                re.compile(rf"after [2-4]\.\d s; Last-Event-ID {cut_at}$")
            )
            sync_api.expect(page.locator("#closes")).to_contain_text("proxy · idle-timeout")
            assert errors == []
            if shot := os.environ.get("SSEPROXY_DEMO_SCREENSHOT"):  # a second cut, then
                page.wait_for_function(
                    f"{client}.reconnects >= 2 && {client}.lastId >= 3", timeout=WAIT
                )
                sync_api.expect(card.locator('[data-field="reconnects"]')).to_have_text("2")
                page.screenshot(path=shot, full_page=False)
        finally:
            browser.close()


def test_the_controls_drive_the_control_api(demo_url: tuple[str, int]) -> None:
    """Story steps, the generated fault form, removing a fault, closing every stream, and
    the time-scale box (PUT /api/time-scale)."""
    url, _ = demo_url
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url + "?clients=6")
            page.wait_for_function(
                "window.sseproxyDemo.clients.length === 6 && "
                "window.sseproxyDemo.clients.every((c) => c.conn !== null)",
                timeout=WAIT,
            )  # six clients, and the page's own requests still get through

            page.get_by_role("button", name="A quiet stream meets a proxy timeout").click()
            sync_api.expect(page.locator("#scenario-name")).to_have_text("idle-3s")
            sync_api.expect(page.locator("#step-text")).to_contain_text("nothing lost")
            sync_api.expect(page.locator("#stream-query")).to_have_value("interval=5s&heartbeat=0")

            page.select_option("#fault-type", "latency")
            sync_api.expect(page.locator("#fault-summary")).to_contain_text("Delay every piece")
            page.fill('#fault-fields [name="delay"]', "250ms")
            page.fill('#fault-fields [name="name"]', "slow")
            page.get_by_role("button", name="Add fault").click()
            slow = page.locator('#faults [data-fault="slow"]')
            sync_api.expect(slow).to_contain_text("latency delay=250ms")
            page.fill('#fault-fields [name="delay"]', "soon")
            page.get_by_role("button", name="Add fault").click()
            sync_api.expect(page.locator("#fault-error")).to_contain_text("'soon'")
            slow.get_by_role("button").click()
            sync_api.expect(slow).to_have_count(0)

            page.get_by_role("button", name="Close all (FIN)").click()
            sync_api.expect(page.locator("#streams-result")).to_contain_text("closed c")
            sync_api.expect(page.locator("#closes")).to_contain_text("proxy · killed")

            sync_api.expect(page.locator("#time-scale")).to_have_value("1")
            page.fill("#time-scale", "0.1")
            page.get_by_role("button", name="Set", exact=True).click()
            sync_api.expect(page.locator("#time-scale-result")).to_have_text("time scale 0.1")
            sync_api.expect(page.locator("#time-scale-line")).to_contain_text("time scale 0.1")
            page.fill("#time-scale", "0")
            page.get_by_role("button", name="Set", exact=True).click()
            sync_api.expect(page.locator("#time-scale-result")).to_contain_text("above 0")
            assert errors == []
        finally:
            browser.close()


def test_the_time_scale_shrinks_a_fault_added_on_the_page() -> None:
    """`demo --time-scale 0.25`: the page shows the factor; set to 0.5 on the page, the
    one-click `idle-timeout 2 s` cuts a stream after 1 s without a byte."""
    with (
        running_demo("--time-scale", "0.25") as (url, _),
        sync_api.sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(url + "?clients=1")
            client = "window.sseproxyDemo.clients[0]"
            page.wait_for_function(f"{client}?.events >= 1", timeout=WAIT)
            sync_api.expect(page.locator("#time-scale")).to_have_value("0.25")  # GET on load
            line = page.locator("#time-scale-line")
            sync_api.expect(line).to_have_text("time scale 0.25: every duration multiplied by 0.25")

            page.fill("#time-scale", "0.5")
            page.get_by_role("button", name="Set", exact=True).click()
            sync_api.expect(page.locator("#time-scale-result")).to_have_text("time scale 0.5")
            sync_api.expect(line).to_have_text("time scale 0.5: every duration multiplied by 0.5")

            page.get_by_role("button", name="+ idle-timeout 2 s").click()
            sync_api.expect(page.locator('#faults [data-fault="idle-timeout"]')).to_contain_text(
                "timeout=2s"  # as written; in force: 1 s
            )
            # a stream opened under the fault (after the first cut) lives 1 s past its
            # last byte (the built-in server sends its first event at once), not 2 s
            cut = (
                "[...window.sseproxyDemo.conns.values()].find((c) => "
                "c.session === 'client-1' && c.reason === 'idle-timeout' && c.gapFrom "
                "&& c.gapFrom.reason === 'idle-timeout')"
            )
            page.wait_for_function(f"{client}.reconnects >= 1 && {cut} !== undefined", timeout=WAIT)
            seen = page.evaluate(
                f"(() => {{ const c = {cut}; return {{lived: c.closed - c.opened, "
                "detail: c.detail, events: c.events}; })()"
            )
            assert seen["detail"] == "no byte for 1s", seen
            assert 0.9 <= seen["lived"] < 1.6, seen

            # a story step's stream keeps pace: the server's heartbeat shrinks with the
            # client watchdog's 45 s (the story's 600 s and 15 s, at 0.5)
            page.get_by_role("button", name="Switch to event heartbeats").click()
            sync_api.expect(page.locator("#scenario-name")).to_have_text("heartbeat-check")
            query = page.locator("#stream-query")
            sync_api.expect(query).to_have_value("interval=300&heartbeat=7.5&hb=event")
            assert errors == []
        finally:
            browser.close()
