"""`sseproxy report JOURNAL...`: the click command (registered in cli.py).

Exit status: 0 the report was written, 2 a usage or configuration error (a journal that
cannot be read or has no journal line, an unknown scenario, an HTML file that cannot be
written).
"""

from __future__ import annotations

import inspect
from typing import Any

import click

from sseproxy.errors import SseproxyError, UnitError
from sseproxy.nginx_cli import HELP as NGINX_HELP
from sseproxy.nginx_cli import nginx_options, nginx_report

__all__ = ["report_command"]


class _UsageProblem(click.ClickException):
    exit_code = 2


@click.command(
    "report", context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.argument("journals", nargs=-1, metavar="[JOURNAL...]")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of tables.")
@click.option(
    "--html",
    "html_path",
    metavar="FILE",
    help="Also write one self-contained HTML file: the tables and a timeline of every "
    "connection (opens offline).",
)
@click.option(
    "--scenario",
    "scenario_name",
    metavar="FILE|PRESET",
    help="The scenario the journal was recorded with (fault types and timeouts come from "
    "it). By default: the file the journal names, next to the journal or where it was "
    "run, else a preset of that name.",
)
@click.option(
    "--reconnect-window",
    default="2m",
    show_default=True,
    metavar="DURATION",
    help="A client connecting again within this long after its previous connection "
    "closed is reconnecting; later, it is a new visit.",
)
@nginx_options
def report_command(
    journals: tuple[str, ...],
    as_json: bool,
    html_path: str | None,
    scenario_name: str | None,
    reconnect_window: str,
    **nginx: Any,
) -> None:
    """Why streams died: totals, closes, durations, clients, reconnects, heartbeats.

    Reads journals written by `sseproxy run --journal FILE` or `sseproxy probe --journal
    FILE` ('-' reads stdin; several files, or several runs appended to one, are merged on
    one time axis; a probe's connections are matched with the proxy's of the same run).

    \b
    Examples:
      sseproxy report run.jsonl
      sseproxy report run.jsonl --html report.html
      sseproxy report a.jsonl b.jsonl --json | jq .reconnects.resume
      sseproxy report run.jsonl --scenario my-scenario.toml
      sseproxy report probe.jsonl run.jsonl   (a probe through that proxy, both views)
    """
    if nginx["nginx_log"] or not journals:
        try:
            shown = nginx_report(
                journals=journals,
                scenario=scenario_name,
                as_json=as_json,
                html_path=html_path,
                reconnect_window=reconnect_window,
                **nginx,
            )
        except (SseproxyError, UnitError) as error:
            raise _UsageProblem(str(error)) from None
        click.echo(shown, nl=False)
        return
    from sseproxy.report import analyse, read_journals, render_html, render_json, render_text
    from sseproxy.scenario import load_scenario
    from sseproxy.units import parse_duration

    try:
        window = parse_duration(reconnect_window, bare_seconds=True)
        scenario = load_scenario(scenario_name) if scenario_name else None
        read = read_journals(journals)
        if not read.runs:
            what = "no journal line" + (
                f" ({read.unreadable} unreadable)" if read.unreadable else ""
            )
            raise _UsageProblem(
                f"{', '.join(journals)}: {what}; give the file `sseproxy run --journal FILE` wrote"
            )
        report = analyse(read, scenario, reconnect_window=window)
    except (SseproxyError, UnitError) as error:
        raise _UsageProblem(str(error)) from None
    if html_path is not None:
        try:
            with open(html_path, "w", encoding="utf-8") as stream:
                stream.write(render_html(report))
        except OSError as error:
            raise _UsageProblem(f"cannot write {html_path}: {error.strerror}") from None
    click.echo(render_json(report) if as_json else render_text(report), nl=False)
    if html_path is not None and not as_json:
        click.echo(f"\nHTML report: {html_path}")


report_command.help = inspect.cleandoc(report_command.help or "") + "\n\n" + NGINX_HELP
