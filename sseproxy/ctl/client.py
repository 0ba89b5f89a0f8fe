"""The `sseproxy ctl` client: JSON calls to the control API over `http.client`.

Its own module so the commands deal in answers, not HTTP: it turns the `--control` URL and
`--token` into requests, and every failure into one of two click errors, `Unreachable`
(exit 2: no proxy there, wrong token) or `Refused` (exit 1: the proxy said no).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

import click

if TYPE_CHECKING:  # imported where a request is made: `sseproxy --help` has no use for it
    import http.client

__all__ = ["DEFAULT_URL", "ControlClient", "Refused", "Unreachable"]

DEFAULT_URL: Final = "http://127.0.0.1:8474"
TIMEOUT: Final = 10.0
STREAM_TIMEOUT: Final = 60.0
"""`ctl journal` gives up after this long without a byte (the API sends a heartbeat
every 15 s of silence)."""


class Unreachable(click.ClickException):
    """A usage or connection problem: exit status 2."""

    exit_code = 2


class Refused(click.ClickException):
    """The proxy refused the request: exit status 1."""

    exit_code = 1


# -- the client ---------------------------------------------------------------------------


@dataclass
class ControlClient:
    """A few JSON calls to the control API at `url` (http://HOST:PORT[/prefix])."""

    url: str = DEFAULT_URL
    token: str | None = None
    timeout: float = TIMEOUT

    def _target(self) -> tuple[str, str, int, str]:
        text = self.url if "//" in self.url else f"http://{self.url}"
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Unreachable(f"--control {self.url!r}: expected a URL like {DEFAULT_URL}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 8474)
        except ValueError:
            raise Unreachable(f"--control {self.url!r}: the port is not a number") from None
        return parts.scheme, parts.hostname, port, parts.path.rstrip("/")

    @contextlib.contextmanager
    def _send(
        self, method: str, path: str, body: bytes | None, content_type: str | None, timeout: float
    ) -> Iterator[http.client.HTTPResponse]:
        """The response to one request on a connection of its own, closed on the way out."""
        import http.client

        scheme, host, port, prefix = self._target()
        connection_class = (
            http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        )
        connection = connection_class(host, port, timeout=timeout)
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if content_type is not None:
            headers["Content-Type"] = content_type
        with contextlib.closing(connection):
            try:
                connection.request(method, prefix + path, body=body, headers=headers)
                response = connection.getresponse()
            except (OSError, http.client.HTTPException) as error:
                reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
                raise Unreachable(
                    f"cannot reach the control API at {self.url}: {reason} "
                    "(is `sseproxy run --control HOST:PORT` running? see --control)"
                ) from None
            with contextlib.closing(response):
                yield response

    def call(
        self,
        method: str,
        path: str,
        *,
        data: Any = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ) -> tuple[str, bytes]:
        """(content type, body) of a successful answer; Refused or Unreachable otherwise."""
        import http.client

        if data is not None:
            body, content_type = json.dumps(data).encode(), "application/json"
        with self._send(method, path, body, content_type, self.timeout) as response:
            try:
                payload = response.read()
            except (OSError, http.client.HTTPException) as error:
                raise Unreachable(f"the control API at {self.url} broke off: {error}") from None
            if response.status >= 400:
                raise self._problem(response.status, payload)
            return response.getheader("Content-Type", ""), payload

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        content_type, payload = self.call(method, path, **kwargs)
        try:
            return json.loads(payload)
        except ValueError:
            raise Unreachable(
                f"{self.url} answered {content_type or 'something'} that is not JSON; "
                "is it an sseproxy control API?"
            ) from None

    def _problem(self, status: int, payload: bytes) -> click.ClickException:
        try:
            answer = json.loads(payload)
            errors = answer.get("errors") or [answer["error"]]  # every mistake, a line each
            message = "\nError: ".join(str(error) for error in errors)
        except (ValueError, KeyError, TypeError, AttributeError):
            text = payload.decode("utf-8", "replace").strip().splitlines()
            message = text[0] if text else f"HTTP {status}"
        if status in (401, 403):
            hint = "" if self.token else " (give --token or $SSEPROXY_CONTROL_TOKEN)"
            return Unreachable(f"{message}{hint}")
        if status >= 500 or status == 405:
            return Unreachable(f"the control API failed (HTTP {status}): {message}")
        return Refused(message)

    def lines(self, path: str) -> Generator[str, None, None]:
        """The lines of a streamed answer (the journal), as they arrive."""
        import http.client

        with self._send("GET", path, None, None, STREAM_TIMEOUT) as response:
            if response.status >= 400:
                raise self._problem(response.status, response.read())
            try:
                while line := response.readline():
                    yield line.decode("utf-8", "replace").rstrip("\r\n")
            except (OSError, http.client.HTTPException) as error:
                raise Unreachable(
                    f"the journal stream from {self.url} broke off: {error}"
                ) from None
