"""Load the sseproxy pytest plugin for these tests until its entry point is installed."""

from __future__ import annotations

# httpx imports httpcore lazily and caches its exception classes. The pytester runs in
# test_plugin.py and test_docs.py unload modules first imported inside them, so a later
# re-import would create new httpcore classes that httpx no longer maps (a raw
# httpcore.ReadError instead of httpx.ReadError). Importing it here keeps one copy.
import httpcore  # noqa: F401
import pytest

from sseproxy.testing import plugin


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.is_registered(plugin):
        config.pluginmanager.register(plugin, "sseproxy")
