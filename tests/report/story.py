"""The user story, replayed in virtual time: the journal behind docs/report.png.

An MCP router (Java/Spring in the story) behind nginx with its defaults (the
`nginx-default` preset: proxy_read_timeout 60 s), sending a `: heartbeat` comment every
30 s and events when something happens, which is irregular: bursts, then quiet spells of
a minute or two. Its clients:

- browsers (EventSource): reconnect 3 s after a drop with `Last-Event-ID`, the server
  replays what they missed; people close tabs;
- Java MCP clients with a 45 s watchdog that counts *events* (the `client-watchdog`
  fault, matched on their user agent): the comments do not feed it, so every quiet spell
  over 45 s cuts them; they reconnect after 2 s (backing off on errors) without
  `Last-Event-ID`, so events published while they were away are lost; each connection
  also POSTs an MCP message, all under one `Mcp-Session-Id` per client;
- people with curl, and an httpx and a node client that resume like browsers.

At 7 min a deployment resets every stream and answers 503 for 20 s. The journal is
snapshotted at 15 min with streams still open, as when someone runs the report on a live
proxy's journal.

Regenerate the docs' example with `python -m tests.report.story`: it writes the scenario
(nginx-default as it is now, plus the faults below) to tests/report/user-story.toml, the
journal to docs/example-journal.jsonl and the screenshot to docs/report.png.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h11
import trio
import trio.testing

from sseproxy.report import analyse, journal_from_records, render_html
from sseproxy.scenario import Scenario, load_scenario, parse_scenario
from tests.report.scripted import ScriptedProxy, event_ids, read_request, scripted_proxy

END = 900.0
HEARTBEAT = 30.0
DOCS = Path(__file__).resolve().parents[2] / "docs"
SCENARIO_FILE = Path(__file__).resolve().parent / "user-story.toml"

EXTRA_FAULTS = """
[[faults]]
name = "client-watchdog"
type = "client-watchdog"
timeout = "45s"
counts = "events"
match = { headers = { user-agent = "Java*" } }

[[faults]]
name = "deploy-reset"
type = "reset"
window = { from = "420s", until = "421s" }

[[faults]]
name = "deploy-503"
type = "status"
code = 503
window = { from = "420s", until = "440s" }
match = { path = "/sse" }
"""


def compose_scenario() -> Scenario:
    """nginx-default's faults, the Java clients' watchdog, and the deployment."""
    nginx = load_scenario("nginx-default")
    extra = parse_scenario(EXTRA_FAULTS, file="user-story.toml")
    return Scenario(
        name="user-story",
        description="nginx-default + 30 s comment heartbeats + 45 s Java client watchdog",
        seed=1,
        faults=nginx.faults + extra.faults,
    )


def event_times() -> list[float]:
    """When the router publishes events: bursts and quiet spells (deterministic)."""
    rng = random.Random(2024)
    times, t = [], 4.0
    while t < END + 120:
        times.append(round(t, 1))
        t += rng.choice([2, 3, 5, 8, 12, 20, 35, 50, 55, 70, 90])
    return sorted({*times, 424.0, 429.0, 433.0, 437.0, 441.0})  # busy during the deployment


TIMES = event_times()


async def router(stream: trio.abc.Stream) -> None:
    """GET /sse: replay after Last-Event-ID, then live events and 30 s comments; POST 202."""
    try:
        got = await read_request(stream)
        if got is None:
            return
        conn, request = got
        path = request.target.split(b"?")[0]
        if request.method == b"POST" and path == b"/message":
            reply = h11.Response(status_code=202, headers=[("content-length", "0")])
            await stream.send_all(
                (conn.send(reply) or b"") + (conn.send(h11.EndOfMessage()) or b"")
            )
            return
        if path != b"/sse":
            reply = h11.Response(status_code=404, headers=[("content-length", "0")])
            await stream.send_all(
                (conn.send(reply) or b"") + (conn.send(h11.EndOfMessage()) or b"")
            )
            return
        headers = [("content-type", "text/event-stream"), ("x-accel-buffering", "no")]
        await stream.send_all(conn.send(h11.Response(status_code=200, headers=headers)) or b"")
        start = trio.current_time()
        last = dict(request.headers).get(b"last-event-id", b"")
        # resuming: everything published after that id, at once; a new subscriber gets what
        # is published from now on
        published = sum(1 for t in TIMES if t <= start)
        n = int(last) + 1 if last.isdigit() else published + 1
        beat = start + HEARTBEAT
        while True:
            due = TIMES[n - 1] if n <= len(TIMES) else math.inf
            if beat < due:
                await trio.sleep_until(beat)
                beat += HEARTBEAT
                data = b": heartbeat\n\n"
            else:
                await trio.sleep_until(due)
                data = f'id: {n}\nevent: message\ndata: {{"n": {n}}}\n\n'.encode()
                n += 1
            await stream.send_all(conn.send(h11.Data(data=data)) or b"")
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


@dataclass
class Person:
    address: str
    user_agent: str
    start: float
    leave: float = math.inf
    resume: bool = True
    retry: Callable[[int], float] = lambda failures: 3.0 if not failures else 5.0
    session: str | None = None
    """An MCP client's `Mcp-Session-Id`: sent on the stream and on a POST per connection."""
    comes_back: tuple[float, float] | None = None


JAVA_BACKOFF: Callable[[int], float] = lambda failures: 2.0 * 2 ** min(failures, 4)  # noqa: E731
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
PEOPLE = [
    Person("10.0.1.11:52100", CHROME + "Chrome/120.0.0.0 Safari/537.36", 5),
    Person(
        "10.0.1.12:52211",
        "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
        12,
        leave=300,
        comes_back=(520, math.inf),
    ),
    Person(
        "10.0.1.13:50400",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15"
        " (KHTML, like Gecko) Version/17.2 Safari/605.1.15",
        40,
        leave=610,
    ),
    Person("10.0.1.14:61000", CHROME + "Chrome/120.0.0.0 Safari/537.36 Edg/120.0", 130),
    Person(
        "10.0.2.21:40001",
        "Java-http-client/17.0.9",
        8,
        resume=False,
        retry=JAVA_BACKOFF,
        session="mcp-5f2a",
    ),
    Person(
        "10.0.2.22:40002",
        "Java-http-client/17.0.9",
        25,
        resume=False,
        retry=JAVA_BACKOFF,
        session="mcp-91c4",
    ),
    Person(
        "10.0.2.23:40003",
        "Java-http-client/21.0.2",
        61,
        resume=False,
        retry=JAVA_BACKOFF,
        session="mcp-0d7e",
    ),
    Person("10.0.3.31:33000", "curl/8.4.0", 100, leave=160, resume=False, comes_back=(400, 700)),
    Person("10.0.3.32:33010", "curl/7.88.1", 250, leave=265, resume=False),
    Person("10.0.4.41:45000", "python-httpx/0.27.0", 20, retry=lambda failures: 1.0),
    Person("10.0.5.51:46000", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", 200),
]


async def post_message(sp: ScriptedProxy, person: Person, session: str) -> None:
    client = sp.client(person.address)
    await client.send(
        "POST",
        "/message",
        [
            ("user-agent", person.user_agent),
            ("content-type", "application/json"),
            ("mcp-session-id", session),
        ],
        body=b'{"jsonrpc": "2.0", "method": "ping", "id": 1}',
    )
    await client.response()
    await client.stream.aclose()


async def live(sp: ScriptedProxy, person: Person, start: float, leave: float) -> None:
    """One person's session: connect, read until the stream ends, reconnect, until `leave`."""
    await trio.sleep_until(start)
    last: str | None = None
    failures = 0
    with trio.move_on_at(leave):
        while True:
            headers = [("user-agent", person.user_agent), ("accept", "text/event-stream")]
            if person.session is not None:  # MCP streamable HTTP: one session across reconnects
                await post_message(sp, person, person.session)
                headers.append(("mcp-session-id", person.session))
            if person.resume and last is not None:
                headers.append(("last-event-id", last))
            client = sp.client(person.address)
            try:
                got = await client.get("/sse", headers)
            finally:
                await client.stream.aclose()
            ids = event_ids(got.body)
            last = ids[-1] if ids else last
            failures = 0 if got.status == 200 else failures + 1
            await trio.sleep(person.retry(failures))


def story_scenario() -> Scenario:
    """The scenario the example was recorded with (as written by `main`)."""
    return load_scenario(str(SCENARIO_FILE))


async def run_story(scenario: Scenario | None = None) -> list[dict[str, Any]]:
    """The journal records of the first 15 minutes."""
    async with scripted_proxy(scenario or story_scenario(), router) as sp:
        sp.journal.write(
            "started", "-", listen="0.0.0.0:8080", upstream="http://mcp-router:8080", mode="http"
        )
        async with trio.open_nursery() as nursery:
            for person in PEOPLE:
                nursery.start_soon(live, sp, person, person.start, person.leave)
                if person.comes_back is not None:
                    nursery.start_soon(live, sp, person, *person.comes_back)
            await trio.sleep_until(END)
            records = [r for r in sp.journal.records if r["t"] <= END]
            nursery.cancel_scope.cancel()
    return records


def generate(scenario: Scenario | None = None) -> list[dict[str, Any]]:
    return trio.run(run_story, scenario, clock=trio.testing.MockClock(autojump_threshold=0))


def screenshot(html: Path, png: Path) -> None:
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--hide-scrollbars",
                f"--screenshot={png}",
                "--window-size=1400,1000",
                html.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )


def main() -> None:
    scenario = compose_scenario()
    SCENARIO_FILE.write_text(
        "# The scenario of docs/example-journal.jsonl, written by `python -m tests.report.story`:\n"
        "# the nginx-default preset's faults, a 45 s event watchdog on the Java clients, and a\n"
        "# deployment at 7 min (every stream reset, 503 for 20 s).\n" + scenario.to_toml()
    )
    records = generate(scenario)
    journal = DOCS / "example-journal.jsonl"
    journal.write_text("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
    report = analyse(
        journal_from_records(records, str(journal.relative_to(DOCS.parent))), story_scenario()
    )
    with tempfile.TemporaryDirectory() as folder:
        page = Path(folder) / "report.html"
        page.write_text(render_html(report))
        screenshot(page, DOCS / "report.png")
    print(f"wrote {journal} ({len(records)} records) and {DOCS / 'report.png'}", file=sys.stderr)


if __name__ == "__main__":
    main()
