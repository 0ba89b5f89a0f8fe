"""`sseproxy report --nginx-log FILE`: the options and what they run.

`report_cli.py` adds these options with `@nginx_options` and hands over to `nginx_report`
when `--nginx-log` is given, so the journal report's command stays as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from sseproxy.errors import ConfigError
from sseproxy.nginx_format import ACCESS_LOG_LINE, ERROR_LOG_LINE, LOG_FORMAT

__all__ = ["HELP", "nginx_options", "nginx_report"]

F = TypeVar("F", bound=Callable[..., Any])

HELP = f"""\
\b
nginx logs: `--nginx-log FILE` explains the long-lived requests of the nginx
in front of an SSE service instead: why each ended (from the error log,
joined by connection number), durations next to known limits and the
preset that reproduces them, statuses, clients, upstreams. Paste into
nginx's http {{}} block (error_log at info level logs clients going away):
\b
  {LOG_FORMAT}
  {ACCESS_LOG_LINE}
  {ERROR_LOG_LINE}
\b
  sseproxy report --nginx-log access.log --nginx-error-log error.log
  sseproxy report --nginx-log access.log --path '/sse/*' --html nginx.html
  sseproxy report --nginx-log access.log.1.gz --limit 300s=our-proxy --json
"""


def nginx_options(command: F) -> F:
    options = (
        click.option(
            "--nginx-log",
            metavar="FILE",
            help="Read nginx's access log (in the sseproxy log_format below; .gz too) "
            "instead of journals.",
        ),
        click.option(
            "--nginx-error-log",
            metavar="FILE",
            help="nginx's error log, to tell why each request ended (with --nginx-log).",
        ),
        click.option(
            "--path",
            "paths",
            multiple=True,
            metavar="GLOB",
            help="With --nginx-log: the SSE requests are those on these paths (repeatable; "
            "default: Accept: text/event-stream when logged, else every request).",
        ),
        click.option(
            "--limit",
            "limits",
            multiple=True,
            metavar="DURATION[=NAME]",
            help="With --nginx-log: a limit of yours to label durations with (repeatable), "
            "beside the presets' and documented ones.",
        ),
    )
    for option in reversed(options):
        command = option(command)
    return command


def nginx_report(
    *,
    journals: Sequence[str],
    scenario: str | None,
    as_json: bool,
    html_path: str | None,
    reconnect_window: str,
    nginx_log: str | None,
    nginx_error_log: str | None,
    paths: Sequence[str],
    limits: Sequence[str],
) -> str:
    """The report to print (and the HTML page written); ConfigError for a usage mistake."""
    from sseproxy.report.limits import parse_limit
    from sseproxy.report.nginx_analysis import analyse_nginx
    from sseproxy.report.nginx_errors import read_error_log
    from sseproxy.report.nginx_log import read_access_log
    from sseproxy.report.nginx_render import (
        render_nginx_html,
        render_nginx_json,
        render_nginx_text,
    )
    from sseproxy.units import parse_duration

    if nginx_log is None:
        raise ConfigError(
            "give JOURNAL... (from `sseproxy run --journal`) or --nginx-log FILE"
            if not (nginx_error_log or paths or limits)
            else "--nginx-error-log, --path and --limit go with --nginx-log FILE"
        )
    if journals:
        raise ConfigError("give either JOURNAL... or --nginx-log FILE, not both")
    if scenario is not None:
        raise ConfigError("--scenario explains journals; with --nginx-log, use --limit")
    window = parse_duration(reconnect_window, bare_seconds=True)
    extra = [parse_limit(text) for text in limits]
    access = read_access_log(nginx_log)
    errors = read_error_log(nginx_error_log) if nginx_error_log else None
    report = analyse_nginx(access, errors, paths=paths, limits=extra, reconnect_window=window)
    if html_path is not None:
        try:
            with open(html_path, "w", encoding="utf-8") as stream:
                stream.write(render_nginx_html(report))
        except OSError as error:
            raise ConfigError(f"cannot write {html_path}: {error.strerror}") from None
    if as_json:
        return render_nginx_json(report)
    shown = render_nginx_text(report)
    return shown + (f"\nHTML report: {html_path}\n" if html_path else "")
