"""Test SSE clients and servers against sseproxy's faults.

* `open_proxy` (trio): a proxy on loopback sockets in the current task's nursery;
* `run_proxy` (sync, asyncio): the same in a background thread, thread-safe handle;
* `memory_proxy` (trio): client <-> proxy <-> server handler on memory streams, for
  tests in virtual time (`trio.testing.MockClock(autojump_threshold=0)`);
* `open_origin` / `run_origin`: the built-in SSE server (`sseproxy serve`);
* `parse_sse`: the events a browser would dispatch for a body (a reference parser).

Strategies for hypothesis are in `sseproxy.strategies`; fixtures in the pytest plugin
`sseproxy.testing.plugin`. See docs/testing.md.
"""

from sseproxy.origin import OriginSettings
from sseproxy.sse import Event
from sseproxy.testing._memory import Handler, MemoryProxy, memory_proxy
from sseproxy.testing._pipe import PipeStream, pipe_pair
from sseproxy.testing._proxy import (
    ProxyHandle,
    Record,
    ScenarioLike,
    SocketProxy,
    as_scenario,
    open_origin,
    open_proxy,
    parse_sse,
)
from sseproxy.testing._threaded import BackgroundTrio, ThreadedProxy, run_origin, run_proxy

__all__ = [
    "BackgroundTrio",
    "Event",
    "Handler",
    "MemoryProxy",
    "OriginSettings",
    "PipeStream",
    "ProxyHandle",
    "Record",
    "ScenarioLike",
    "SocketProxy",
    "ThreadedProxy",
    "as_scenario",
    "memory_proxy",
    "open_origin",
    "open_proxy",
    "parse_sse",
    "pipe_pair",
    "run_origin",
    "run_proxy",
]
