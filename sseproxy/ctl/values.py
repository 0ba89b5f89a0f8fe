"""Values given on the `sseproxy ctl` command line: `--set KEY=VALUE` into JSON.

Kept apart because it is the one piece of parsing the commands share, and it must read
values the way a scenario file does (TOML, else a plain string).
"""

from __future__ import annotations

import math
import tomllib
from typing import Any

import click

__all__ = ["parse_assignment", "parse_value"]


def _plain(value: Any) -> bool:
    """A value JSON can carry as it is (no dates, no inf/nan)."""
    if isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_plain(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def parse_value(text: str) -> Any:
    """A TOML value (0.5, 3, true, ["a"], { path = "/x" }, "quoted") or else the text:
    `200ms` and `/events*` are strings, as in a scenario file."""
    if "\n" not in text:
        try:
            value = tomllib.loads(f"v = {text}")
        except tomllib.TOMLDecodeError:
            pass
        else:
            if set(value) == {"v"} and _plain(value["v"]):
                return value["v"]
    return text


def parse_assignment(text: str, into: dict[str, Any], *, unset: bool = False) -> None:
    """'delay=200ms' or 'match.path=/events*' into a nested dict (`unset`: KEY -> null)."""
    key, sep, raw = text.partition("=")
    if unset:
        key, sep, raw = text, "=", ""
    if not sep or not key.strip() or any(not part.strip() for part in key.split(".")):
        raise click.BadParameter(f"{text!r}: expected KEY=VALUE, e.g. delay=200ms")
    *parents, last = [part.strip() for part in key.split(".")]
    table = into
    for part in parents:
        child = table.setdefault(part, {})
        if not isinstance(child, dict):
            raise click.BadParameter(f"{text!r}: {part} is set twice")
        table = child
    table[last] = None if unset else parse_value(raw)
