"""CORS for the built-in server, so a page from anywhere can open its streams.

A workshop page opened from disk (`file://`, which browsers send as `Origin: null`) or
from another port reads the built-in server's streams only if the server says it may.
The built-in server holds nothing private and sends no cookies, so every answer carries
`Access-Control-Allow-Origin: *`. A preflight (OPTIONS with
`Access-Control-Request-Method`) is granted the methods of the path and the headers asked
for: an EventSource that reconnects sends `Last-Event-ID`, which is not a CORS-safelisted
header. Chrome's Private Network Access preflight (a public page reaching loopback) is
granted too.

The control API never uses this: it stays same-origin (docs/control.md, Security).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Final

__all__ = ["ALLOW_ANY_ORIGIN", "MAX_AGE", "preflight_headers"]

ALLOW_ANY_ORIGIN: Final = ("Access-Control-Allow-Origin", "*")
MAX_AGE: Final = 600
"""Seconds a browser may reuse a preflight's answer (Chrome caps it at 7200)."""
_ALWAYS_ALLOWED: Final = ("Last-Event-ID", "Cache-Control", "Content-Type")
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def preflight_headers(
    request_headers: Mapping[bytes, bytes], methods: Sequence[str]
) -> list[tuple[str, str]]:
    """The headers of a 204 answering an OPTIONS request on a path that allows `methods`."""
    asked = request_headers.get(b"access-control-request-headers", b"").decode("latin-1")
    names = [name.strip() for name in asked.split(",")]
    granted = list(_ALWAYS_ALLOWED)
    known = {name.lower() for name in granted}
    for name in names:
        if _TOKEN.fullmatch(name) and name.lower() not in known:
            known.add(name.lower())
            granted.append(name)
    headers = [
        ALLOW_ANY_ORIGIN,
        ("Access-Control-Allow-Methods", ", ".join(methods)),
        ("Access-Control-Allow-Headers", ", ".join(granted)),
        ("Access-Control-Max-Age", str(MAX_AGE)),
        ("Vary", "Access-Control-Request-Headers"),
        ("Allow", ", ".join([*methods, "OPTIONS"])),
    ]
    if request_headers.get(b"access-control-request-private-network", b"").lower() == b"true":
        headers.append(("Access-Control-Allow-Private-Network", "true"))
    return headers
