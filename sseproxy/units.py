"""Durations and sizes with units, as scenario files and query strings write them.

A bare number is refused for durations and sizes in scenario files: `timeout = 60` could
mean seconds or milliseconds, and a chaos tool that guesses wrong wastes an afternoon.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from sseproxy.errors import UnitError

__all__ = ["format_duration", "format_size", "parse_duration", "parse_size"]

_DURATION_UNITS = {
    "us": Fraction(1, 10**6),
    "ms": Fraction(1, 1000),
    "s": Fraction(1),
    "m": Fraction(60),
    "min": Fraction(60),
    "h": Fraction(3600),
}
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "k": 1024,
    "m": 1024**2,
    "g": 1024**3,
}
_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_DURATION_HINT = "a duration with a unit, e.g. '250ms', '15s', '10m', '1h'"
_SIZE_HINT = "a size with a unit, e.g. '100B', '4KiB', '1MiB', '10KB'"


def parse_duration(text: str, *, bare_seconds: bool = False) -> float:
    """'250ms' -> 0.25 seconds. `bare_seconds` accepts '1.5' (query strings, CLI)."""
    match = _NUMBER_UNIT.match(text) if isinstance(text, str) else None
    if match is None:
        raise UnitError(f"{text!r} is not {_DURATION_HINT}")
    number, unit = _exact(match.group(1), text), match.group(2).lower()
    if not unit:
        if not bare_seconds:
            raise UnitError(f"{text!r} has no unit; write {_DURATION_HINT}")
        unit = "s"
    if unit not in _DURATION_UNITS:
        raise UnitError(f"{text!r} has an unknown unit {unit!r}; write {_DURATION_HINT}")
    try:
        value = float(number * _DURATION_UNITS[unit])  # exact first: '119ms' is 0.119
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise UnitError(f"{text!r} is not a finite duration")
    return value


def _exact(number: str, text: str) -> Fraction:
    """The decimal as written, exactly (floats would lose digits of sizes and durations)."""
    exponent = number.lower().partition("e")[2]
    if exponent and abs(int(exponent)) > 400:  # '1e999999' would build a huge integer
        raise UnitError(f"{text!r} is out of range")
    return Fraction(number)


def parse_size(text: str, *, bare_bytes: bool = False) -> int:
    """'4KiB' -> 4096 bytes. `bare_bytes` accepts '4096' (query strings, CLI)."""
    match = _NUMBER_UNIT.match(text) if isinstance(text, str) else None
    if match is None:
        raise UnitError(f"{text!r} is not {_SIZE_HINT}")
    number, unit = _exact(match.group(1), text), match.group(2).lower()
    if not unit:
        if not bare_bytes:
            raise UnitError(f"{text!r} has no unit; write {_SIZE_HINT}")
        unit = "b"
    if unit not in _SIZE_UNITS:
        raise UnitError(f"{text!r} has an unknown unit {unit!r}; write {_SIZE_HINT}")
    value = number * _SIZE_UNITS[unit]
    if value.denominator != 1:
        raise UnitError(f"{text!r} is not a whole number of bytes")
    if value >= 2**63:
        raise UnitError(f"{text!r} is out of range (not a finite size a proxy could hold)")
    return int(value)


def format_duration(seconds: float) -> str:
    """The shortest exact spelling a scenario file accepts back: 0.25 -> '250ms'."""
    if seconds == 0:
        return "0s"
    for unit, scale in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3)):
        count = seconds / scale
        if unit in ("h", "m") and seconds < 2 * scale:
            continue  # "60s" and "90m" read better than "1m" and "1h30m"
        if count >= 1 and abs(count - round(count)) < 1e-9:
            return f"{round(count)}{unit}"
    milliseconds = seconds * 1000
    if milliseconds == round(milliseconds, 3):
        return f"{round(milliseconds, 3)!r}".removesuffix(".0") + "ms"
    return f"{seconds!r}s"


def format_size(size: int) -> str:
    """The shortest exact spelling: 4096 -> '4KiB', 1000 -> '1000B'."""
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"
