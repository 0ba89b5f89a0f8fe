"""A drop-in for toxiproxy: its HTTP API, its toxics mapped on sseproxy's faults.

`sseproxy run --toxiproxy-api 127.0.0.1:8474` answers toxiproxy's clients (Ruby, Go,
`toxiproxy-python`, `toxiproxy-node-client`, `toxiproxy-cli`, testcontainers) unchanged:
proxies they create are sseproxy proxies in one process (`sseproxy.fleet`), and toxics
become faults applied live. See docs/toxiproxy.md for what differs and why.
"""

from __future__ import annotations

from sseproxy.toxiproxy.api import ToxiproxyApi, serve_toxiproxy_api
from sseproxy.toxiproxy.toxics import Toxic, ToxicError, extension_types

__all__ = ["Toxic", "ToxicError", "ToxiproxyApi", "extension_types", "serve_toxiproxy_api"]
