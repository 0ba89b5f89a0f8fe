"""The URL a probe reads, and how a client gets a stream to it.

The client core only ever sees a `trio.abc.Stream` handed over by a `Connect` callable,
so tests give it memory streams and the command gives it sockets. Schemes map to
connectors in `CONNECTORS`: `http` is a plain TCP stream. TLS is the hook left open: an
`https` entry that wraps the socket in a `trio.SSLStream` is all it takes (the client
writes the same bytes on either).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import trio

from sseproxy.errors import ConfigError
from sseproxy.transport import connect

__all__ = ["CONNECTORS", "Connect", "Target", "connector"]

Connect = Callable[[], Awaitable[trio.abc.Stream]]
"""Opens one connection; raises `sseproxy.transport.UpstreamError` when it cannot."""


@dataclass(frozen=True)
class Target:
    """Where the clients connect and what they ask for."""

    scheme: str
    host: str
    port: int
    target: str
    """The request target: path and query, as sent on the request line."""

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in CONNECTORS:
            known = ", ".join(f"{scheme}://" for scheme in CONNECTORS)
            raise ConfigError(
                f"{url!r}: give a URL starting with {known}, e.g. http://127.0.0.1:8080/events"
                + (" (https is not supported yet)" if parts.scheme == "https" else "")
            )
        if not parts.hostname:
            raise ConfigError(f"{url!r}: no host; e.g. http://127.0.0.1:8080/events")
        try:
            port = parts.port or _DEFAULT_PORTS[parts.scheme]
        except ValueError:
            raise ConfigError(f"{url!r}: the port is not a number") from None
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.scheme, parts.hostname, port, target)

    @property
    def authority(self) -> str:
        """The Host header: the port is left out when it is the scheme's default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.authority}{self.target}"


def _plain(target: Target, timeout: float) -> Connect:
    async def open_stream() -> trio.abc.Stream:
        return await connect(target.host, target.port, timeout)

    return open_stream


_DEFAULT_PORTS = {"http": 80, "https": 443}
CONNECTORS: dict[str, Callable[[Target, float], Connect]] = {"http": _plain}
"""Scheme -> (target, connect timeout) -> Connect. The TLS upstream work adds `https`."""


def connector(target: Target, timeout: float) -> Connect:
    """How clients open connections to `target`, giving up on a connect after `timeout`."""
    return CONNECTORS[target.scheme](target, timeout)
