"""sseproxy: a chaos proxy for Server-Sent Events.

Public names live here; every other module is internal. They are imported on first use
(PEP 562), so that `import sseproxy.cli` does not load trio and h11 for `sseproxy --help`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from sseproxy.errors import ConfigError, ScenarioError, SseproxyError

if TYPE_CHECKING:
    from sseproxy.journal import Journal
    from sseproxy.proxy import Proxy, ProxySettings, Upstream
    from sseproxy.scenario import FaultSpec, Scenario, load_scenario, parse_scenario

__all__ = [
    "ConfigError",
    "FaultSpec",
    "Journal",
    "Proxy",
    "ProxySettings",
    "Scenario",
    "ScenarioError",
    "SseproxyError",
    "Upstream",
    "load_scenario",
    "parse_scenario",
]

_LAZY = {
    "FaultSpec": "sseproxy.scenario",
    "Journal": "sseproxy.journal",
    "Proxy": "sseproxy.proxy",
    "ProxySettings": "sseproxy.proxy",
    "Scenario": "sseproxy.scenario",
    "Upstream": "sseproxy.proxy",
    "load_scenario": "sseproxy.scenario",
    "parse_scenario": "sseproxy.scenario",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # once: later look-ups do not come here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
