"""`sseproxy ctl connections` and `sseproxy ctl kill`: see and end open connections."""

from __future__ import annotations

from urllib.parse import quote, urlencode

import click

from sseproxy.ctl.client import ControlClient
from sseproxy.ctl.output import _age, _dump, _json_option, _size, _table

__all__ = ["connections", "kill"]


@click.command()
@_json_option
@click.pass_obj
def connections(client: ControlClient, as_json: bool) -> None:
    """The open connections: client, age, path, bytes and events down, last id, faults.

    Example: sseproxy ctl connections
    """
    answer = client.json("GET", "/connections")
    if as_json:
        _dump(answer)
        return
    rows = [
        [
            str(c.get("id")),
            f"{c.get('client')}:{c.get('client_port')}"
            if c.get("client_port")
            else str(c.get("client")),
            _age(float(c.get("age") or 0)),
            f"{c.get('method') or ''} {c.get('path') or ''}".strip() or "-",
            _size(int(c.get("bytes_down") or 0)),
            str(c.get("events_down", 0)),
            str(c.get("last_id") or "-"),
            ",".join(c.get("faults") or []) or "-",
        ]
        for c in answer.get("connections", [])
    ]
    if not rows:
        click.echo("no open connections")
        return
    _table(rows, ["ID", "CLIENT", "AGE", "REQUEST", "DOWN", "EVENTS", "LAST-ID", "FAULTS"])


@click.command()
@click.argument("ids", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Every open connection.")
@click.option("--reset", is_flag=True, help="Send a TCP RST instead of closing (FIN).")
@_json_option
@click.pass_obj
def kill(
    client: ControlClient, ids: tuple[str, ...], everything: bool, reset: bool, as_json: bool
) -> None:
    """Close (or reset) connections by id (see `ctl connections`), or all of them.

    \b
    Examples:
      sseproxy ctl kill c3
      sseproxy ctl kill --all --reset
    """
    if everything == bool(ids):
        raise click.UsageError("give connection ids (e.g. c3) or --all")
    how = urlencode({"how": "reset" if reset else "close"})
    killed: list[str] = []
    if everything:
        killed = client.json("DELETE", f"/connections?{how}")["killed"]
    for conn_id in ids:
        killed += client.json("DELETE", f"/connections/{quote(conn_id, safe='')}?{how}")["killed"]
    if as_json:
        _dump({"killed": killed, "how": "reset" if reset else "close"})
    elif not killed:
        click.echo("no open connections")
    else:
        click.echo(f"{'reset' if reset else 'closed'} {', '.join(killed)}")
