"""What the nginx-log report concludes: limits from the presets, piles of durations next
to them and the preset that reproduces each, causes with and without the error log,
statuses, clients and upstreams (hand-written lines)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from sseproxy.report.limits import clusters, known_limits
from sseproxy.report.nginx_analysis import analyse_nginx
from sseproxy.report.nginx_errors import read_error_log
from sseproxy.report.nginx_log import read_access_log
from sseproxy.report.nginx_model import NginxReport
from sseproxy.report.nginx_render import render_nginx_html, render_nginx_json, render_nginx_text
from sseproxy.report_cli import report_command
from tests.report.nginx_lines import CLIENT_GONE, READ_TIMEOUT, REFUSED, access, error


def test_the_limits_come_from_the_presets() -> None:
    limits = {limit.seconds: limit for limit in known_limits()}
    expected = {
        60.0: {"nginx-default", "aws-alb", "ingress-nginx"},
        100.0: {"cloudflare"},
        55.0: {"heroku"},
        30.0: {"heroku", "gcp-lb", "spring-mvc-async"},
        300.0: {"nginx-seed-before", "cloud-run", "envoy-default"},
        600.0: {"nginx-seed-after"},
        15.0: {"envoy-default"},
        240.0: {"azure-lb"},
    }
    for seconds, presets in expected.items():
        assert presets <= set(limits[seconds].presets), (seconds, limits[seconds].label)
    assert "nginx-seed-before: proxy_read_timeout (idle-timeout)" in limits[300.0].label
    # a fault on the request (proxy_send_timeout 60 s, direction up) does not end streams
    assert "nginx-seed-before: proxy_send_timeout" not in limits[60.0].label
    assert "CloudFront" in limits[30.0].label  # documented, no preset
    mine = {x.seconds: x for x in known_limits([(42.0, "our gateway")])}
    assert mine[42.0].label == "our gateway (--limit)"


def test_durations_pile_up_next_to_known_limits_and_nowhere_else() -> None:
    rng = random.Random(4)
    spread = [rng.uniform(0, 900) for _ in range(60)]  # clients leaving whenever they like
    at_alb = [60.0 + rng.uniform(0, 0.3) for _ in range(20)]
    at_cloudflare = [100.0 + rng.uniform(0, 0.3) for _ in range(5)]
    durations = spread + at_alb + at_cloudflare
    found = clusters(durations, known_limits())
    first, second = found[:2]
    assert first.limit is not None and first.limit.seconds == 60.0
    assert second.limit is not None and second.limit.seconds == 100.0
    assert {durations[i] for i in first.members} >= set(at_alb)  # and a chance neighbour or so
    assert len(first.members) <= 20 + sum(1 for d in spread if 59 <= d <= 62)
    assert {durations[i] for i in second.members} >= set(at_cloudflare)
    assert all(c.limit is not None for c in found)  # the spread makes no pile of its own


def test_a_pile_at_no_known_limit_is_reproduced_with_a_round_setting() -> None:
    lines = [access(20 + 40 * i, 37.4 + 0.1 * i, conn=i + 1) for i in range(3)]
    errors = [error(20 + 40 * i, i + 1, READ_TIMEOUT) for i in range(3)]
    pile = _report(lines, errors).clusters[0]
    assert pile.reproduce == "sseproxy run --scenario nginx-default (with proxy_read_timeout = 37s)"


def test_thousands_of_random_durations_make_no_pile_at_a_limit_by_chance() -> None:
    rng = random.Random(7)
    spread = [rng.uniform(0, 900) for _ in range(20000)]
    at_alb = [60.0 + rng.uniform(0, 0.3) for _ in range(100)]
    found = clusters(spread + at_alb, known_limits())
    assert [c.limit.seconds for c in found if c.limit] == [60.0]


def _report(lines: list[str], errors: list[str] | None = None, **options: Any) -> NginxReport:
    access_log = read_access_log("access.log", lines)
    error_log = read_error_log("error.log", errors) if errors is not None else None
    return analyse_nginx(access_log, error_log, **options)


def test_the_user_story_at_600_s_without_the_error_log() -> None:
    lines = [access(600.2 + 700 * i, 600.2 + 0.01 * i, conn=i + 1) for i in range(8)]
    lines += [access(5000 + 20 * i, 12.0 + 3 * i, conn=50 + i) for i in range(4)]
    report = _report(lines)
    pile = report.clusters[0]
    assert (pile.limit, pile.count) == (600.0, 8)
    assert pile.presets == ["nginx-seed-after"]
    assert pile.reproduce == "sseproxy run --scenario nginx-seed-after"
    assert {r.cause for r in report.requests[:8]} == {"at the 10 min limit"}
    assert {r.cause for r in report.requests[8:]} == {"ended"}
    assert report.totals.causes_from == "inferred from durations and statuses"
    assert any("No error log" in n for n in report.notes)
    assert any("Reproduce: sseproxy run --scenario nginx-seed-after" in s for s in report.summary)


def test_who_cut_a_60_s_pile_picks_the_preset() -> None:
    """nginx's own read timeout -> the nginx preset; the client going away at 60 s -> what
    stands in front of nginx (an ALB) or the client."""
    cut = [access(60.1 + 100 * i, 60.1, conn=i + 1) for i in range(3)]
    by_nginx = _report(cut, [error(60 + 100 * i, i + 1, READ_TIMEOUT) for i in range(3)])
    assert by_nginx.clusters[0].reproduce == "sseproxy run --scenario nginx-default"
    by_client = _report(
        cut, [error(60 + 100 * i, i + 1, CLIENT_GONE, level="info") for i in range(3)]
    )
    assert by_client.clusters[0].reproduce == "sseproxy run --scenario aws-alb"
    assert {r.cause for r in by_client.requests} == {"client-closed"}


def test_a_pile_at_a_limit_that_nginx_did_not_log_is_something_else() -> None:
    """At error level nginx logs its own timeouts: 200s that lasted 100 s with no error
    line were cut by something else, such as Cloudflare in front of nginx."""
    lines = [access(100.1 + 200 * i, 100.1, conn=i + 1) for i in range(4)]
    lines.append(access(900, 0.0, conn=9, status=502))
    report = _report(lines, [error(900, 9, REFUSED)])
    assert {r.cause for r in report.requests if r.status == 200} == {"at the 1 min 40 s limit"}
    assert {r.side for r in report.requests if r.status == 200} == {"not nginx"}
    assert report.clusters[0].reproduce == "sseproxy run --scenario cloudflare"


def test_statuses_and_what_a_200_without_an_error_line_means() -> None:
    lines = [
        access(10, 10.0, conn=1),  # ended by the upstream: no line at info level
        access(11, 0.0, conn=2, status=502),
        access(12, 60.0, conn=3, status=504),
        access(13, 0.4, conn=4, status=499),
    ]
    info = [error(0, 9, "client 10.0.0.9 closed keepalive connection", level="info")]
    causes = {r.status: r.cause for r in _report(lines, info).requests}
    assert causes == {
        200: "upstream-end",
        502: "upstream-refused",
        504: "upstream-timeout",
        499: "client-closed-before-head",
    }
    quiet = _report(lines, [])
    assert {r.status: r.cause for r in quiet.requests}[200] == "ended-no-error"
    assert any("no info-level line" in n for n in quiet.notes)
    statuses = {s.status: s.meaning for s in quiet.statuses}
    assert "before the response head" in statuses[499]


def test_which_requests_are_streams() -> None:
    lines = [
        access(10, 10.0, path="/sse/a", accept="text/event-stream"),
        access(11, 0.1, path="/api/x", accept="application/json"),
        access(12, 30.0, path="/sse/b", accept="*/*", agent="curl/8.5.0"),
    ]
    assert [r.target for r in _report(lines).requests] == ["/sse/a"]
    by_path = _report(lines, paths=["/sse/*"])
    assert sorted(r.target for r in by_path.requests) == ["/sse/a", "/sse/b"]
    assert any("1 request not selected (path /sse/*): /api/x (1)" in n for n in by_path.notes)
    unlabelled = [line.replace(' accept="text/event-stream"', "") for line in lines[:1]]
    assert _report(unlabelled).totals.selection.startswith("every request")


def test_clients_by_family_and_an_ip_hash_imbalance() -> None:
    lines = [
        access(10 + i, 5.0, conn=i + 1, addr=f"10.0.0.{i}", upstream="10.1.0.1:8080")
        for i in range(8)
    ]
    lines += [
        access(30, 5.0, conn=20, addr="10.0.9.1", upstream="10.1.0.2:8080", agent="curl/8.5.0"),
        access(31, 5.0, conn=21, addr="10.0.9.2", upstream="10.1.0.2:8080", agent="okhttp/4.12.0"),
    ]
    report = _report(lines)
    assert {c.family: c.requests for c in report.clients} == {"browser": 8, "curl": 1, "java": 1}
    top = report.upstreams[0]
    assert (top.upstream, top.requests, top.clients, top.networks) == ("10.1.0.1:8080", 8, 8, 1)
    assert any(
        s.startswith("Upstreams are unbalanced: 10.1.0.1:8080 took 80 % of the requests its pool")
        for s in report.summary
    )


def test_reconnects_are_the_same_client_coming_back() -> None:
    lines = [access(60, 60.0, conn=1), access(123, 60.0, conn=2), access(900, 60.0, conn=3)]
    r = _report(lines).reconnects
    assert (r.reconnects, r.clients) == (1, 1)
    assert r.delay.p50 == 3.0


def test_streams_of_one_client_at_once_each_reconnect() -> None:
    # three tabs (or probe clients) of one address and user agent, cut together at 60 s,
    # back 3 s later, cut again: six reconnects, each 3 s after a cut
    lines = [access(60 + 63 * k, 60.0, conn=3 * k + i) for k in range(3) for i in range(3)]
    r = _report(lines).reconnects
    assert (r.reconnects, r.clients) == (6, 1)
    assert r.delay.p50 == r.delay.max == 3.0


def test_the_three_outputs() -> None:
    lines = [access(60.1 + 100 * i, 60.1, conn=i + 1) for i in range(3)]
    lines.append(access(400, 0.0, conn=9, status=502))
    report = _report(lines, [error(60 + 100 * i, i + 1, READ_TIMEOUT) for i in range(3)])
    text = render_nginx_text(report)
    for heading in ("SUMMARY", "WHY THEY ENDED", "STATUSES", "DURATIONS", "PILES", "CLIENTS"):
        assert f"\n{heading}" in text
    assert "UPSTREAMS" in text and "RECONNECTS" in text
    data = json.loads(render_nginx_json(report))
    assert data["kind"] == "nginx" and data["clusters"][0]["limit"] == 60.0
    page = render_nginx_html(report)
    assert page.count('"kind":"stream"') == 3 and page.count('"kind":"failed"') == 1
    assert "<code>sseproxy run --scenario nginx-default</code>" in page
    assert "<summary>Every request (4)</summary>" in page


def test_usage_mistakes_exit_2_with_one_line(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(access(10, 5.0))
    for args, says in [
        ([], "give JOURNAL... (from `sseproxy run --journal`) or --nginx-log FILE"),
        (["--path", "/x"], "go with --nginx-log FILE"),
        (["run.jsonl", "--nginx-log", str(log)], "not both"),
        (["--nginx-log", str(log), "--scenario", "aws-alb"], "use --limit"),
        (["--nginx-log", str(log), "--limit", "soon"], "soon"),
        (["--nginx-log", str(log), "--nginx-error-log", str(log)], "not an nginx error log"),
        (["--nginx-log", str(log), "--nginx-error-log", str(tmp_path / "none")], "cannot read"),
    ]:
        result = CliRunner().invoke(report_command, args)
        assert result.exit_code == 2, (args, result.output)
        assert says in result.output and result.output.strip().count("\n") == 0, result.output
