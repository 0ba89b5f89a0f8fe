"""Fidelity: sseproxy's idle-timeout against HAProxy's `timeout server`, side by side.

HAProxy's `timeout server` is an inactivity timeout on the server side: before the
response head it answers 504, mid-response it closes (`sD` in its logs). The same origin
and raw-socket client go through HAProxy and through `sseproxy run` with `idle-timeout`;
measurements and differences: docs/fidelity.md. Skipped without haproxy on PATH.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from tests.peers.common import (
    Observed,
    RawServer,
    assert_ends_alike,
    fetch,
    free_port,
    origin,
    parallel,
    report,
    scenario_toml,
    silent,
    sseproxy_run,
    within,
)
from tests.peers.haproxy import HAPROXY, Route, haproxy

if HAPROXY is None:
    pytest.skip(
        "haproxy is not installed (apt-get install haproxy); .ci/run installs it",
        allow_module_level=True,
    )

TIMEOUT = 1.0  # timeout server 1s, and sseproxy's idle-timeout 1s
SILENT = "/events?interval=100&heartbeat=0"  # event 1 at once, then silence
BEAT = 0.5
HEARTBEATS = f"/events?interval=100&heartbeat={BEAT}"
WINDOW = 2.6 * TIMEOUT  # long enough for two cuts, had there been one
SCENARIO = scenario_toml(
    "haproxy-timeout-server-1s",
    {"type": "idle-timeout", "timeout": "1s", "counts": "bytes", "action": "close", "status": 504},
)

# haproxy-default's 200 ms hold after the timeout: the timer sees the server's bytes as
# they come, and its close is not held like the data (issue: the close waited behind it)
DELAYED = SCENARIO + '\n[[faults]]\nname = "no-http-no-delay"\ntype = "latency"\ndelay = "200ms"\n'


@dataclass
class Seen:
    mid_stream: Observed
    heartbeats: Observed
    heartbeats_no_delay: Observed  # option http-no-delay
    before_head: Observed
    ours_mid_stream: Observed
    ours_heartbeats: Observed
    ours_before_head: Observed
    ours_delayed_mid_stream: Observed  # idle-timeout, then haproxy-default's hold


@pytest.fixture(scope="module")
def seen(tmp_path_factory: pytest.TempPathFactory) -> Seen:
    folder = tmp_path_factory.mktemp("haproxy")
    with origin() as up, RawServer(silent) as hung:
        routes = [
            Route("sse", up),
            Route("nodelay", up, ["option http-no-delay"]),
            Route("hung", hung.port),
        ]
        with (
            haproxy(folder / "haproxy", routes) as port,
            sseproxy_run(up, SCENARIO, folder) as proxy,
            sseproxy_run(hung.port, SCENARIO, folder) as hung_proxy,
            sseproxy_run(up, DELAYED, folder) as delayed_proxy,
        ):
            result = Seen(
                *parallel(
                    partial(fetch, port, f"/sse{SILENT}", timeout=5),
                    partial(fetch, port, f"/sse{HEARTBEATS}", timeout=WINDOW),
                    partial(fetch, port, f"/nodelay{HEARTBEATS}", timeout=WINDOW),
                    partial(fetch, port, "/hung/events", timeout=4, linger=0.5),
                    partial(fetch, proxy, SILENT, timeout=5),
                    partial(fetch, proxy, HEARTBEATS, timeout=WINDOW),
                    partial(fetch, hung_proxy, "/events", timeout=4, linger=0.5),
                    partial(fetch, delayed_proxy, SILENT, timeout=5),
                )
            )
    for name, observed in vars(result).items():
        peer = "sseproxy" if name.startswith("ours_") else "haproxy"
        report(name.removeprefix("ours_"), peer, observed, body=observed.body_bytes[:200].decode())
    return result


def ids(observed: Observed) -> list[int]:
    return [n for _, n in observed.events()]


def test_haproxy_timeout_server_mid_stream_is_a_fin_without_the_terminating_chunk(
    seen: Seen,
) -> None:
    cut = seen.mid_stream
    assert (cut.status, ids(cut)) == (200, [1]), cut.summary()
    facts = (cut.ending, cut.chunked, cut.terminating_chunk, cut.complete)
    assert facts == ("fin", True, False, False), cut.summary()
    assert within(cut.ended_at, TIMEOUT), cut.summary()


def test_sseproxy_idle_timeout_cuts_like_haproxy(seen: Seen) -> None:
    assert_ends_alike(seen.ours_mid_stream, seen.mid_stream, "haproxy")


def test_comment_heartbeats_keep_the_stream_open_through_both(seen: Seen) -> None:
    for observed in (seen.heartbeats, seen.heartbeats_no_delay, seen.ours_heartbeats):
        facts = (observed.status, observed.ending, ids(observed))
        assert facts == (200, "open", [1]), observed.summary()
        assert len(observed.heartbeats()) >= 4, observed.summary()


def test_haproxy_holds_each_streamed_chunk_about_200ms_without_http_no_delay(
    seen: Seen,
) -> None:
    def lateness(observed: Observed) -> list[float]:
        return [round(at - BEAT * k, 3) for k, at in enumerate(observed.heartbeats(), 1)]

    assert all(0.15 <= late <= 0.3 for late in lateness(seen.heartbeats)), lateness(seen.heartbeats)
    assert all(late < 0.1 for late in lateness(seen.heartbeats_no_delay))
    assert all(late < 0.1 for late in lateness(seen.ours_heartbeats))


def test_haproxy_answers_504_when_the_server_is_silent_before_the_head(seen: Seen) -> None:
    answer = seen.before_head
    assert answer.status == 504
    assert within(answer.head_at, TIMEOUT), answer.summary()
    assert answer.data.startswith(b"HTTP/1.1 504 Gateway Time-out\r\n")
    assert answer.headers["content-type"] == "text/html"
    assert b"<h1>504 Gateway Time-out</h1>" in answer.body_bytes
    assert answer.complete
    assert answer.ending == "open"  # kept alive


def test_sseproxy_answers_504_when_haproxy_does(seen: Seen) -> None:
    ours, theirs = seen.ours_before_head, seen.before_head
    assert (ours.status, ours.complete) == (theirs.status, theirs.complete), ours.summary()
    assert within(ours.head_at, theirs.head_at or 0.0), (ours.head_at, theirs.head_at)


def test_sseproxy_504_is_the_same_response_as_haproxy(seen: Seen) -> None:
    """The status line and the kept-alive connection; HAProxy's body is its own HTML,
    sseproxy's one line of text (docs/fidelity.md, 6)."""
    ours = seen.ours_before_head
    assert ours.data.startswith(b"HTTP/1.1 504 Gateway Time-out\r\n")
    assert ours.ending == seen.before_head.ending == "open"


def test_the_hold_delays_data_but_not_the_timeouts_close_as_in_haproxy(seen: Seen) -> None:
    # HAProxy without http-no-delay: event 1 about 200 ms late, yet the cut comes
    # `timeout server` after the server's last byte, not after the client's
    ours, theirs = seen.ours_delayed_mid_stream, seen.mid_stream
    (ours_first, _), (theirs_first, _) = ours.events()[0], theirs.events()[0]
    assert 0.15 <= theirs_first <= 0.3 and 0.15 <= ours_first <= 0.3, (ours_first, theirs_first)
    assert within(ours.ended_at, TIMEOUT) and within(theirs.ended_at, TIMEOUT), ours.summary()
    assert ours.ending == theirs.ending == "fin"


# -- the server is down: connect retries ------------------------------------------------------

HAPROXY_DEFAULT = (
    Path(__file__).parents[2] / "sseproxy" / "scenarios" / "haproxy-default.toml"
).read_text(encoding="utf-8")


@dataclass
class Down:
    default: Observed  # retries 3 (the default), timeout connect 1s
    no_retries: Observed  # retries 0
    short_connect: Observed  # timeout connect 200ms: the pause is min(timeout connect, 1s)
    ours: Observed  # sseproxy with the haproxy-default preset


@pytest.fixture(scope="module")
def down(tmp_path_factory: pytest.TempPathFactory) -> Down:
    folder = tmp_path_factory.mktemp("haproxy-down")
    closed = free_port()  # nothing listens there: every connect is refused at once
    routes = [
        Route("default", closed),
        Route("none", closed, ["retries 0"]),
        Route("short", closed, ["timeout connect 200ms"]),
    ]
    with (
        haproxy(folder / "haproxy", routes) as port,
        sseproxy_run(closed, HAPROXY_DEFAULT, folder) as proxy,
    ):
        looks = [
            partial(fetch, port, f"/{name}/events", timeout=6, linger=0.5)
            for name in ("default", "none", "short")
        ]
        looks.append(partial(fetch, proxy, "/events", timeout=6, linger=0.5))
        result = Down(*parallel(*looks))
    for name, observed in vars(result).items():
        peer = "sseproxy" if name == "ours" else f"haproxy {name}"
        report("server-down", peer, observed, body=observed.body_bytes[:200].decode())
    return result


def test_haproxy_answers_503_after_its_connect_retries_when_the_server_is_down(
    down: Down,
) -> None:
    """`retries 3` with a pause of min(`timeout connect`, 1 s) after each refusal: 3 s."""
    # Lower bounds are exact (HAProxy cannot answer before its pauses); upper ones leave
    # room for a loaded machine.
    waits = ((down.default, 3.0), (down.no_retries, 0.0), (down.short_connect, 0.6))
    for observed, after in waits:
        assert observed.status == 503, observed.summary()
        head_at = observed.head_at
        assert head_at is not None and after - 0.01 <= head_at < after + 0.4, observed.summary()
        assert observed.data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        assert b"No server is available to handle this request." in observed.body_bytes
        assert observed.complete and observed.ending == "open"  # kept alive


def test_sseproxy_haproxy_default_answers_503_after_3s_like_haproxy(down: Down) -> None:
    ours, theirs = down.ours, down.default
    assert ours.status == theirs.status, ours.summary()
    assert within(ours.head_at, theirs.head_at or 0.0), (ours.head_at, theirs.head_at)
    assert ours.data.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert ours.ending == theirs.ending == "open"  # kept alive, as HAProxy keeps it
