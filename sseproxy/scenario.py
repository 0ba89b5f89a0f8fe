"""Scenario files: TOML in, a validated and typed `Scenario` out, or one clear error.

A scenario is data, never code. It is refused as a whole when anything is wrong, and the
message names the file, the line (where it can be found), the fault (index and name),
the field, what was given and what is allowed.
"""

from __future__ import annotations

import builtins
import fnmatch
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from sseproxy.errors import ScenarioError
from sseproxy.faults import all_faults, get_fault
from sseproxy.faults.base import Fault
from sseproxy.params import Param, ParamError, render_value
from sseproxy.units import format_duration

__all__ = [
    "COMMON_FIELDS",
    "Direction",
    "FaultSpec",
    "Match",
    "RequestInfo",
    "Scenario",
    "Window",
    "load_scenario",
    "parse_scenario",
    "preset_names",
    "preset_path",
]

Direction = Literal["down", "up", "both"]

COMMON_FIELDS: tuple[Param, ...] = (
    Param("type", "str", "The fault's name (see `sseproxy scenarios describe`)."),
    Param(
        "name",
        "str",
        "A name for journal lines and live control (default: the type).",
        optional=True,
    ),
    Param(
        "direction",
        "choice",
        "down = server to client, up = client to server, or both.",
        default="down",
        choices=("down", "up", "both"),
    ),
    Param(
        "probability",
        "float",
        "Chance that a connection gets this fault (drawn from the seed, per connection).",
        default=1.0,
        minimum=0,
        maximum=1,
    ),
    Param(
        "after",
        "duration",
        "Connection time at which the fault starts acting.",
        default=0.0,
        minimum=0,
    ),
    Param(
        "every",
        "int",
        "Only every Nth matching connection (3 = the 3rd, 6th, ...).",
        default=1,
        minimum=1,
    ),
    Param(
        "first",
        "int",
        "Only the first N connections (of those `every` picks).",
        optional=True,
        minimum=1,
    ),
    Param("window", "table", 'Scenario time span: { from = "30s", until = "90s" }.', optional=True),
    Param(
        "match",
        "table",
        'Which requests: { path = "/sse/*", method = "GET", '
        'headers = { Accept = "text/event-stream" } }.',
        optional=True,
    ),
)
_SCALAR_COMMON = {p.name: p for p in COMMON_FIELDS if p.name not in ("type", "window", "match")}
_SCENARIO_FIELDS = ("name", "description", "source", "seed")
_HEADER = re.compile(r"^\s*(\[\[?\s*[^\]]+?\s*\]\]?)\s*(?:#.*)?$")


@dataclass(frozen=True)
class RequestInfo:
    """What `match` can look at: an HTTP request's method, path and headers."""

    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    """Lower-case names."""


@dataclass(frozen=True)
class Window:
    """A span of scenario time (seconds since the proxy started)."""

    start: float = 0.0
    end: float = math.inf


@dataclass(frozen=True)
class Match:
    """Which requests a fault applies to; every given condition must hold."""

    path: str | None = None
    methods: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def matches(self, request: RequestInfo | None) -> bool:
        if request is None:  # TCP mode has no request: only an empty match applies
            return not (self.path or self.methods or self.headers)
        path = request.path.split("?", 1)[0]
        if self.path is not None and not fnmatch.fnmatchcase(path, self.path):
            return False
        if self.methods and request.method.upper() not in self.methods:
            return False
        return all(
            name in request.headers and fnmatch.fnmatchcase(request.headers[name], pattern)
            for name, pattern in self.headers
        )


@dataclass(frozen=True)
class FaultSpec:
    """One `[[faults]]` entry, validated: the fault's own settings plus the common fields."""

    type: str
    name: str
    settings: Mapping[str, Any]
    direction: Direction = "down"
    probability: float = 1.0
    after: float = 0.0
    every: int = 1
    first: int | None = None
    window: Window = Window()
    match: Match = Match()

    @property
    def fault_class(self) -> builtins.type[Fault]:
        cls = get_fault(self.type)
        assert cls is not None
        return cls

    def to_table(self) -> dict[str, Any]:
        """The TOML table this spec came from (defaults left out)."""
        table: dict[str, Any] = {"type": self.type}
        if self.name != self.type:
            table["name"] = self.name
        for param in self.fault_class.params:
            value = self.settings.get(param.name)
            if value is not None and value != param.default:
                table[param.name] = render_value(param, value)
        for key, param in _SCALAR_COMMON.items():
            value = getattr(self, key, None)
            if key != "name" and value is not None and value != param.default:
                table[key] = render_value(param, value)
        if self.window != Window():
            window: dict[str, str] = {}
            if self.window.start:
                window["from"] = format_duration(self.window.start)
            if self.window.end < math.inf:
                window["until"] = format_duration(self.window.end)
            table["window"] = window
        if self.match != Match():
            match: dict[str, Any] = {}
            if self.match.path is not None:
                match["path"] = self.match.path
            if self.match.methods:
                match["method"] = list(self.match.methods)
            if self.match.headers:
                match["headers"] = dict(self.match.headers)
            table["match"] = match
        return table


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str = ""
    source: str = ""
    seed: int | None = None
    faults: tuple[FaultSpec, ...] = ()
    path: str | None = None

    def to_toml(self) -> str:
        """A scenario file that loads back into an equal scenario (hypothesis replays)."""
        lines = ["[scenario]", f"name = {_toml(self.name)}"]
        if self.description:
            lines.append(f"description = {_toml(self.description)}")
        if self.source:
            lines.append(f"source = {_toml(self.source)}")
        if self.seed is not None:
            lines.append(f"seed = {self.seed}")
        for spec in self.faults:
            lines += ["", "[[faults]]"]
            lines += [f"{key} = {_toml(value)}" for key, value in spec.to_table().items()]
        return "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _toml(key)


# -- loading ------------------------------------------------------------------------------


def preset_names() -> list[str]:
    """The presets shipped in the package (`scenarios/*.toml`)."""
    folder = resources.files("sseproxy") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def preset_path(name: str) -> Path | None:
    candidate = resources.files("sseproxy") / "scenarios" / f"{name}.toml"
    return Path(str(candidate)) if candidate.is_file() else None


def load_scenario(name_or_path: str) -> Scenario:
    """A file path, or a preset's name (`nginx-default`)."""
    path = Path(name_or_path)
    if not path.is_file():
        preset = preset_path(name_or_path) if "/" not in name_or_path else None
        if preset is None:
            known = ", ".join(preset_names())
            raise ScenarioError(
                f"no such file, and no preset of that name (presets: {known})",
                file=name_or_path,
            )
        path = preset
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ScenarioError(f"cannot read: {error}", file=str(path)) from None
    return parse_scenario(text, file=str(path))


def parse_scenario(text: str, *, file: str = "<scenario>") -> Scenario:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"not valid TOML: {error}", file=file) from None
    return _Reader(text, file).scenario(data)


@dataclass
class _Reader:
    text: str
    file: str

    def fail(
        self, message: str, *, fault: int | None = None, name: str = "", key: str | None = None
    ) -> ScenarioError:
        line = self._line(fault, key)
        parts = []
        if fault is not None:
            parts.append(f"fault #{fault + 1}" + (f" ({name})" if name else ""))
        if key is not None:
            parts.append(f"field {key!r}")
        file = f"{self.file}:{line}" if line else self.file
        return ScenarioError(message, file=file, where=", ".join(parts) or None)

    def _line(self, fault: int | None, key: str | None) -> int | None:
        """Best effort: the line of `key` in the fault-th [[faults]] table, or in [scenario],
        or of a table header named `key` (tomllib keeps no positions, so we look)."""
        lines = self.text.splitlines()
        heads = [
            (i, match.group(1)) for i, line in enumerate(lines) if (match := _HEADER.match(line))
        ]
        sections: list[tuple[str, int, int]] = [("", 0, heads[0][0] if heads else len(lines))]
        for n, (i, name) in enumerate(heads):
            end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
            sections.append((name.strip("[] \t"), i, end))
        if fault is not None:
            faults = [s for s in sections if s[0] == "faults"]
            if fault >= len(faults):
                return None
            candidates = [faults[fault]]
        else:
            candidates = [s for s in sections if s[0] in ("", "scenario")]
            header = next((i for name, i, _ in sections if key and name == key), None)
            if header is not None:
                return header + 1
        if key is None:
            return candidates[0][1] + 1 if fault is not None else None
        pattern = re.compile(rf"^\s*[\"']?{re.escape(key.split('.')[0])}[\"']?\s*[=.]")
        for _, start, end in candidates:
            for i in range(start, end):
                if pattern.match(lines[i]):
                    return i + 1
        return candidates[0][1] + 1 if fault is not None else None

    def scenario(self, data: dict[str, Any]) -> Scenario:
        unknown = sorted(set(data) - {"scenario", "faults"})
        if unknown:
            raise self.fail(
                f"unknown top-level key {unknown[0]!r}; allowed: [scenario], [[faults]]",
                key=unknown[0],
            )
        head = data.get("scenario", {})
        if not isinstance(head, dict):
            raise self.fail("[scenario] must be a table", key="scenario")
        for key in head:
            if key not in _SCENARIO_FIELDS:
                raise self.fail(
                    f"unknown field in [scenario]; allowed: {', '.join(_SCENARIO_FIELDS)}", key=key
                )
        for key in ("name", "description", "source"):
            if key in head and not isinstance(head[key], str):
                raise self.fail(f"{head[key]!r} is not a string", key=key)
        seed = head.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise self.fail(f"{seed!r} is not a whole number", key="seed")
        faults = data.get("faults", [])
        if not isinstance(faults, list):
            raise self.fail("`faults` must be an array of tables: write [[faults]]", key="faults")
        specs = tuple(self.fault(i, table) for i, table in enumerate(faults))
        names = [spec.name for spec in specs]
        for i, spec in enumerate(specs):
            if names.index(spec.name) != i:
                raise self.fail(
                    f"the name {spec.name!r} is taken by fault "
                    f"#{names.index(spec.name) + 1}; give each a distinct `name`",
                    fault=i,
                    name=spec.name,
                    key="name",
                )
        default_name = Path(self.file).stem if self.file != "<scenario>" else "scenario"
        return Scenario(
            name=head.get("name", default_name),
            description=head.get("description", ""),
            source=head.get("source", ""),
            seed=seed,
            faults=specs,
            path=None if self.file == "<scenario>" else self.file,
        )

    def fault(self, index: int, table: Any) -> FaultSpec:
        if not isinstance(table, dict):
            raise self.fail("each fault must be a table", fault=index)
        kind = table.get("type")
        if kind is None:
            raise self.fail(
                "missing field 'type'; allowed: " + ", ".join(all_faults()), fault=index
            )
        cls = get_fault(kind) if isinstance(kind, str) else None
        if cls is None:
            raise self.fail(
                f"unknown fault type {kind!r}; allowed: {', '.join(all_faults())}",
                fault=index,
                key="type",
            )
        raw_name = table.get("name", kind)
        declared = {p.name: p for p in cls.params}
        known = set(declared) | {p.name for p in COMMON_FIELDS}
        for key in table:
            if key not in known:
                raise self.fail(
                    f"unknown field; {kind} takes: {', '.join(sorted(known))}",
                    fault=index,
                    name=str(raw_name),
                    key=key,
                )
        common: dict[str, Any] = {}
        for key, param in _SCALAR_COMMON.items():
            common[key] = self.value(param, table, index, str(raw_name))
        name = common.pop("name") or kind
        settings = {key: self.value(param, table, index, name) for key, param in declared.items()}
        try:
            cls.check(settings)
        except ParamError as error:
            raise self.fail(str(error), fault=index, name=name, key=error.field) from None
        return FaultSpec(
            type=kind,
            name=name,
            settings=settings,
            window=self.window(table.get("window"), index, name),
            match=self.match(table.get("match"), index, name),
            **common,
        )

    def value(self, param: Param, table: dict[str, Any], index: int, name: str) -> Any:
        if param.name not in table:
            if param.required:
                raise self.fail(
                    f"missing; expected {param.allowed()}", fault=index, name=name, key=param.name
                )
            return None if param.optional else param.default
        try:
            return param.parse(table[param.name])
        except ParamError as error:
            raise self.fail(str(error), fault=index, name=name, key=param.name) from None

    def window(self, raw: Any, index: int, name: str) -> Window:
        if raw is None:
            return Window()
        bounds = {
            "from": Param("from", "duration", "", default=0.0, minimum=0),
            "until": Param("until", "duration", "", default=math.inf, minimum=0),
        }
        if not isinstance(raw, dict):
            raise self.fail(
                'expected a table like { from = "30s", until = "90s" }',
                fault=index,
                name=name,
                key="window",
            )
        parsed: dict[str, float] = {}
        for key, value in raw.items():
            if key not in bounds:
                raise self.fail(
                    "unknown key; allowed: from, until", fault=index, name=name, key=f"window.{key}"
                )
            try:
                parsed[key] = bounds[key].parse(value)
            except ParamError as error:
                raise self.fail(str(error), fault=index, name=name, key=f"window.{key}") from None
        window = Window(parsed.get("from", 0.0), parsed.get("until", math.inf))
        if window.end <= window.start:
            raise self.fail(
                "`until` must be later than `from`", fault=index, name=name, key="window.until"
            )
        return window

    def match(self, raw: Any, index: int, name: str) -> Match:
        if raw is None:
            return Match()

        def bad(key: str, message: str) -> ScenarioError:
            return self.fail(message, fault=index, name=name, key=f"match.{key}")

        if not isinstance(raw, dict):
            raise self.fail(
                'expected a table like { path = "/events*", method = "GET" }',
                fault=index,
                name=name,
                key="match",
            )
        for key in raw:
            if key not in ("path", "method", "headers"):
                raise bad(key, "unknown key; allowed: path, method, headers")
        path = raw.get("path")
        if path is not None and not isinstance(path, str):
            raise bad("path", f"{path!r} is not a string (a glob such as '/events*')")
        methods = raw.get("method", [])
        methods = [methods] if isinstance(methods, str) else methods
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise bad("method", f"{raw['method']!r} is not a method or a list of methods")
        headers = raw.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise bad("headers", "expected a table of header name = glob strings")
        return Match(
            path=path,
            methods=tuple(m.upper() for m in methods),
            headers=tuple((k.lower(), v) for k, v in headers.items()),
        )
