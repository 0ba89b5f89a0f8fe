"""What HTTP mode refuses, and which headers belong to one hop only.

A proxy that forwards a message its upstream may frame differently is a request
smuggling tool. So, before the upstream is contacted, a request is checked for what
h11 parses but the proxy must not forward (RFC 9112 §6.1, §2.3; RFC 9110 §9.3.6):

- both Content-Length and Transfer-Encoding: 400. RFC 9112 lets an intermediary either
  reject it or drop Content-Length; we reject, as nginx (since 1.21.1) and HAProxy do,
  because such a request comes from a broken or hostile client and a chaos proxy must
  not hide that from the test that sent it;
- an HTTP/2 connection preface (`PRI * HTTP/2.0`): 400, as nginx without http2;
- any HTTP version but 1.x: 505, as nginx;
- `CONNECT`: 501 (tunnels are not relayed; nginx answers 400).

A response from the upstream with both framing headers gets 502 (nginx 1.22 drops the
Content-Length instead: see docs/bad-input.md).

`Connection` may list extra hop-by-hop headers, but never the ones that frame the
message or name its host: dropping `Content-Length` would leave the body unframed.
"""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

import h11

__all__ = [
    "CLOSES_AFTER",
    "HOP_BY_HOP",
    "REASONS",
    "Refusal",
    "end_to_end",
    "head_size",
    "phrase",
    "refusal_of",
    "response_problem",
]

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
NEVER_LISTED = frozenset({b"content-length", b"host"})
"""Names `Connection` cannot make hop-by-hop (Transfer-Encoding is re-framed anyway)."""

REASONS = {
    400: "bad-request",
    408: "client-header-timeout",
    431: "head-too-large",
    501: "not-implemented",
    505: "version-not-supported",
}
"""The journal's reason for each status the proxy answers to a client's bad input."""

CLOSES_AFTER = frozenset({400, 408, 413, 414, 431, 500, 501, 505})
"""Statuses after which the proxy's own answer closes the connection, as nginx and HAProxy
do. nginx turns keep-alive off for 400, 413, 414 and 500 (`ngx_http_special_response_handler`)
and closes after any request head it refused (too large, 505, CONNECT); HAProxy closes
after its 400 and 408. After the others (502, 503, 504: the upstream failed, not the
client) both keep the connection for the next request (docs/fidelity.md, row 3)."""

PHRASES = {408: b"Request Time-out", 504: b"Gateway Time-out"}
"""Where nginx and HAProxy agree on a phrase other than RFC 9110's (RFC 2616 spelled it
so): a client that compares the status line sees what it sees behind either of them."""


@dataclass(frozen=True)
class Refusal:
    """A request the proxy answers itself: `status`, and why (one line)."""

    status: int
    message: str

    @property
    def reason(self) -> str:
        return REASONS.get(self.status, "bad-request")


def end_to_end(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """Drop hop-by-hop headers (RFC 9110 §7.6.1), including those listed in Connection."""
    listed = {
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    } - NEVER_LISTED
    return [(n, v) for n, v in headers if n not in HOP_BY_HOP and n not in listed]


def head_size(target: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """About how many bytes a head took on the wire (h11 checks only incomplete heads)."""
    return len(target) + 16 + sum(len(name) + len(value) + 4 for name, value in headers)


def phrase(status: int) -> bytes:
    """The reason phrase of `status`: RFC 9110's, or the one nginx and HAProxy both send
    (`PHRASES`); b'' for an unregistered status."""
    if status in PHRASES:
        return PHRASES[status]
    known = status in HTTPStatus._value2member_map_
    return HTTPStatus(status).phrase.encode() if known else b""


def _both_framings(headers: list[tuple[bytes, bytes]]) -> bool:
    names = {name for name, _ in headers}
    return b"content-length" in names and b"transfer-encoding" in names


def refusal_of(request: h11.Request) -> Refusal | None:
    """Why `request` must not reach the upstream, or None when it may."""
    version = request.http_version
    if request.method == b"PRI" and request.target == b"*" and version == b"2.0":
        return Refusal(400, "an HTTP/2 connection preface; this proxy speaks HTTP/1.1")
    if not version.startswith(b"1."):
        return Refusal(505, f"HTTP/{version.decode('ascii', 'replace')} is not supported")
    if request.method == b"CONNECT":
        return Refusal(501, "CONNECT is not supported (no tunnels)")
    if _both_framings(list(request.headers)):
        return Refusal(
            400,
            "both Content-Length and Transfer-Encoding (a request smuggling pattern, "
            "RFC 9112 §6.1)",
        )
    return None


def response_problem(response: h11.Response) -> str | None:
    """Why the upstream's response head cannot be relayed, or None when it can."""
    if _both_framings(list(response.headers)):
        return "sent both Content-Length and Transfer-Encoding"
    return None
