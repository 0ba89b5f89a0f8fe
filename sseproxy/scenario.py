"""Scenario files: TOML in, a validated and typed `Scenario` out, or every mistake in it.

A scenario is data, never code. It is refused as a whole when anything is wrong, with
one line per mistake (up to MAX_ERRORS, in line order), each naming the file, the line
(where it can be found), the fault (index and name), the field, what was given and what
is allowed, with "did you mean" for a near miss. Its size is bounded (MAX_FAULTS faults,
MAX_DEPTH levels of nesting) so that no file or control API request can stall the proxy.
"""

from __future__ import annotations

import builtins
import difflib
import fnmatch
import json
import math
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from sseproxy.errors import ScenarioError
from sseproxy.faults import all_faults, get_fault
from sseproxy.faults.base import Fault
from sseproxy.params import Param, ParamError, render_value, shown
from sseproxy.pool import MemberSpec
from sseproxy.pool_scenario import read_pool, upstream_table
from sseproxy.units import format_duration

__all__ = [
    "COMMON_FIELDS",
    "MAX_DEPTH",
    "MAX_ERRORS",
    "MAX_FAULTS",
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
        'headers = { Accept = "text/event-stream" }, upstream = "b" } (upstream: the pool '
        "member first chosen for the exchange or TCP connection).",
        optional=True,
    ),
)
_SCALAR_COMMON = {p.name: p for p in COMMON_FIELDS if p.name not in ("type", "window", "match")}
_SCENARIO_FIELDS = ("name", "description", "source", "seed", "balance", "hash_key")
MAX_FAULTS = 1000
"""Faults one scenario may have. The presets have at most a handful and generated ones a
dozen; every connection walks the whole list, and 13,000 froze the event loop for 1.4 s."""
MAX_ERRORS = 100
"""Mistakes one refusal lists at most (then it says it stopped)."""
MAX_DEPTH = 8
"""Levels of tables and arrays a scenario may nest (it needs 5: faults, a fault, `match`,
`headers`, a value); deeper is refused before anything walks it."""
_TOO_DEEP = f"tables or arrays nested over {MAX_DEPTH} levels deep; a scenario needs 5 at most"
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
    upstream: str | None = None
    """A pool member's name: only exchanges (TCP: connections) sent to it."""

    def matches(self, request: RequestInfo | None, member: str | None = None) -> bool:
        if self.upstream is not None and member != self.upstream:
            return False
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
            if self.match.upstream is not None:
                match["upstream"] = self.match.upstream
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
    balance: str | None = None
    """How a pool of upstreams balances (`sseproxy.pool.BALANCES`); None: round robin."""
    hash_key: str | None = None
    """What `balance = "hash"` hashes: header:NAME, query:NAME or cookie:NAME."""
    upstreams: tuple[MemberSpec, ...] = ()
    """`[[upstreams]]`: the pool's members (`--upstream` on the command line wins)."""

    def to_toml(self) -> str:
        """A scenario file that loads back into an equal scenario (hypothesis replays)."""
        lines = ["[scenario]", f"name = {_toml(self.name)}"]
        if self.description:
            lines.append(f"description = {_toml(self.description)}")
        if self.source:
            lines.append(f"source = {_toml(self.source)}")
        if self.seed is not None:
            lines.append(f"seed = {self.seed}")
        for key in ("balance", "hash_key"):
            if getattr(self, key) is not None:
                lines.append(f"{key} = {_toml(getattr(self, key))}")
        for member in self.upstreams:
            lines += ["", "[[upstreams]]"]
            lines += [f"{key} = {_toml(value)}" for key, value in upstream_table(member).items()]
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
    reader = _Reader(text, file)
    reader.count_fault_headers()  # before tomllib: 13,000 faults are refused in a millisecond
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ScenarioError(f"not valid TOML: {error}", file=file) from None
    except RecursionError:  # tomllib recurses per level of nesting
        raise ScenarioError(f"cannot read: {_TOO_DEEP}", file=file) from None
    return reader.scenario(data)


_KEY = re.compile(r"""^\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*[=.]""")


@dataclass
class _Reader:
    """Reads a parsed scenario and notes every mistake it finds, so that one refusal
    lists them all, in line order (`scenario` and `fault` raise it at the end)."""

    text: str
    file: str
    problems: list[tuple[int, int, ScenarioError]] = field(default_factory=list)
    truncated: bool = False
    _known_keys: dict[int, dict[str, int]] = field(default_factory=dict)

    def unique_names(
        self, names: Sequence[str | None], table: Literal["fault", "upstream"]
    ) -> None:
        """Note every name used by an earlier table of the same kind (None: no table)."""
        taken: dict[str, int] = {}
        for i, name in enumerate(names):
            if name is None:
                continue
            if name in taken:
                self.fail(
                    f"the name {name!r} is taken by {table} #{taken[name] + 1}; "
                    "give each a distinct `name`",
                    name=name,
                    key="name",
                    **{table: i},
                )
            taken.setdefault(name, i)

    def fail(
        self,
        message: str,
        *,
        fault: int | None = None,
        name: str = "",
        key: str | None = None,
        upstream: int | None = None,
    ) -> None:
        if self.enough():
            return
        line = self._line(fault, key) if upstream is None else self._upstream_line(upstream, key)
        parts = []
        if fault is not None:
            parts.append(f"fault #{fault + 1}" + (f" ({name})" if name else ""))
        if upstream is not None:
            parts.append(f"upstream #{upstream + 1}" + (f" ({name})" if name else ""))
        if key is not None:
            parts.append(f"field {shown(key)}")
        file = f"{self.file}:{line}" if line else self.file
        error = ScenarioError(message, file=file, where=", ".join(parts) or None)
        self.problems.append((line or 0, len(self.problems), error))

    def enough(self) -> bool:
        """True once MAX_ERRORS are noted: the rest is not looked at (a file of 60,000
        unknown keys would take seconds to list, and nobody reads past the first screen)."""
        self.truncated = len(self.problems) >= MAX_ERRORS
        return self.truncated

    def refuse_if_any(self) -> None:
        if self.problems:
            errors = [error for *_, error in sorted(self.problems)]
            if self.truncated:
                errors.append(
                    ScenarioError(
                        f"stopped after {MAX_ERRORS} errors; fix these and check again",
                        file=self.file,
                    )
                )
            raise ScenarioError.of(errors)

    # -- where a key is written (tomllib keeps no positions, so we look)

    @cached_property
    def _lines(self) -> list[str]:
        return self.text.splitlines()

    @cached_property
    def _sections(self) -> list[tuple[str, int, int]]:
        """(table header, first line, end) for the text before any header and each table."""
        lines = self._lines
        heads = [
            (i, match.group(1)) for i, line in enumerate(lines) if (match := _HEADER.match(line))
        ]
        sections = [("", 0, heads[0][0] if heads else len(lines))]
        for n, (i, name) in enumerate(heads):
            end = heads[n + 1][0] if n + 1 < len(heads) else len(lines)
            sections.append((name.strip("[] \t"), i, end))
        return sections

    @cached_property
    def _fault_sections(self) -> list[int]:
        return [n for n, (name, _, _) in enumerate(self._sections) if name == "faults"]

    def _keys(self, section: int) -> dict[str, int]:
        """First line (1-based) of each key written in a section (each read once)."""
        if section not in self._known_keys:
            _, start, end = self._sections[section]
            keys: dict[str, int] = {}
            for i in range(start, end):
                if match := _KEY.match(self._lines[i]):
                    keys.setdefault(next(g for g in match.groups() if g is not None), i + 1)
            self._known_keys[section] = keys
        return self._known_keys[section]

    def _line(self, fault: int | None, key: str | None) -> int | None:
        """Best effort: the line of `key` in the fault-th [[faults]] table, or in [scenario],
        or of a table header named `key`."""
        first = key.split(".")[0] if key is not None else None
        if fault is not None:
            if fault >= len(self._fault_sections):
                return None
            section = self._fault_sections[fault]
            header = self._sections[section][1] + 1
            return self._keys(section).get(first, header) if first is not None else header
        if first is None:
            return None
        for name, start, _ in self._sections:
            if name == key:
                return start + 1
        for n, (name, _, _) in enumerate(self._sections):
            if name in ("", "scenario") and first in self._keys(n):
                return self._keys(n)[first]
        return None

    def _upstream_line(self, index: int, key: str | None) -> int | None:
        """The line of `key` in the index-th [[upstreams]] table (else its header)."""
        sections = [n for n, (name, _, _) in enumerate(self._sections) if name == "upstreams"]
        if index >= len(sections):
            return None
        header = self._sections[sections[index]][1] + 1
        return self._keys(sections[index]).get(key, header) if key is not None else header

    def count_fault_headers(self) -> None:
        """Refuse a text with over MAX_FAULTS `[[faults]]` tables before parsing it all."""
        if self.text.count("faults") > MAX_FAULTS and len(self._fault_sections) > MAX_FAULTS:
            self.fail(_too_many(len(self._fault_sections)), fault=MAX_FAULTS)
            self.refuse_if_any()

    # -- the scenario

    def scenario(self, data: dict[str, Any]) -> Scenario:
        scenario = self._scenario(data)
        self.refuse_if_any()
        assert scenario is not None
        return scenario

    def _scenario(self, data: dict[str, Any]) -> Scenario | None:
        if (deep := _too_deep(data)) is not None:
            fault, key = deep
            table = data["faults"][fault] if fault is not None else {}
            self.fail(_TOO_DEEP, fault=fault, name=_label_of(table), key=key)
            return None
        for key in data:
            if self.enough():
                break
            if key not in ("scenario", "faults", "upstreams"):
                self.fail(
                    f"unknown top-level key {shown(key)};"
                    f"{_suggest(key, ('scenario', 'faults', 'upstreams'))} allowed: "
                    "[scenario], [[faults]], [[upstreams]]",
                    key=key,
                )
        head = data.get("scenario", {})
        if not isinstance(head, dict):
            self.fail("[scenario] must be a table", key="scenario")
            head = {}
        for key in head:
            if self.enough():
                break
            if key not in _SCENARIO_FIELDS:
                self.fail(
                    f"unknown field in [scenario];{_suggest(key, _SCENARIO_FIELDS)} "
                    f"allowed: {', '.join(_SCENARIO_FIELDS)}",
                    key=key,
                )
        for key in ("name", "description", "source"):
            if key in head and not isinstance(head[key], str):
                self.fail(f"{shown(head[key])} is not a string", key=key)
        if isinstance(head.get("name"), str) and (char := _unprintable(head["name"])):
            self.fail(_control_in_name(head["name"], char), key="name")
        seed = head.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            self.fail(f"{shown(seed)} is not a whole number", key="seed")
        faults = data.get("faults", [])
        if not isinstance(faults, list):
            self.fail("`faults` must be an array of tables: write [[faults]]", key="faults")
            faults = []
        if len(faults) > MAX_FAULTS:
            self.fail(_too_many(len(faults)), fault=MAX_FAULTS)
            return None
        specs = [self._fault(i, table) for i, table in enumerate(faults)]
        balance, hash_key, members = read_pool(self, head, data.get("upstreams", []), specs)
        self.unique_names([spec.name if spec else None for spec in specs], "fault")
        if self.problems:
            return None
        default_name = Path(self.file).stem if self.file != "<scenario>" else "scenario"
        return Scenario(
            name=head.get("name", default_name),
            description=head.get("description", ""),
            source=head.get("source", ""),
            seed=seed,
            faults=tuple(spec for spec in specs if spec is not None),
            path=None if self.file == "<scenario>" else self.file,
            balance=balance,
            hash_key=hash_key,
            upstreams=members,
        )

    # -- one fault

    def fault(self, index: int, table: Any) -> FaultSpec:
        """`table` as the index-th fault, or a ScenarioError with every mistake in it."""
        if (deep := _too_deep({"faults": [table]})) is not None:
            self.fail(_TOO_DEEP, fault=index, name=_label_of(table), key=deep[1])
        spec = self._fault(index, table) if not self.problems else None
        self.refuse_if_any()
        assert spec is not None
        return spec

    def _fault(self, index: int, table: Any) -> FaultSpec | None:
        if self.enough():
            return None
        if not isinstance(table, dict):
            self.fail("each fault must be a table", fault=index)
            return None
        before = len(self.problems)
        kind = table.get("type")
        label = _label_of(table)
        cls = get_fault(kind) if isinstance(kind, str) else None
        if kind is None:
            self.fail(
                "missing field 'type'; allowed: " + ", ".join(all_faults()), fault=index, name=label
            )
        elif cls is None:
            self.fail(
                f"unknown fault type {shown(kind)};"
                f"{_suggest(kind, all_faults())} allowed: {', '.join(all_faults())}",
                fault=index,
                name=label,
                key="type",
            )
        declared = {p.name: p for p in cls.params} if cls else {}
        values: dict[str, Any] = {}
        window, match = Window(), Match()
        for key, raw in table.items():
            if self.enough():
                break
            param = _SCALAR_COMMON.get(key) or declared.get(key)
            if param is not None:
                values[key] = self.value(param, raw, index, label)
            elif key == "window":
                window = self.window(raw, index, label)
            elif key == "match":
                match = self.match(raw, index, label)
            elif key != "type" and cls is not None:
                known = sorted(set(declared) | {p.name for p in COMMON_FIELDS})
                self.fail(
                    f"unknown field;{_suggest(key, known)} {kind} takes: {', '.join(known)}",
                    fault=index,
                    name=label,
                    key=key,
                )
        for param in (*_SCALAR_COMMON.values(), *declared.values()):
            if param.name in table:
                continue
            if param.required:
                self.fail(
                    f"missing; expected {param.allowed()}", fault=index, name=label, key=param.name
                )
            values[param.name] = None if param.optional else param.default
        name: str = values.pop("name", None) or (kind if isinstance(kind, str) else "")
        if char := _unprintable(name):
            self.fail(_control_in_name(name, char), fault=index, name=label, key="name")
        settings = {key: values.pop(key, None) for key in declared}
        if cls is None or len(self.problems) > before:
            return None
        try:
            cls.check(settings)
        except ParamError as error:
            self.fail(str(error), fault=index, name=name, key=error.field)
            return None
        return FaultSpec(
            type=cls.name, name=name, settings=settings, window=window, match=match, **values
        )

    def value(self, param: Param, raw: Any, index: int, name: str) -> Any:
        try:
            return param.parse(raw)
        except ParamError as error:
            self.fail(str(error), fault=index, name=name, key=param.name)
            return None

    def window(self, raw: Any, index: int, name: str) -> Window:
        bounds = {
            "from": Param("from", "duration", "", default=0.0, minimum=0),
            "until": Param("until", "duration", "", default=math.inf, minimum=0),
        }
        if not isinstance(raw, dict):
            self.fail(
                'expected a table like { from = "30s", until = "90s" }',
                fault=index,
                name=name,
                key="window",
            )
            return Window()
        before = len(self.problems)
        parsed: dict[str, float] = {}
        for key, value in raw.items():
            if self.enough():
                break
            where = f"window.{key}"
            if key not in bounds:
                allowed = f"{_suggest(key, bounds)} allowed: from, until"
                self.fail(f"unknown key;{allowed}", fault=index, name=name, key=where)
                continue
            try:
                parsed[key] = bounds[key].parse(value)
            except ParamError as error:
                self.fail(str(error), fault=index, name=name, key=where)
        window = Window(parsed.get("from", 0.0), parsed.get("until", math.inf))
        if len(self.problems) == before and window.end <= window.start:
            self.fail(
                "`until` must be later than `from`", fault=index, name=name, key="window.until"
            )
        return window

    def match(self, raw: Any, index: int, name: str) -> Match:
        def bad(key: str, message: str) -> None:
            self.fail(message, fault=index, name=name, key=f"match.{key}")

        if not isinstance(raw, dict):
            self.fail(
                'expected a table like { path = "/events*", method = "GET" }',
                fault=index,
                name=name,
                key="match",
            )
            return Match()
        keys = ("path", "method", "headers", "upstream")
        for key in raw:
            if self.enough():
                break
            if key not in keys:
                allowed = "allowed: path, method, headers, upstream"
                bad(key, f"unknown key;{_suggest(key, keys)} {allowed}")
        upstream = raw.get("upstream")
        if upstream is not None and not isinstance(upstream, str):
            bad("upstream", f"{shown(upstream)} is not a pool member's name (a string)")
            upstream = None
        path = raw.get("path")
        if path is not None and not isinstance(path, str):
            bad("path", f"{shown(path)} is not a string (a glob such as '/events*')")
            path = None
        methods = raw.get("method", [])
        methods = [methods] if isinstance(methods, str) else methods
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            bad("method", f"{shown(raw['method'])} is not a method or a list of methods")
            methods = []
        headers = raw.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            bad("headers", "expected a table of header name = glob strings")
            headers = {}
        return Match(
            path=path,
            methods=tuple(m.upper() for m in methods),
            headers=tuple((k.lower(), v) for k, v in headers.items()),
            upstream=upstream,
        )


def _suggest(word: Any, known: Iterable[str]) -> str:
    """' did you mean 'delay'?' for a near miss (difflib), or nothing: ends the sentence
    before 'allowed: ...'."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(known), n=1)
    return f" did you mean {close[0]!r}?" if close else ""


def _too_many(count: int) -> str:
    return (
        f"{count} faults, over the limit of {MAX_FAULTS}; vary one fault with `every`, "
        "`first`, `probability` or `match` rather than repeating it"
    )


def _too_deep(data: Any) -> tuple[int | None, str | None] | None:
    """Where tables or arrays nest over MAX_DEPTH deep, as (fault index, field), or None.

    Iterative, so any depth is measured without recursion."""
    stack: list[tuple[Any, int, tuple[Any, ...]]] = [(data, 0, ())]
    while stack:
        value, depth, path = stack.pop()  # path: the first three keys, enough to say where
        if depth > MAX_DEPTH:
            if path[0] == "faults" and len(path) > 2:
                return path[1], path[2] if isinstance(path[2], str) else None
            if path[0] == "scenario" and len(path) > 1:
                return None, str(path[1])
            return None, str(path[0])
        items: Iterable[tuple[Any, Any]] = ()
        if isinstance(value, dict):
            items = value.items()
        elif isinstance(value, list):
            items = enumerate(value)
        stack.extend((item, depth + 1, (*path, key)[:3]) for key, item in items)
    return None


def _unprintable(text: str) -> str | None:
    """The first control or line-separator character in `text`, if any."""
    return next((c for c in text if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)


def _control_in_name(name: str, char: str) -> str:
    return (
        f"{shown(name)} contains the control character {char!r}; names appear in the "
        "journal, /metrics and URLs, so use visible characters"
    )


def _label_of(table: Any) -> str:
    """How a fault is named in messages: its `name`, else its type (if printable)."""
    if not isinstance(table, dict):
        return ""
    for candidate in (table.get("name"), table.get("type")):
        if isinstance(candidate, str) and candidate and not _unprintable(candidate):
            return shown(candidate)[1:-1] if len(candidate) > 60 else candidate
    return ""
