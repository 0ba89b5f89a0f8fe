"""`sseproxy ctl faults`: list, add, change and remove faults on a running proxy."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import click

from sseproxy.ctl.client import ControlClient
from sseproxy.ctl.output import _dump, _json_option, _settings, _table
from sseproxy.ctl.values import parse_assignment

__all__ = ["faults"]


def _print_faults(client: ControlClient, as_json: bool) -> None:
    answer = client.json("GET", "/faults")
    if as_json:
        _dump(answer)
        return
    faults = answer.get("faults", [])
    if not faults:
        click.echo(f"no faults (scenario {answer.get('scenario')})")
        return
    _table(
        [[f["name"], f["type"], _settings(f)] for f in faults],
        ["NAME", "TYPE", "SETTINGS"],
    )


@click.group(invoke_without_command=True)
@_json_option
@click.pass_context
def faults(ctx: click.Context, as_json: bool) -> None:
    """List, add, change and remove faults, live (open connections too).

    \b
    Examples:
      sseproxy ctl faults
      sseproxy ctl faults add --type latency --set delay=200ms --name slow
      sseproxy ctl faults set slow --set delay=1s
      sseproxy ctl faults rm slow
    """
    if ctx.invoked_subcommand is None:
        _print_faults(ctx.obj, as_json)


@faults.command("list")
@_json_option
@click.pass_obj
def faults_list(client: ControlClient, as_json: bool) -> None:
    """The faults in force, with their settings (defaults left out).

    Example: sseproxy ctl faults list --json
    """
    _print_faults(client, as_json)


_SET_HELP = (
    "A fault field, repeatable: delay=200ms, probability=0.5, match.path=/events*. "
    'Values are read as TOML (numbers, true, [lists], {tables}, "quoted"); '
    "anything else is a string."
)


@faults.command("add")
@click.option(
    "--type",
    "kind",
    required=True,
    metavar="FAULT",
    help="The fault (see `sseproxy scenarios describe`).",
)
@click.option("--name", help="Its name for the journal and for `set`/`rm` (default: the type).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@_json_option
@click.pass_obj
def faults_add(
    client: ControlClient,
    kind: str,
    name: str | None,
    assignments: tuple[str, ...],
    as_json: bool,
) -> None:
    """Add a fault; open connections get it too.

    \b
    Examples:
      sseproxy ctl faults add --type latency --set delay=200ms
      sseproxy ctl faults add --type reset --name kick --set events=5
      sseproxy ctl faults add --type idle-timeout --set timeout=20s --set match.path='/sse*'
    """
    table: dict[str, Any] = {"type": kind}
    if name is not None:
        table["name"] = name
    for text in assignments:
        parse_assignment(text, table)
    fault = client.json("POST", "/faults", data=table)
    if as_json:
        _dump(fault)
    else:
        click.echo(f"added {fault['name']} ({fault['type']}): {_settings(fault)}")


@faults.command("set")
@click.argument("name")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help=_SET_HELP)
@click.option(
    "--unset", "removals", multiple=True, metavar="KEY", help="Back to the default, repeatable."
)
@_json_option
@click.pass_obj
def faults_set(
    client: ControlClient,
    name: str,
    assignments: tuple[str, ...],
    removals: tuple[str, ...],
    as_json: bool,
) -> None:
    """Change a fault's fields; open connections get the new version.

    \b
    Examples:
      sseproxy ctl faults set latency --set delay=1s --set jitter=100ms
      sseproxy ctl faults set latency --unset jitter
    """
    if not assignments and not removals:
        raise click.UsageError("give --set KEY=VALUE or --unset KEY")
    patch: dict[str, Any] = {}
    for text in assignments:
        parse_assignment(text, patch)
    for text in removals:
        parse_assignment(text, patch, unset=True)
    fault = client.json("PATCH", f"/faults/{quote(name, safe='')}", data=patch)
    if as_json:
        _dump(fault)
    else:
        click.echo(f"changed {fault['name']} ({fault['type']}): {_settings(fault)}")


@faults.command("rm")
@click.argument("names", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Remove every fault.")
@_json_option
@click.pass_obj
def faults_rm(
    client: ControlClient, names: tuple[str, ...], everything: bool, as_json: bool
) -> None:
    """Remove faults by name; what they held back is released.

    \b
    Examples:
      sseproxy ctl faults rm latency
      sseproxy ctl faults rm --all
    """
    if everything == bool(names):
        raise click.UsageError("give fault names or --all")
    removed: list[str] = []
    if everything:
        removed = client.json("DELETE", "/faults")["removed"]
    for name in names:
        removed += client.json("DELETE", f"/faults/{quote(name, safe='')}")["removed"]
    if as_json:
        _dump({"removed": removed})
    else:
        click.echo(f"removed {', '.join(removed)}" if removed else "no faults to remove")
