"""The fault registry: every module in this package that defines a fault registers it.

Adding a fault is adding one file here with a class decorated by `register`.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TypeVar

from sseproxy.faults.base import (
    Action,
    Close,
    Deliver,
    End,
    Fault,
    Note,
    Piece,
    Reset,
    Wake,
)

__all__ = [
    "Action",
    "Close",
    "Deliver",
    "End",
    "Fault",
    "Note",
    "Piece",
    "Reset",
    "Wake",
    "all_faults",
    "get_fault",
    "register",
]

_REGISTRY: dict[str, type[Fault]] = {}
_loaded = False

F = TypeVar("F", bound=type[Fault])


def register(cls: F) -> F:
    """Class decorator: make a fault known by its `name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise RuntimeError(f"two faults are named {cls.name!r}")
    _REGISTRY[cls.name] = cls
    return cls


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in pkgutil.iter_modules(__path__):
            if module.name != "base":
                importlib.import_module(f"{__name__}.{module.name}")
        _loaded = True


def all_faults() -> dict[str, type[Fault]]:
    """Every registered fault by name, sorted."""
    _load()
    return dict(sorted(_REGISTRY.items()))


def get_fault(name: str) -> type[Fault] | None:
    _load()
    return _REGISTRY.get(name)
