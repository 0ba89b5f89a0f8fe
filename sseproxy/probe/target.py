"""The URL a probe reads, and how a client gets a stream to it.

The client core only ever sees a `trio.abc.Stream` handed over by a `Connect` callable,
so tests give it memory streams and the command gives it sockets. Schemes map to
connectors in `CONNECTORS`: `http` is a plain TCP stream, `https` the same socket after
a TLS handshake (`sseproxy.tls.open_tls`: SNI and the certificate's name checked against
the URL's host, with the system's CAs, `--ca FILE`, or nothing with `--insecure`). The
client writes the same bytes on either. The connect timeout covers the TCP connect and
the handshake together, as in the proxy; a handshake that fails is a failed connect
(`UpstreamError` `tls-error`, with the reason).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import trio

from sseproxy.errors import ConfigError
from sseproxy.tls import open_tls
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


def _plain(target: Target, timeout: float, tls: ssl.SSLContext | None) -> Connect:
    async def open_stream() -> trio.abc.Stream:
        return await connect(target.host, target.port, timeout)

    return open_stream


def _tls(target: Target, timeout: float, tls: ssl.SSLContext | None) -> Connect:
    async def open_stream() -> trio.abc.Stream:
        deadline = trio.current_time() + timeout
        stream = await connect(target.host, target.port, timeout)
        return await open_tls(stream, target.host, target.port, tls, timeout, deadline)

    return open_stream


_DEFAULT_PORTS = {"http": 80, "https": 443}
CONNECTORS: dict[str, Callable[[Target, float, ssl.SSLContext | None], Connect]] = {
    "http": _plain,
    "https": _tls,
}
"""Scheme -> (target, connect timeout, TLS context or None for the system's CAs) -> Connect."""


def connector(target: Target, timeout: float, tls: ssl.SSLContext | None = None) -> Connect:
    """How clients open connections to `target`, giving up on a connect (and TLS handshake)
    after `timeout`; `tls` is the context for https (None: the system's CAs)."""
    return CONNECTORS[target.scheme](target, timeout, tls)
