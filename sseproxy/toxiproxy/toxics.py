"""toxiproxy's toxics as sseproxy faults, and sseproxy's faults as extra toxic types.

A toxic is what a toxiproxy client sends: a name, a type, a `stream` (upstream or
downstream) and a `toxicity`, plus `attributes` in toxiproxy's units (milliseconds,
KB/s, microseconds for the slicer). `Toxic.fault_table` turns one into a `[[faults]]`
table, which the scenario reader validates as it validates a file: `stream` becomes the
fault's `direction`, `toxicity` its per-connection `probability`.

| toxic | fault | notes |
|---|---|---|
| latency (latency, jitter) | latency | ms; reading goes on while a chunk waits |
| bandwidth (rate) | bandwidth | KB/s = 1000 bytes/s; rate <= 0: no limit |
| slow_close (delay) | slow-close | ms |
| timeout (timeout) | stall, then close | data held (lost on the close); 0: for good |
| reset_peer (timeout) | stall, then reset | 0: reset at once; honours toxicity |
| slicer (average_size, size_variation, delay) | slicer | delay in microseconds |
| limit_data (bytes) | cut (where = exact, how = close) | exactly `bytes` bytes, then a close |

Every registered fault is a toxic type too, `sse_` (or `http_` for the faults that act on
the HTTP exchange) + its name with `_` for `-`: `sse_idle_timeout`, `http_status`,
`sse_drop_events`. Their attributes are the fault's own parameters (and the common
`after`, `window`, `match`, `every`, `first`), written as in a scenario file ("5s",
"4KiB").

Attributes of toxiproxy's own toxics are decoded as its Go server decodes them: integers
only, unknown names ignored, a value of the wrong JSON type refused with the same message
(`json: cannot unmarshal string into Go struct field LatencyToxic.attributes.latency of
type int64`), so clients see the same errors from both servers.
"""

from __future__ import annotations

import json
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any, Final

from sseproxy.faults import all_faults
from sseproxy.params import render_value

__all__ = ["NATIVE", "Toxic", "ToxicError", "extension_types", "go_kind", "parse_toxic"]


class ToxicError(Exception):
    """A toxic refused: toxiproxy's message and status (400 unless said)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Native:
    """One of toxiproxy's own toxic types: its Go struct and integer attributes."""

    struct: str
    attributes: tuple[tuple[str, str], ...]
    """(name, Go type) in the order toxiproxy shows them; all default to 0."""


NATIVE: Final = {
    "latency": Native("LatencyToxic", (("latency", "int64"), ("jitter", "int64"))),
    "bandwidth": Native("BandwidthToxic", (("rate", "int64"),)),
    "slow_close": Native("SlowCloseToxic", (("delay", "int64"),)),
    "timeout": Native("TimeoutToxic", (("timeout", "int64"),)),
    "reset_peer": Native("ResetToxic", (("timeout", "int64"),)),
    "slicer": Native(
        "SlicerToxic", (("average_size", "int"), ("size_variation", "int"), ("delay", "int"))
    ),
    "limit_data": Native("LimitDataToxic", (("bytes", "int64"),)),
    "noop": Native("NoopToxic", ()),
}

_HTTP_FAULTS: Final = frozenset({"status", "headers", "response-timeout", "lifetime"})
"""Faults that act on the HTTP exchange rather than the event stream: `http_` types."""
_COMMON: Final = ("after", "window", "match", "every", "first")
"""Common fault fields an extension toxic may give among its attributes."""


def extension_types() -> dict[str, str]:
    """Extra toxic type -> sseproxy fault, one per registered fault."""
    return {
        ("http_" if name in _HTTP_FAULTS else "sse_") + name.replace("-", "_"): name
        for name in all_faults()
    }


def go_kind(value: Any, *, literal: bool = False) -> str:
    """How Go's encoding/json names a JSON value in an UnmarshalTypeError (a number into
    an integer field that cannot hold it is named with its `literal`)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return f"number {json.dumps(value)}" if literal else "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _type_error(value: Any, where: str, go_type: str) -> ToxicError:
    kind = go_kind(value, literal=go_type.startswith("int"))
    return ToxicError(
        f"bad request body: json: cannot unmarshal {kind} into Go struct field "
        f"{where} of type {go_type}"
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_go_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63


@dataclass
class Toxic:
    name: str
    type: str
    stream: str
    """As the client wrote it ('downstream', 'Upstream'): toxiproxy echoes it."""
    toxicity: float = 1.0
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def upstream(self) -> bool:
        return self.stream.lower() == "upstream"

    def to_json(self) -> dict[str, Any]:
        """As toxiproxy shows a toxic, fields in its order."""
        toxicity = self.toxicity
        shown: float = int(toxicity) if toxicity == int(toxicity) else toxicity
        return {
            "attributes": dict(self.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": shown,
        }

    def update(self, body: Any) -> None:
        """A PATCH: new attributes and toxicity; name, type and stream stay (as toxiproxy)."""
        if not isinstance(body, dict):
            raise ToxicError(
                f"bad request body: json: cannot unmarshal {go_kind(body)} into Go "
                'value of type struct { Attributes interface {} "json:\\"attributes\\""; '
                'Toxicity float32 "json:\\"toxicity\\"" }'
            )
        toxicity = body.get("toxicity")
        if toxicity is not None and not _is_number(toxicity):
            raise _type_error(toxicity, ".toxicity", "float32")
        attributes = dict(self.attributes)
        given = body.get("attributes")
        if given is not None and not isinstance(given, dict):
            struct = NATIVE[self.type].struct if self.type in NATIVE else "NoopToxic"
            raise _type_error(given, ".attributes", f"toxics.{struct}")
        if self.type in NATIVE:
            attributes.update(_native_attributes(self.type, given, base=attributes))
        elif isinstance(given, dict):
            attributes.update(given)
            attributes = _extension_attributes(self.type, attributes)
        self.attributes = attributes
        if toxicity is not None:
            self.toxicity = float(toxicity)

    def fault_table(self) -> dict[str, Any] | None:
        """The `[[faults]]` table for this toxic; None when it changes nothing."""
        common = {
            "name": self.name,
            "direction": "up" if self.upstream else "down",
            "probability": min(1.0, max(0.0, self.toxicity)),
        }
        if self.type not in NATIVE:
            fault = extension_types()[self.type]
            return {"type": fault, **self.attributes, **common}
        table = _native_table(self.type, self.attributes)
        return None if table is None else {**table, **common}


def _ms(value: int) -> str:
    return f"{max(0, value)}ms"


def _native_table(kind: str, a: dict[str, Any]) -> dict[str, Any] | None:
    """toxiproxy's semantics in terms of an sseproxy fault (module docstring's table)."""
    if kind == "latency":
        if a["latency"] <= 0 and a["jitter"] <= 0:
            return None
        return {"type": "latency", "delay": _ms(a["latency"]), "jitter": _ms(a["jitter"])}
    if kind == "bandwidth":
        return None if a["rate"] <= 0 else {"type": "bandwidth", "rate": f"{a['rate'] * 1000}B"}
    if kind == "slow_close":
        return None if a["delay"] <= 0 else {"type": "slow-close", "delay": _ms(a["delay"])}
    if kind == "timeout":  # data goes nowhere; 0: for good, else closed after `timeout`
        if a["timeout"] <= 0:
            return {"type": "stall"}
        return {"type": "stall", "duration": _ms(a["timeout"]), "then": "close"}
    if kind == "reset_peer":  # data goes nowhere; RST after `timeout` (0: at once)
        if a["timeout"] <= 0:
            return {"type": "reset"}
        return {"type": "stall", "duration": _ms(a["timeout"]), "then": "reset"}
    if kind == "slicer":
        size = a["average_size"]
        if size <= 0:
            return None
        variation = min(max(0, a["size_variation"]), size - 1)
        return {
            "type": "slicer",
            "size": f"{size}B",
            "variation": f"{variation}B",
            "delay": f"{max(0, a['delay'])}us",
        }
    if kind == "limit_data":
        return {"type": "cut", "bytes": f"{max(0, a['bytes'])}B", "where": "exact", "how": "close"}
    return None  # noop


def _native_attributes(kind: str, given: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    native = NATIVE[kind]
    values = dict(base) if base else {name: 0 for name, _ in native.attributes}
    if given is None:
        return values
    if not isinstance(given, dict):
        raise _type_error(given, "ToxicWrapper.attributes", "toxics.NoopToxic")
    for name, go_type in native.attributes:
        value = given.get(name)
        if value is None:
            continue
        if not _is_go_int(value):
            raise _type_error(value, f"{native.struct}.attributes.{name}", go_type)
        values[name] = value
    return values


def _extension_attributes(kind: str, given: dict[str, Any]) -> dict[str, Any]:
    """Validate an extension toxic's attributes as the fault's table (errors -> 400)."""
    from sseproxy.errors import ScenarioError
    from sseproxy.faults import get_fault
    from sseproxy.scenario import _Reader

    fault = extension_types()[kind]
    table = {"type": fault, **given}
    try:
        spec = _Reader("", "<toxic>").fault(0, table)
    except ScenarioError as error:
        line = error.errors[0]
        where = f"{line.where}: " if line.where else ""
        raise ToxicError(f"bad request body: {where}{line.message}") from None
    cls = get_fault(fault)
    assert cls is not None
    shown: dict[str, Any] = {}
    for param in cls.params:
        value = spec.settings.get(param.name)
        if value is not None:
            shown[param.name] = render_value(param, value)
    table_out = spec.to_table()
    for key in _COMMON:
        if key in table_out:
            shown[key] = table_out[key]
    return shown


def parse_toxic(body: Any, taken: Container[str] = ()) -> Toxic:
    """A new toxic from a POST body, checked in toxiproxy's order (type errors while
    decoding, then the stream, the default name, the type, a name `taken` (409);
    attributes last)."""
    if not isinstance(body, dict):
        raise ToxicError(
            f"bad request body: json: cannot unmarshal {go_kind(body)} into Go "
            "value of type toxics.ToxicWrapper"
        )
    for key, go_type in (("name", "string"), ("type", "string"), ("stream", "string")):
        value = body.get(key)
        if value is not None and not isinstance(value, str):
            raise _type_error(value, f"ToxicWrapper.{key}", go_type)
    toxicity = body.get("toxicity")
    if toxicity is not None and (
        isinstance(toxicity, bool) or not isinstance(toxicity, int | float)
    ):
        raise _type_error(toxicity, "ToxicWrapper.toxicity", "float32")
    attributes = body.get("attributes")
    if attributes is not None and not isinstance(attributes, dict):
        raise _type_error(attributes, "ToxicWrapper.attributes", "toxics.NoopToxic")
    stream = body.get("stream") or "downstream"
    if stream.lower() not in ("upstream", "downstream"):
        raise ToxicError("stream was invalid, can be either upstream or downstream")
    kind = body.get("type") or ""
    name = body.get("name") or f"{kind}_{stream}"
    if kind not in NATIVE and kind not in extension_types():
        raise ToxicError("invalid toxic type")
    if name in taken:
        raise ToxicError("toxic already exists", 409)
    toxic = Toxic(name, kind, stream, 1.0 if toxicity is None else float(toxicity))
    if kind in NATIVE:
        toxic.attributes = _native_attributes(kind, attributes)
    else:
        toxic.attributes = _extension_attributes(kind, attributes or {})
    return toxic
