"""How `sseproxy ctl` prints: values, tables, sizes, ages, and the shared `--json` flag.

Shared by every command group, so the output looks the same everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click


def _show(value: Any) -> str:
    if isinstance(value, str):
        return (
            value
            if value and all(c.isprintable() and c not in " ,=" for c in value)
            else (json.dumps(value))
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    return str(value)


def _settings(fault: dict[str, Any]) -> str:
    rest = [f"{k}={_show(v)}" for k, v in fault.items() if k not in ("type", "name")]
    return ", ".join(rest) or "defaults"


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _size(octets: int) -> str:
    value = float(octets)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{octets}B" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    return f"{octets}B"


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def _dump(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))


JSON_KEY = "sseproxy.ctl.json"
"""`ctx.meta` key: `ctl --json` was given before the command (`ctl --json status`)."""


def _json_either(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    return value or bool(ctx.meta.get(JSON_KEY))


def _json_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """`--json` after the command; `ctl --json COMMAND` means the same."""
    return click.option(
        "--json", "as_json", is_flag=True, callback=_json_either, help="Print JSON for machines."
    )(command)
