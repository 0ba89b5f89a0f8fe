"""An upstream's address as given (`http://host:port`, `https://...`): parsed without
trio, so that reading a scenario's `[[upstreams]]` (`scenarios list`, `validate`) stays
as light as the rest of scenario reading. `sseproxy.proxy` re-exports it."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from sseproxy.errors import ConfigError

__all__ = ["Upstream"]


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int
    tls: bool = False
    """`https://`: TLS to the upstream (`sseproxy.tls`; the proxy's clients still speak
    plain HTTP to the proxy)."""

    @classmethod
    def parse(cls, text: str) -> Upstream:
        """'http://localhost:9000', 'https://api.example.com', 'localhost:9000' or ':9000'
        (loopback)."""
        parts = urlsplit(text if "//" in text else f"//{text}")
        if parts.scheme not in ("", "http", "https", "tcp"):
            raise ConfigError(
                f"upstream {text!r}: scheme {parts.scheme!r} is not supported; use http:// "
                "or https://"
            )
        try:
            port = parts.port
        except ValueError:
            raise ConfigError(f"upstream {text!r}: the port is not a number") from None
        if port is None:
            port = {"http": 80, "https": 443}.get(parts.scheme)
        if port is None:
            raise ConfigError(f"upstream {text!r}: give a port, e.g. http://127.0.0.1:9000")
        if parts.path not in ("", "/"):
            raise ConfigError(f"upstream {text!r}: give no path; requests keep their own")
        return cls(parts.hostname or "127.0.0.1", port, tls=parts.scheme == "https")

    @property
    def authority(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.tls else 80) else f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.authority}"
