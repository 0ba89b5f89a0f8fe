"""Reading nginx's logs: the sseproxy log_format, refused formats, the error log's causes
and the join by connection number (hand-written lines)."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from click.testing import CliRunner

from sseproxy.nginx_format import LOG_FORMAT
from sseproxy.report.nginx_errors import classify, join, read_error_log
from sseproxy.report.nginx_log import NginxLogError, parse_access_line, read_access_log
from sseproxy.report_cli import report_command
from tests.report.nginx_lines import (
    CLIENT_GONE,
    HEAD_TIMEOUT,
    READ_TIMEOUT,
    REFUSED,
    T0,
    access,
    error,
    stamp,
)

COMBINED = (
    '10.0.0.1 - - [01/Mar/2026:10:00:05 +0000] "GET /sse HTTP/1.1" 200 512 "-" "curl/8.5.0"\n'
)


def test_a_line_in_the_format() -> None:
    text = access(65, 60.004, conn=17, upstream="10.1.0.1:8080, 10.1.0.2:8080")
    request = parse_access_line(text, 3)
    assert not isinstance(request, str), request
    assert request.line == 3
    assert request.end == pytest.approx(T0 + 65)
    assert request.start == pytest.approx(T0 + 5 - 0.004)
    assert (request.duration, request.status, request.connection) == (60.004, 200, 17)
    assert request.path == "/sse/events"
    assert request.upstream == "10.1.0.2:8080"  # the one that answered
    assert request.tried == ("10.1.0.1:8080",)  # proxy_next_upstream went past it
    assert request.accept == "text/event-stream"


def test_without_msec_time_local_gives_the_end_and_the_zone() -> None:
    text = access(65, 2.5, msec=False).replace("+0000]", "+0100]")
    request = parse_access_line(text)
    assert not isinstance(request, str), request
    assert request.end == T0 + 65 - 3600  # 10:01:05 at +01:00 is 09:01:05 UTC
    assert request.utc_offset == 3600


def test_fields_in_any_order_with_others_between_and_no_accept() -> None:
    text = (
        f'10.0.0.1 - - [{stamp(5)}] "GET /sse?x=1 HTTP/1.1" 499 0 "-" "-" conn=3 '
        'uct="0.001" upstream="-" urt="-" rt=0.250'
    )
    request = parse_access_line(text)
    assert not isinstance(request, str), request
    assert (request.upstream, request.upstream_time, request.accept) == ("", None, None)
    assert (request.path, request.target, request.user_agent) == ("/sse", "/sse?x=1", "")


def test_the_documented_format_is_what_the_parser_reads() -> None:
    assert LOG_FORMAT.startswith("log_format sseproxy '$remote_addr - $remote_user")
    for variable in ("$request_time", "$upstream_response_time", "$upstream_addr", "$connection"):
        assert variable in LOG_FORMAT


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (COMBINED, "has no $request_time (rt=), $upstream_response_time (urt=), "),
        (COMBINED.rstrip() + " rt=0.1 urt=0.1 upstream=a:1\n", "has no $connection (conn=)"),
        ('{"time": "2026-03-01T10:00:00", "status": 200}\n', "is not nginx's combined format"),
        ('10.0.0.1 - - [01/Mar/2026:10:00:05 +0000] "GET / HTTP/1.1" 200 5\n', "is not"),
    ],
)
def test_another_format_is_refused_naming_what_is_missing(
    text: str, says: str, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    log.write_text(text * 3)
    with pytest.raises(NginxLogError) as refused:
        read_access_log(str(log))
    assert says in str(refused.value)
    result = CliRunner().invoke(report_command, ["--nginx-log", str(log)])
    assert result.exit_code == 2
    message = result.output.strip()
    assert message.count("\n") == 0, message  # one line, no traceback
    assert f"{log}: line 1 " in message and "sseproxy report --help" in message


def test_a_few_unreadable_lines_are_counted_not_fatal(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(COMBINED + access(10, 5.0) + "garbage\n\n" + access(20, 5.0))
    read = read_access_log(str(log))
    assert (len(read.requests), read.unreadable) == (2, 2)


def test_gzip_and_empty_and_missing_files(tmp_path: Path) -> None:
    packed = tmp_path / "access.log.1.gz"
    packed.write_bytes(gzip.compress(access(10, 5.0).encode()))
    assert len(read_access_log(str(packed)).requests) == 1
    empty = tmp_path / "empty.log"
    empty.write_text("")
    with pytest.raises(NginxLogError, match="no access-log line"):
        read_access_log(str(empty))
    with pytest.raises(NginxLogError, match=r"cannot read .*missing\.log"):
        read_access_log(str(tmp_path / "missing.log"))


@pytest.mark.parametrize(
    ("message", "cause", "side"),
    [
        (READ_TIMEOUT, "proxy_read_timeout", "nginx"),
        (HEAD_TIMEOUT, "proxy_read_timeout-before-head", "nginx"),
        (REFUSED, "upstream-refused", "server"),
        (CLIENT_GONE, "client-closed", "client"),
        (
            "epoll_wait() reported that client prematurely closed connection, so upstream "
            "connection is closed too (104: Connection reset by peer) while reading upstream",
            "client-closed",
            "client",
        ),
        (
            "upstream timed out (110: Connection timed out) while connecting to upstream",
            "proxy_connect_timeout",
            "nginx",
        ),
        (
            "client timed out (110: Connection timed out) while sending to client",
            "send_timeout",
            "nginx",
        ),
        ("writev() failed (32: Broken pipe) while sending to client", "client-closed", "client"),
        (
            "upstream prematurely closed connection while reading upstream",
            "upstream-closed",
            "server",
        ),
        (
            "recv() failed (104: Connection reset by peer) while reading upstream",
            "upstream-reset",
            "server",
        ),
        ("no live upstreams while connecting to upstream", "no-live-upstreams", "server"),
        (
            "upstream prematurely closed connection while reading response header from upstream",
            "upstream-failed-before-head",
            "server",
        ),
        (
            "recv() failed (104: Connection reset by peer) while reading response header from "
            "upstream",
            "upstream-failed-before-head",
            "server",
        ),
        (
            "connect() failed (113: No route to host) while connecting to upstream",
            "upstream-unreachable",
            "server",
        ),
        (
            "upstream sent invalid header while reading response header from upstream",
            "upstream-invalid",
            "server",
        ),
    ],
)
def test_error_messages_name_the_cause(message: str, cause: str, side: str) -> None:
    found = classify(message)
    assert found is not None, message
    assert (found.key, found.side) == (cause, side)


def test_lines_that_are_not_about_an_end_have_no_cause() -> None:
    assert classify("client 10.0.0.1 closed keepalive connection") is None
    assert classify("client closed connection while waiting for request") is None


def test_the_error_log_is_joined_by_connection_and_time() -> None:
    """Connection 7 is kept alive for two streams; connection 3 is reused after a restart."""
    lines = [
        access(60, 60.0, conn=7, path="/sse/a"),  # 0..60, cut by the read timeout
        access(125, 60.0, conn=7, path="/sse/b"),  # 65..125 on the same connection
        access(20, 5.0, conn=3),  # 15..20
        access(4000, 10.0, conn=3),  # 3990..4000: nginx restarted, numbers began again
    ]
    errors = [
        error(125, 7, READ_TIMEOUT, path="/sse/b"),
        error(3999, 3, CLIENT_GONE, level="info"),
        error(500, 99, READ_TIMEOUT),  # a request the access log does not have
        error(30, 3, "client 10.0.0.1 closed keepalive connection", level="info"),
    ]
    access_log = read_access_log("a.log", lines)
    error_log = read_error_log("e.log", errors)
    assert error_log.info
    joined = join(access_log.requests, error_log)
    causes = {line: entry.cause.key for line, entry in joined.causes.items() if entry.cause}
    assert causes == {2: "proxy_read_timeout", 4: "client-closed"}
    assert joined.unmatched == 1


def test_a_failed_try_before_a_stream_is_not_how_the_stream_ended() -> None:
    lines = [access(30, 30.0, conn=5, upstream="10.1.0.1:8080, 10.1.0.2:8080")]
    errors = [error(0, 5, REFUSED)]
    joined = join(read_access_log("a", lines).requests, read_error_log("e", errors))
    assert joined.causes == {}
    assert [e.cause.key for e in joined.retries[1] if e.cause] == ["upstream-refused"]


def test_the_error_log_is_in_the_local_time_of_the_access_log() -> None:
    """nginx writes both in local time; only the access log says which zone (+01:00 here)."""
    lines = [access(60, 60.0, conn=4, msec=False).replace("+0000]", "+0100]")]
    joined = join(
        read_access_log("a", lines).requests, read_error_log("e", [error(60, 4, READ_TIMEOUT)])
    )
    assert [e.cause.key for e in joined.causes.values() if e.cause] == ["proxy_read_timeout"]
