"""`sseproxy ctl scenario`: show the scenario in force, or replace it with a file or preset."""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import urlencode

import click

from sseproxy.ctl.client import ControlClient, Unreachable
from sseproxy.ctl.output import _dump, _json_option
from sseproxy.scenario import preset_names, preset_path
from sseproxy.words import plural

__all__ = ["scenario"]


@click.group()
def scenario() -> None:
    """Show the scenario in force, or replace it with a file.

    \b
    Examples:
      sseproxy ctl scenario show > now.toml
      sseproxy ctl scenario load nginx-default
    """


@scenario.command("show")
@_json_option
@click.pass_obj
def scenario_show(client: ControlClient, as_json: bool) -> None:
    """Print the scenario in force as a scenario file (TOML).

    Example: sseproxy ctl scenario show > now.toml
    """
    answer = client.json("GET", "/scenario")
    if as_json:
        _dump(answer)
    else:
        click.echo(str(answer["toml"]).rstrip())


@scenario.command("load")
@click.argument("file", metavar="FILE|PRESET|-")
@_json_option
@click.pass_obj
def scenario_load(client: ControlClient, file: str, as_json: bool) -> None:
    """Replace the scenario: checked by the proxy first (same messages as `run`); a bad
    one is refused (exit 1) and the old one stays.

    \b
    Examples:
      sseproxy ctl scenario load my-scenario.toml
      sseproxy ctl scenario load nginx-default
    """
    text, name = _read_scenario(file)
    answer = client.json(
        "PUT",
        f"/scenario?{urlencode({'file': name})}",
        body=text,
        content_type="application/toml",
    )
    if as_json:
        _dump(answer)
        return
    names = [fault["name"] for fault in answer.get("faults", [])]
    click.echo(
        f"loaded scenario {answer['name']}: {plural(len(names), 'fault')}"
        + (f" ({', '.join(names)})" if names else "")
    )


def _read_scenario(file: str) -> tuple[bytes, str]:
    """The file's bytes and the name errors will give (as `run --scenario` would)."""
    if file == "-":
        return sys.stdin.buffer.read(), "<stdin>"
    path = Path(file)
    if not path.is_file():
        preset = preset_path(file) if "/" not in file else None
        if preset is None:
            raise Unreachable(
                f"{file}: no such file, and no preset of that name "
                f"(presets: {', '.join(preset_names())})"
            )
        path = preset
    try:
        return path.read_bytes(), str(path)
    except OSError as error:
        raise Unreachable(f"{path}: cannot read: {error.strerror or error}") from None
