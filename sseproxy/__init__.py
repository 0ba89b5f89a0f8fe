"""sseproxy: a chaos proxy for Server-Sent Events.

Public names live here; every other module is internal.
"""

from sseproxy.errors import ConfigError, ScenarioError, SseproxyError
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
