"""Balancing keys and rings: what `sseproxy.pool` hashes, and how, for each method.

Pure functions, no state: the client address or request value a request is balanced
on, nginx's `ip_hash` walk, a ketama-like consistent-hash ring, and the smooth weighted
round robin nginx uses for `round_robin` (and `least_conn` among equals).

References (nginx's upstream module, https://nginx.org/en/docs/http/ngx_http_upstream_module.html):
- `#ip_hash`: "The first three octets of the client IPv4 address, or the entire IPv6
  address, are used as a hashing key"; the walk below is that of
  src/http/modules/ngx_http_upstream_ip_hash_module.c (hash 89, `hash * 113 + octet`
  modulo 6271, then the weights; a tried or failed server: walk on from the last hash;
  over 20 steps: fall back to round robin).
- `#hash` with `consistent`: "ketama consistent hashing ... if a server is added to or
  removed from a group, only a few keys will be remapped".
"""

from __future__ import annotations

import bisect
import ipaddress
import zlib
from collections.abc import Mapping, Sequence
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl

__all__ = [
    "IP_HASH_MAX_TRIES",
    "POINTS_PER_WEIGHT",
    "HashKey",
    "Ring",
    "ip_hash_bytes",
    "ip_hash_step",
    "smooth_pick",
]

IP_HASH_MAX_TRIES = 20
"""Steps of the ip_hash walk before nginx falls back to round robin."""
POINTS_PER_WEIGHT = 160
"""Points on the ring per unit of weight (ketama's 160, as nginx's `hash ... consistent`)."""


def ip_hash_bytes(address: str) -> bytes:
    """The bytes nginx's ip_hash hashes: an IPv4 address's first three octets, all 16 of
    an IPv6 address (an IPv4-mapped one included, as nginx sees it on an IPv6 socket),
    and nginx's pseudo-address (three zero bytes) for anything else (a Unix socket,
    'memory')."""
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return b"\0\0\0"
    return ip.packed[:3] if ip.version == 4 else ip.packed


def ip_hash_step(hash_: int, key: bytes, weights: Sequence[int]) -> tuple[int, int]:
    """One step of nginx's ip_hash walk: (the new hash, the index of the server it names)."""
    for octet in key:
        hash_ = (hash_ * 113 + octet) % 6271
    w = hash_ % sum(weights)
    index = 0
    while w >= weights[index]:
        w -= weights[index]
        index += 1
    return hash_, index


def smooth_pick(current: list[int], weights: Sequence[int], allowed: Sequence[bool]) -> int | None:
    """nginx's smooth weighted round robin over the `allowed` members: each gains its
    weight, the largest wins and pays the total back (weights 5,1,1 give a a b a c a a).
    Updates `current` in place; None when no member is allowed."""
    best, total = None, 0
    for i, weight in enumerate(weights):
        if not allowed[i]:
            continue
        current[i] += weight
        total += weight
        if best is None or current[i] > current[best]:
            best = i
    if best is not None:
        current[best] -= total
    return best


def _point(text: str) -> int:
    return zlib.crc32(text.encode())


class Ring:
    """A ketama-like ring: POINTS_PER_WEIGHT points per unit of weight and member, placed
    by the member's name (not its position), so adding or removing a member moves only
    the keys that fall next to its points."""

    def __init__(self, names: Sequence[str], weights: Sequence[int]) -> None:
        points = sorted(
            (_point(f"{name}-{n}"), i)
            for i, (name, weight) in enumerate(zip(names, weights, strict=True))
            for n in range(weight * POINTS_PER_WEIGHT)
        )
        self.hashes = [h for h, _ in points]
        self.members = [i for _, i in points]

    def walk(self, key: str) -> list[int]:
        """Member indexes in ring order from `key`'s point, each once: the first is the
        key's member, the next ones where it goes when those before are down."""
        start = bisect.bisect_left(self.hashes, _point(key))
        seen: list[int] = []
        count = len(set(self.members))
        for n in range(len(self.members)):
            member = self.members[(start + n) % len(self.members)]
            if member not in seen:
                seen.append(member)
                if len(seen) == count:
                    break
        return seen


class HashKey:
    """Where `balance = "hash"` takes its key: `header:NAME`, `query:NAME` or
    `cookie:NAME`, or several joined by commas, whose values are concatenated as nginx's
    `hash $arg_session_id$http_mcp_session_id` does (one key for both MCP transports).
    A request without it hashes the empty string (as nginx's `hash` does with an empty
    variable), so all such requests go to one member."""

    SOURCES = ("header", "query", "cookie")

    def __init__(self, text: str) -> None:
        self.parts: list[tuple[str, str]] = []
        for part in text.split(","):
            source, sep, name = part.strip().partition(":")
            if not sep or source not in self.SOURCES or not name:
                raise ValueError(
                    f"{text!r} is not a hash key; use header:NAME, query:NAME or cookie:NAME "
                    "(e.g. header:Mcp-Session-Id), or several joined by commas"
                )
            self.parts.append((source, name))
        self.text = text

    def of(self, headers: Mapping[str, str], query: str) -> str:
        """The key's value in a request (`headers` with lower-case names), or ''."""
        return "".join(self._value(source, name, headers, query) for source, name in self.parts)

    @staticmethod
    def _value(source: str, name: str, headers: Mapping[str, str], query: str) -> str:
        if source == "header":
            return headers.get(name.lower(), "")
        if source == "query":
            return dict(parse_qsl(query, keep_blank_values=True)).get(name, "")
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except CookieError:
            return ""
        morsel = cookie.get(name)
        return morsel.value if morsel is not None else ""

    def __str__(self) -> str:
        return self.text
