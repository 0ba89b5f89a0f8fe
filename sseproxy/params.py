"""Parameter declarations: each fault states its knobs once, here is what that means.

Scenario validation, `sseproxy scenarios describe`, the generated docs and the hypothesis
strategies all read these declarations, so a fault never restates its own parameters.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sseproxy.errors import UnitError
from sseproxy.units import format_duration, format_size, parse_duration, parse_size

__all__ = ["FRAMING", "REQUIRED", "Kind", "Param", "ParamError", "render_value", "shown"]

Kind = Literal[
    "duration", "size", "int", "float", "bool", "choice", "str", "headers", "names", "table"
]
"""`headers`: a table of HTTP header names to values; `names`: a list of header names;
`table`: a table whose shape the scenario reader checks itself (window, match)."""

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
"""What RFC 9110 §5.5 forbids in a field value: every ASCII control but HTAB."""
FRAMING = frozenset({"content-length", "transfer-encoding"})
"""Headers that frame a message: the proxy writes them itself, so no fault may set or
remove them (h11 refuses a message whose framing does not match its body)."""

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = _SHOWN.maxother = 60
_SHOWN.maxlevel = 2


def shown(value: Any) -> str:
    """`repr(value)` for a message, cut short: a 1 MB string or a table nested 10,000 deep
    must still give a one-line error (and no RecursionError)."""
    return _SHOWN.repr(value)


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Default of a parameter the scenario must give."""


class ParamError(ValueError):
    """A value refused by a declaration; the message says what was given and what is allowed.

    `field` names the parameter when the check that failed concerns a particular one
    (cross-field checks in `Fault.check` set it; `Param.parse` leaves it to the caller).
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Param:
    """One parameter of a fault: its type and unit, default, bounds and a one-line help."""

    name: str
    kind: Kind
    help: str
    default: Any = REQUIRED
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False
    """True when the parameter may be absent with no default (its value is then None)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Anything else a reader of declarations needs. `"time"`: how a value that is not a
    `duration` depends on time, for `run --time-scale` (`sseproxy.timescale`):
    `"per-second"` (a rate, divided by the factor) or `"ms"` (milliseconds, multiplied)."""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED and not self.optional

    def allowed(self) -> str:
        """What a user may write, in words: the second half of every error message."""
        if self.kind == "choice":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        words = {
            "duration": "a duration with a unit such as '250ms' or '15s'",
            "size": "a size with a unit such as '100B' or '4KiB'",
            "int": "a whole number",
            "float": "a number",
            "bool": "true or false",
            "str": "a string",
            "headers": 'a table of header names to values, e.g. { "Retry-After" = "5" }',
            "names": 'a list of header names, e.g. ["Last-Event-ID"]',
            "table": "a table",
        }[self.kind]
        bounds = []
        if self.minimum is not None:
            bounds.append(f">= {self._show(self.minimum)}")
        if self.maximum is not None:
            bounds.append(f"<= {self._show(self.maximum)}")
        return words + (f" ({' and '.join(bounds)})" if bounds else "")

    def parse(self, value: Any) -> Any:
        """Turn a TOML value into the typed value a fault receives, or raise ParamError."""
        parsed = self._convert(value)
        if isinstance(parsed, int | float) and not isinstance(parsed, bool):
            if self.minimum is not None and parsed < self.minimum:
                raise ParamError(f"{shown(value)} is below the minimum; allowed: {self.allowed()}")
            if self.maximum is not None and parsed > self.maximum:
                raise ParamError(f"{shown(value)} is above the maximum; allowed: {self.allowed()}")
        return parsed

    def _convert(self, value: Any) -> Any:
        wrong = ParamError(f"{shown(value)} is not allowed; allowed: {self.allowed()}")
        if self.kind in ("duration", "size"):
            if not isinstance(value, str):
                raise wrong
            try:
                return parse_duration(value) if self.kind == "duration" else parse_size(value)
            except UnitError as error:
                raise ParamError(str(error)) from None
        if self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                raise wrong
            return value
        if self.kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise wrong
            if not math.isfinite(value):
                raise wrong
            return float(value)
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise wrong
            return value
        if self.kind == "choice":
            if value not in self.choices:
                raise wrong
            return value
        if self.kind == "headers":
            if not isinstance(value, dict):
                raise wrong
            headers = {
                _header_name(name): _header_value(name, text) for name, text in value.items()
            }
            seen: dict[str, str] = {}
            for name in headers:
                if (twin := seen.setdefault(name.lower(), name)) != name:
                    raise ParamError(
                        f"{twin} and {name} are the same header (names ignore case); give it once"
                    )
            return headers
        if self.kind == "table":
            if not isinstance(value, dict):
                raise wrong
            return value
        if self.kind == "names":
            if not isinstance(value, list):
                raise wrong
            return [_header_name(name) for name in value]
        if not isinstance(value, str):
            raise wrong
        return value

    def _show(self, number: float) -> str:
        if self.kind == "duration":
            return format_duration(number)
        if self.kind == "size":
            return format_size(int(number))
        return f"{number:g}"


def _header_name(name: Any) -> str:
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise ParamError(
            f"{shown(name)} is not a header name (letters, digits and !#$%&'*+-.^_`|~)"
        )
    if name.lower() in FRAMING:
        raise ParamError(
            f"{name} frames the message: the proxy writes it itself, so a fault may not "
            "add, set or remove it"
        )
    return name


def _header_value(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ParamError(f"header {name}: {shown(value)} is not a string")
    if any(c in value for c in "\r\n\0"):
        raise ParamError(
            f"header {name}: {shown(value)} contains CR, LF or NUL, which HTTP forbids"
        )
    if control := _CONTROL.search(value):
        raise ParamError(
            f"header {name}: {shown(value)} contains the control character "
            f"{control.group()!r}, which HTTP forbids (only tab, space and visible characters)"
        )
    if value != value.strip(" \t"):
        raise ParamError(
            f"header {name}: {shown(value)} starts or ends with a space or tab, "
            "which HTTP forbids (they may only stand between other characters)"
        )
    return value


def render_value(param: Param, value: Any) -> Any:
    """The TOML spelling of a typed value (inverse of `Param.parse`)."""
    if value is None:
        return None
    if param.kind == "duration":
        return format_duration(value)
    if param.kind == "size":
        return format_size(value)
    return value
