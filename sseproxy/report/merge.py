"""A probe's journal and the proxy's journal of the same run, as one.

`sseproxy probe --journal` writes each client connection from the client's side;
`sseproxy run --journal` writes the same connection from the proxy's. Given both, the
report would count every connection twice. So each probe connection is matched with the
proxy connection that has its client port and opened within `MATCH_WINDOW` of it (on the
report's common time axis: runs are placed by wall clock, so the two journals line up),
and counted once, as the proxy's: the proxy knows who closed it and why (a fault, the
upstream...). The client's side is kept beside it: `seen_by_client`, how the client saw
the end ("incomplete chunked body", "RST"), and the probe client's session, so the
reconnect chains are per probe client. A note says how many matched and, per proxy
cause, how the clients saw it. Unmatched probe connections (a refused connect never
reached the proxy; a probe pointed elsewhere) stay as they are.
"""

from __future__ import annotations

from collections import Counter

from sseproxy.report.records import Connection

__all__ = ["MATCH_WINDOW", "merge_probe_runs"]

MATCH_WINDOW = 1.0
"""Seconds between the probe's and the proxy's `opened` of one connection, at most."""


def merge_probe_runs(
    connections: list[Connection], probe_runs: set[int]
) -> tuple[list[Connection], list[str]]:
    """The connections with each matched probe connection folded into the proxy's."""
    if not probe_runs:
        return connections, []
    probes = [c for c in connections if c.run in probe_runs]
    proxied: dict[int, list[Connection]] = {}
    for conn in connections:
        if conn.run not in probe_runs and conn.port is not None:
            proxied.setdefault(conn.port, []).append(conn)
    if not proxied:
        return connections, []
    merged: set[str] = set()
    seen: Counter[tuple[str, str]] = Counter()
    for probe in probes:
        candidates = [
            c
            for c in proxied.get(probe.port or -1, [])
            if _same_host(c.host, probe.host)
            and abs(c.opened - probe.opened) <= MATCH_WINDOW
            and c.seen_by_client is None
        ]
        if not candidates:
            continue
        proxy = min(candidates, key=lambda c: abs(c.opened - probe.opened))
        proxy.seen_by_client = probe.seen_by_client or probe.cause
        for request in proxy.requests:
            request.session = request.session or probe.session
        merged.add(probe.key)
        seen[(proxy.cause, proxy.seen_by_client)] += 1
    if not merged:
        return connections, [
            f"the probe's journal ({len(probes)} connections) matched none of the proxy's "
            "by client port and time: counted apart"
        ]
    kept = [c for c in connections if c.key not in merged]
    pairs = ", ".join(f"{cause} seen as {saw} {n}" for (cause, saw), n in seen.most_common())
    note = (
        f"the probe's journal was merged with the proxy's: {len(merged)} of {len(probes)} "
        f"probe connections matched by client port and time, each counted once; how the "
        f"clients saw the proxy's closes: {pairs}"
    )
    return kept, [note]


def _same_host(a: str, b: str) -> bool:
    loopback = {"127.0.0.1", "::1", "localhost", "::ffff:127.0.0.1"}
    return a == b or (a in loopback and b in loopback)
