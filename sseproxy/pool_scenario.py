"""A scenario's pool: `balance`, `hash_key` and `[[upstreams]]`, read and checked.

Part of reading a scenario file (`sseproxy.scenario`): every mistake is noted with the
file, the line, the table (`upstream #2 (b)`) and the field, like a fault's.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sseproxy.balance import HashKey
from sseproxy.errors import ConfigError
from sseproxy.params import Param, ParamError, render_value, shown
from sseproxy.pool import BALANCES, DEFAULT_FAIL_TIMEOUT, MemberSpec

if TYPE_CHECKING:
    from sseproxy.scenario import FaultSpec

__all__ = ["MEMBER_FIELDS", "member_name", "read_pool", "upstream_table"]


class _Notes(Protocol):
    def unique_names(
        self, names: Sequence[str | None], table: Literal["fault", "upstream"]
    ) -> None: ...

    def fail(
        self,
        message: str,
        *,
        fault: int | None = None,
        name: str = "",
        key: str | None = None,
        upstream: int | None = None,
    ) -> None: ...


MEMBER_FIELDS: tuple[Param, ...] = (
    Param("name", "str", "The member's name (default: a, b, c ... by position).", optional=True),
    Param("url", "str", "Where it listens, e.g. http://127.0.0.1:9001."),
    Param("weight", "int", "Its share of requests (nginx: 1).", default=1, minimum=1),
    Param(
        "max_fails",
        "int",
        "Failures that mark it down for fail_timeout (nginx: 1; 0: never).",
        default=1,
        minimum=0,
    ),
    Param(
        "fail_timeout",
        "duration",
        "How long failures count and a failed member is skipped (nginx: 10s).",
        default=DEFAULT_FAIL_TIMEOUT,
        minimum=0,
    ),
    Param(
        "restart_url",
        "str",
        "A `restart` fault POSTs here so the member forgets its sessions.",
        optional=True,
    ),
)
_FIELDS = {param.name: param for param in MEMBER_FIELDS}


def member_name(index: int) -> str:
    """a, b, ... z, then m27, m28 ...: the name of the index-th member given without one."""
    return chr(ord("a") + index) if index < 26 else f"m{index + 1}"


def check_url(url: str) -> None:
    """Raise ConfigError when `url` is not an upstream the proxy can reach."""
    from sseproxy.upstream_url import Upstream

    Upstream.parse(url)


def read_pool(
    notes: _Notes, head: dict[str, Any], raw: Any, specs: Sequence[FaultSpec | None]
) -> tuple[str | None, str | None, tuple[MemberSpec, ...]]:
    """(balance, hash_key, members) of a scenario, noting every mistake in `notes`."""
    balance = head.get("balance")
    if balance is not None and balance not in BALANCES:
        allowed = ", ".join(repr(b) for b in BALANCES)
        notes.fail(f"{shown(balance)} is not a balancing method; allowed: {allowed}", key="balance")
        balance = None
    hash_key = head.get("hash_key")
    if hash_key is not None:
        try:
            HashKey(hash_key if isinstance(hash_key, str) else "")
        except ValueError:
            notes.fail(
                f"{shown(hash_key)} is not a hash key; use header:NAME, query:NAME or "
                "cookie:NAME (e.g. header:Mcp-Session-Id)",
                key="hash_key",
            )
            hash_key = None
    elif balance == "hash":
        notes.fail(
            "balance = 'hash' needs hash_key (header:NAME, query:NAME or cookie:NAME)",
            key="balance",
        )
    if not isinstance(raw, list):
        notes.fail("`upstreams` must be an array of tables: write [[upstreams]]", key="upstreams")
        raw = []
    members = [_member(notes, i, table) for i, table in enumerate(raw)]
    notes.unique_names([member.name if member else None for member in members], "upstream")
    names = dict.fromkeys(member.name for member in members if member is not None)
    if names:
        for index, spec in enumerate(specs):
            wanted = spec.match.upstream if spec is not None else None
            if wanted is not None and wanted not in names:
                notes.fail(
                    f"{shown(wanted)} is not a member of [[upstreams]]; members: "
                    + ", ".join(names),
                    fault=index,
                    name=spec.name if spec is not None else "",
                    key="match.upstream",
                )
    found = tuple(member for member in members if member is not None)
    return balance, hash_key, found


def _member(notes: _Notes, index: int, table: Any) -> MemberSpec | None:
    if not isinstance(table, dict):
        notes.fail("each upstream must be a table", upstream=index)
        return None
    name_given = table.get("name")
    label = name_given if isinstance(name_given, str) else ""
    values: dict[str, Any] = {}
    ok = True
    for key, raw in table.items():
        param = _FIELDS.get(key)
        if param is None:
            notes.fail(
                f"unknown field;{_suggest(key)} an upstream takes: {', '.join(_FIELDS)}",
                upstream=index,
                name=label,
                key=key,
            )
            ok = False
            continue
        try:
            values[key] = param.parse(raw)
        except ParamError as error:
            notes.fail(str(error), upstream=index, name=label, key=key)
            ok = False
    if "url" not in table:
        notes.fail(
            "missing; expected a URL such as http://127.0.0.1:9001",
            upstream=index,
            name=label,
            key="url",
        )
        return None
    for key in ("url", "restart_url"):
        if isinstance(values.get(key), str):
            try:
                check_url(values[key]) if key == "url" else _check_admin(values[key])
            except ConfigError as error:
                notes.fail(str(error), upstream=index, name=label, key=key)
                ok = False
    if not ok:
        return None
    name = values.pop("name", None) or member_name(index)
    return MemberSpec(name=name, **values)


def _suggest(key: str) -> str:
    close = difflib.get_close_matches(key, list(_FIELDS), n=1)
    return f" did you mean {close[0]!r}?" if close else ""


def _check_admin(url: str) -> None:
    if not url.startswith("http://"):
        raise ConfigError(f"restart_url {url!r}: give an http:// URL with a path")


def upstream_table(member: MemberSpec) -> dict[str, Any]:
    """The `[[upstreams]]` table of a member (defaults left out)."""
    table: dict[str, Any] = {"name": member.name, "url": member.url}
    for param in MEMBER_FIELDS[2:]:
        value = getattr(member, param.name)
        if value is not None and value != param.default:
            table[param.name] = render_value(param, value)
    return table
