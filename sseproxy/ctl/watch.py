"""The read-only `sseproxy ctl` commands: `status`, `metrics` and `journal` (live).

Grouped because none of them changes the proxy: they show what it is doing.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import urlencode

import click

from sseproxy.ctl.client import ControlClient
from sseproxy.ctl.output import _age, _dump, _json_option, _show
from sseproxy.words import plural as _plural

__all__ = ["journal", "metrics", "status"]


@click.command()
@_json_option
@click.pass_obj
def status(client: ControlClient, as_json: bool) -> None:
    """The proxy, its scenario and faults, and its connections.

    Example: sseproxy ctl status
    """
    info = client.json("GET", "/status")
    if as_json:
        _dump(info)
        return
    connections = info.get("connections", {})
    click.echo(
        f"proxy      http://{info.get('listen')} -> {info.get('upstream')} ({info.get('mode')})"
    )
    click.echo(f"scenario   {info.get('scenario')} (seed {info.get('seed')})")
    click.echo(f"faults     {', '.join(info.get('faults', [])) or 'none'}")
    if info.get("time_scale", 1) != 1:
        click.echo(f"time scale {info['time_scale']:g} (every duration of the scenario)")
    click.echo(
        f"open       {_plural(connections.get('open', 0), 'connection')} "
        f"({connections.get('total')} since start)"
    )
    click.echo(f"uptime     {_age(float(info.get('uptime', 0)))}")
    click.echo(f"control    {client.url} (sseproxy {info.get('version')})")


@click.command()
@click.pass_obj
def metrics(client: ControlClient) -> None:
    """Print the Prometheus metrics (text format), as a scraper sees them.

    Example: sseproxy ctl metrics | grep sseproxy_connections
    """
    _, payload = client.call("GET", "/metrics")
    click.echo(payload.decode("utf-8", "replace").rstrip())


@click.command()
@click.option("--count", type=click.IntRange(min=1), help="Stop after this many records.")
@click.option(
    "--kind",
    "kinds",
    multiple=True,
    metavar="KIND",
    help="Only these kinds (opened, closed, fault...).",
)
@click.option(
    "--from-start",
    is_flag=True,
    help="First the records the proxy still keeps (its last 10000), then live ones.",
)
@_json_option
@click.pass_obj
def journal(
    client: ControlClient,
    count: int | None,
    kinds: tuple[str, ...],
    from_start: bool,
    as_json: bool,
) -> None:
    """Follow the journal live, from now on (Ctrl-C to stop).

    \b
    Examples:
      sseproxy ctl journal --kind closed --kind fault
      sseproxy ctl journal --json --count 100 > records.jsonl
    """
    params = {"kind": ",".join(kinds)} if kinds else {}
    if from_start:
        params["after"] = "0"
    query = f"?{urlencode(params)}" if params else ""
    seen = 0
    lines = client.lines(f"/journal{query}")
    with contextlib.suppress(KeyboardInterrupt), contextlib.closing(lines):
        for line in lines:
            if not line.startswith("data:"):
                continue
            text = line[5:].strip()
            click.echo(text if as_json else _journal_line(json.loads(text)))
            seen += 1
            if count is not None and seen >= count:
                return


def _journal_line(record: dict[str, Any]) -> str:
    skip = ("t", "ts", "kind", "conn", "scenario", "seed")
    rest = " ".join(f"{k}={_show(v)}" for k, v in record.items() if k not in skip)
    t, conn, kind = float(record.get("t", 0)), record.get("conn", "-"), record.get("kind", "?")
    return f"{t:10.3f}  {conn:<5} {kind:<9} {rest}"
