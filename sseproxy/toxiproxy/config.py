"""Several proxies from one file: sseproxy's TOML `[[proxies]]`, or toxiproxy's JSON.

    [[proxies]]
    name = "events"                      # required, unique
    listen = "127.0.0.1:8080"            # required
    upstream = "http://127.0.0.1:9000"   # required
    mode = "http"                        # http (default) or tcp
    scenario = "nginx-default"           # a preset or a file (relative to this one)
    enabled = true                       # false: created, not listening (the API enables it)

toxiproxy's `-config` file (a JSON list of {name, listen, upstream, enabled}) is read as
is; its proxies are TCP proxies, as in toxiproxy. A mistake is one line naming the file,
the proxy and the field (`ConfigError`, exit status 2).
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from sseproxy.errors import ConfigError, ScenarioError
from sseproxy.fleet import ListenError, split_listen
from sseproxy.proxy import Mode, Upstream
from sseproxy.scenario import Scenario, load_scenario

__all__ = ["ProxyConfig", "load_config"]

_FIELDS: Final = ("name", "listen", "upstream", "mode", "scenario", "enabled")


@dataclass(frozen=True)
class ProxyConfig:
    name: str
    listen: str
    upstream: str
    mode: Mode = "http"
    scenario: Scenario | None = None
    enabled: bool = True


def load_config(path: str) -> list[ProxyConfig]:
    """The proxies a config file lists, or a ConfigError naming file, proxy and field."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    if file.suffix.lower() == ".json" or re.match(r"\s*\[\s*[{\]]", text):
        try:
            entries = json.loads(text)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}: line {error.lineno}: not JSON: {error.msg}") from None
        if not isinstance(entries, list):
            raise ConfigError(f"{path}: expected a JSON list of proxies (toxiproxy's format)")
        return _proxies(path, entries, default_mode="tcp")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not TOML: {error}") from None
    unknown = sorted(set(data) - {"proxies"})
    if unknown:
        raise ConfigError(f"{path}: unknown table {unknown[0]!r}; expected [[proxies]]")
    entries = data.get("proxies")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: no [[proxies]]; give at least one (name, listen, upstream)")
    return _proxies(path, entries, default_mode="http", folder=file.parent)


def _proxies(
    path: str, entries: list[Any], *, default_mode: Mode, folder: Path | None = None
) -> list[ProxyConfig]:
    proxies: list[ProxyConfig] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries, 1):
        proxy = _proxy(path, index, entry, default_mode, folder)
        if proxy.name in seen:
            raise ConfigError(f"{path}: proxy {proxy.name!r}: name: used twice; names are unique")
        seen.add(proxy.name)
        proxies.append(proxy)
    return proxies


def _proxy(
    path: str, index: int, entry: Any, default_mode: Mode, folder: Path | None
) -> ProxyConfig:
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: proxy {index}: expected a table (name, listen, upstream)")
    name = entry.get("name")
    label = f"proxy {name!r}" if isinstance(name, str) and name else f"proxy {index}"

    def fail(field: str, message: str) -> ConfigError:
        return ConfigError(f"{path}: {label}: {field}: {message}")

    for key in entry:
        if key not in _FIELDS:
            raise fail(key, f"unknown field; allowed: {', '.join(_FIELDS)}")
    for key in ("name", "listen", "upstream"):
        value = entry.get(key)
        if not isinstance(value, str) or not value:
            raise fail(key, "required, a string")
    listen, upstream = entry["listen"], entry["upstream"]
    try:
        split_listen(listen)
    except ListenError as error:
        raise fail("listen", f"{error}; write HOST:PORT, e.g. 127.0.0.1:8080") from None
    try:
        Upstream.parse(upstream)
    except ConfigError as error:
        raise fail("upstream", str(error)) from None
    mode = entry.get("mode", default_mode)
    if mode not in ("http", "tcp"):
        raise fail("mode", f"{mode!r} is not http or tcp")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise fail("enabled", "true or false")
    scenario = None
    if "scenario" in entry:
        scenario = _scenario(entry["scenario"], folder, fail)
        if mode == "tcp" and any(
            spec.match.path or spec.match.methods or spec.match.headers for spec in scenario.faults
        ):
            raise fail("scenario", 'a fault with `match` needs HTTP requests; use mode = "http"')
    return ProxyConfig(entry["name"], listen, upstream, mode, scenario, enabled)


def _scenario(value: Any, folder: Path | None, fail: Any) -> Scenario:
    if not isinstance(value, str) or not value:
        raise fail("scenario", "a preset name or a scenario file")
    target = value
    if folder is not None and (folder / value).is_file():
        target = str(folder / value)
    try:
        return load_scenario(target)
    except ScenarioError as error:
        raise fail("scenario", error.lines[0]) from None
