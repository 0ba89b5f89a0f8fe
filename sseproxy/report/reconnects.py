"""Reconnect chains and the resume check.

A *chain* is the sequence of stream attempts (streams and failed attempts) one client
made: keyed by the session key when the journal has one, else by client address and
user agent. Each attempt after the first is a *hop* from the attempt it follows: the most
recent one of the same chain that had already closed, preferring the one whose last id
the client sent back as `Last-Event-ID`, then one on the same path (so two tabs of one
browser make two interleaved lineages, not one confused one).

For each hop the resume check compares three ids: E, the last id the client had been
given (the previous connection's `last_id`, or earlier in the lineage when it delivered
none); S, the `Last-Event-ID` the client sent; F, the first id the server sent on the
new connection. The client did its part when S == E. With numeric ids, the server
continued when F == E + 1, skipped ahead when F > E + 1 (F - E - 1 events lost) and
repeated when F <= E (the events numbered F..E delivered again: counted exactly from the
journal's `event` records when it has them, else as min(E - F + 1, events delivered)).
When the client had been given nothing, S stands in for E.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sseproxy.report.model import Chain, Hop, Reconnects, Resume
from sseproxy.report.records import Connection
from sseproxy.report.stats import human_duration, percentile, summarize, ua_family
from sseproxy.words import plural

__all__ = [
    "CLOSE_SLACK",
    "RECONNECT_WINDOW",
    "Lineage",
    "chain_key",
    "chain_label",
    "client_key",
    "client_label",
    "reconnects",
]

CLOSE_SLACK = 1.0
"""Seconds a reconnect may precede the proxy's record of the old connection closing (the
client hung up and dialled again before the proxy noticed)."""


RECONNECT_WINDOW = 120.0
"""Default: a client that comes back more than 2 minutes after its last connection closed
is paying a new visit (a tab opened again, curl run again), not reconnecting."""


def client_key(conn: Connection) -> str:
    """Address and exact user agent: a client, as far as a journal without sessions can tell."""
    return f"{conn.host} {conn.user_agent or '(no user agent)'}"


def chain_key(conn: Connection) -> str:
    session = conn.session
    return f"session {session}" if session else client_key(conn)


def client_label(conn: Connection) -> str:
    return f"{conn.host} {ua_family(conn.user_agent)}"


def chain_label(conn: Connection) -> str:
    session = conn.session
    if session:
        return f"{session} ({conn.host}, {ua_family(conn.user_agent)})"
    return client_label(conn)


def _numeric(value: str | None) -> int | None:
    if value is None or not value.isdigit():
        return None
    return int(value)


@dataclass
class Lineage:
    """What the report found about chains, for the other sections (clients, timeline)."""

    hops: list[Hop]
    chain_of: dict[str, str]
    """connection key -> chain key."""
    labels: dict[str, str]
    """chain key -> label."""


def _check(hop_base: str | None, sent: str | None, nxt: Connection, stream: bool) -> Hop:
    """The resume check of one hop (chain, previous, next, delay filled in by the caller)."""
    expected = hop_base
    if expected is None:
        client_check = "none"
    elif sent == expected:
        client_check = "ok"
    elif sent is None:
        client_check = "missing"
    else:
        client_check = "mismatch"
    base = expected if expected is not None else sent
    first = nxt.first_id
    lost = replayed = 0
    if not stream:
        server_check = "failed"
    elif base is None:
        server_check = "fresh"
    elif first is None:
        server_check = "no-events"
    else:
        b, f = _numeric(base), _numeric(first)
        if b is None or f is None:
            server_check = "repeated" if first == base else "not-numeric"
            replayed = 1 if first == base else 0
        elif f == b + 1:
            server_check = "ok"
        elif f > b + 1:
            server_check, lost = "skipped", f - b - 1
        else:
            server_check, replayed = "repeated", _replayed(nxt, b, f)
    return Hop(
        "", "", nxt.key, 0.0, expected, sent, first, client_check, server_check, lost, replayed
    )


def _replayed(conn: Connection, base: int, first: int) -> int:
    if conn.events:
        return sum(1 for e in conn.events if (n := _numeric(e.id)) is not None and n <= base)
    delivered = conn.events_down if conn.events_down is not None else base - first + 1
    return min(base - first + 1, delivered)


def lost_inside(conn: Connection) -> int | None:
    """Ids skipped between consecutive events of one connection (None: no event records)."""
    if not conn.events:
        return None
    lost, previous = 0, None
    for event in conn.events:
        n = _numeric(event.id)
        if n is None:
            continue
        if previous is not None and n > previous + 1:
            lost += n - previous - 1
        previous = n
    return lost


def lineage(
    attempts: list[Connection],
    streams: set[str],
    status: dict[str, str],
    window: float = RECONNECT_WINDOW,
) -> Lineage:
    """Hops between the stream attempts (`streams`: keys of established streams)."""
    by_chain: dict[str, list[Connection]] = defaultdict(list)
    labels: dict[str, str] = {}
    chain_of: dict[str, str] = {}
    for conn in sorted(attempts, key=lambda c: (c.opened, c.key)):
        key = chain_key(conn)
        by_chain[key].append(conn)
        labels.setdefault(key, chain_label(conn))
        chain_of[conn.key] = key
    hops: list[Hop] = []
    for key, conns in by_chain.items():
        pending: list[Connection] = []
        given: dict[str, str | None] = {}  # conn key -> last id the client had after it
        for conn in conns:
            request = conn.main_request
            sent = request.last_event_id if request else None
            candidates = [
                p
                for p in pending
                if p.closed_at is not None
                and p.closed_at - CLOSE_SLACK <= conn.opened <= p.closed_at + window
            ]
            if candidates:
                previous = max(
                    candidates,
                    key=lambda p: (
                        sent is not None and given.get(p.key) == sent,
                        p.path == conn.path,
                        p.closed_at or 0.0,
                    ),
                )
                pending.remove(previous)
                expected = given.get(previous.key)
                hop = _check(expected, sent, conn, conn.key in streams)
                assert previous.closed_at is not None
                hop.chain, hop.previous = key, previous.key
                hop.delay = max(0.0, conn.opened - previous.closed_at)
                hop.status = status.get(conn.key, "")
                hops.append(hop)
            else:
                expected = None
            held = expected if expected is not None else sent
            # an empty id (the server sent `id:` to reset it) leaves nothing to resume
            given[conn.key] = (conn.last_id if conn.last_id is not None else held) or None
            pending.append(conn)
    return Lineage(hops, chain_of, labels)


def reconnects(
    attempts: list[Connection], found: Lineage, streams: set[str], window: float
) -> Reconnects:
    hops = found.hops
    members: dict[str, list[Connection]] = defaultdict(list)
    for conn in sorted(attempts, key=lambda c: (c.opened, c.key)):
        members[found.chain_of[conn.key]].append(conn)
    hops_of: dict[str, list[Hop]] = defaultdict(list)
    for hop in hops:
        hops_of[hop.chain].append(hop)
    rows: list[Chain] = []
    for key, conns in members.items():
        delays = [hop.delay for hop in hops_of[key]]
        rows.append(
            Chain(
                key=key,
                label=found.labels[key],
                connections=[c.key for c in conns],
                reconnects=len(hops_of[key]),
                failed=sum(1 for c in conns if c.key not in streams),
                delay_p50=percentile(delays, 50) if delays else None,
                delay_max=max(delays) if delays else None,
                lost=sum(hop.lost for hop in hops_of[key]),
                replayed=sum(hop.replayed for hop in hops_of[key]),
            )
        )
    rows.sort(key=lambda r: (-r.reconnects, -r.lost - r.replayed, r.label))
    inside = [lost_inside(c) for c in attempts]
    known_inside = [n for n in inside if n is not None]
    resume = Resume(
        reconnects=len(hops),
        with_id_to_resume=sum(1 for h in hops if h.expected_id is not None),
        sent_ok=sum(1 for h in hops if h.client_check == "ok"),
        sent_missing=sum(1 for h in hops if h.client_check == "missing"),
        sent_mismatch=sum(1 for h in hops if h.client_check == "mismatch"),
        server_ok=sum(1 for h in hops if h.server_check == "ok"),
        skipped=sum(1 for h in hops if h.server_check == "skipped"),
        lost=sum(h.lost for h in hops),
        repeated=sum(1 for h in hops if h.server_check == "repeated"),
        replayed=sum(h.replayed for h in hops),
        no_events=sum(1 for h in hops if h.server_check == "no-events"),
        not_numeric=sum(1 for h in hops if h.server_check == "not-numeric"),
        lost_inside_streams=sum(known_inside) if known_inside else None,
    )
    waits = summarize([hop.delay for hop in hops])
    return Reconnects(
        window=window,
        chains=len(rows),
        chains_with_reconnects=sum(1 for r in rows if r.reconnects),
        reconnects=len(hops),
        delays=waits,
        resume=resume,
        sentences=_sentences(
            resume, waits.p50, waits.max, len(rows), sum(1 for x in rows if x.reconnects)
        ),
        chain_rows=rows,
        hops=hops,
    )


def _sentences(
    r: Resume, p50: float | None, longest: float | None, chains: int, reconnecting: int
) -> list[str]:
    skipped = r.lost_inside_streams or 0
    verb = "was" if skipped == 1 else "were"
    inside = [f"Inside streams, {plural(skipped, 'id')} {verb} skipped."] if skipped else []
    if not r.reconnects:
        each = "connected once" if chains == 1 else "each connected once"
        return [f"No reconnects: {plural(chains, 'client')}, {each}.", *inside]
    said = [
        f"{plural(r.reconnects, 'reconnect')} by {reconnecting} of {plural(chains, 'client')} "
        f"(or sessions); delay p50 {human_duration(p50)}, max {human_duration(longest)}."
    ]
    if r.with_id_to_resume:
        sent = _listing(
            (r.sent_ok, "sent that id back", ""),
            (r.sent_missing, "sent none", ""),
            (r.sent_mismatch, "sent a different one", ""),
        )
        said.append(
            f"Last-Event-ID: {plural(r.with_id_to_resume, 'reconnect')} followed a connection "
            f"that had delivered an id; the client {sent}."
        )
    checked = r.server_ok + r.skipped + r.repeated
    if checked:
        server = _listing(
            (r.server_ok, "continued exactly", ""),
            (r.skipped, "skipped ahead", f" ({plural(r.lost, 'event')} lost)"),
            (r.repeated, "repeated", f" ({plural(r.replayed, 'event')} replayed)"),
        )
        said.append(f"Server after resuming: {server}.")
    if r.no_events:
        said.append(f"{plural(r.no_events, 'resumed connection')} delivered no event to check.")
    if r.not_numeric:
        said.append(
            f"{plural(r.not_numeric, 'resume')} used non-numeric ids: continuity not checked."
        )
    if not checked and not r.with_id_to_resume:
        said.append("No event ids were delivered before any reconnect: nothing to resume.")
    return said + inside


def _times(count: int) -> str:
    return "once" if count == 1 else f"{count} times"


def _listing(*parts: tuple[int, str, str]) -> str:
    """'sent that id back 3 times and sent none once': the parts that happened."""
    said = [f"{what} {_times(n)}{after}" for n, what, after in parts if n]
    return ", ".join(said[:-1]) + " and " + said[-1] if len(said) > 1 else "".join(said)
