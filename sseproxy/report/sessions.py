"""Sessions lost behind a pool: a request of a known session answered 404 by a member
that does not know it (issue 13's ip_hash + MCP story).

A stateful server (an MCP server, legacy HTTP+SSE or Streamable HTTP) keeps a session in
one instance's memory. The journal has what it takes to see one get lost: the member of
every exchange (`upstream.member`), the session key of a request (`request.session`:
`Mcp-Session-Id`, `session_id`...) or of a response that opened one
(`response.session`), the status, and when a member restarted (`member-restarted`). A
404 for a session is then named by what came before it:

- the session's requests had reached another member: "stream resumed on another
  upstream; session unknown there" (ip_hash re-hashed around a failed member, or sent
  the client back once `fail_timeout` was over);
- they had reached this member, which restarted since: it forgot the session;
- the session was opened by a request without a session id (the legacy `GET /sse`, the
  Streamable `initialize`) on another member, and its first request with the id went
  elsewhere: hashing on the session id cannot keep that first request with the others.

The MCP answers behind the 404 are `Could not find session` (legacy) and the JSON-RPC
error -32600 `Session not found` (Streamable HTTP); the journal has the status only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from sseproxy.report.records import Connection, Request

__all__ = ["BORN_ELSEWHERE", "MOVED", "RESTARTED", "SessionLoss", "SessionLosses", "session_losses"]

MOVED = "stream resumed on another upstream; session unknown there"
RESTARTED = "upstream restarted; session unknown there"
BORN_ELSEWHERE = "session opened on another upstream (its first request had no session id)"


@dataclass(frozen=True)
class SessionLoss:
    """One request of a session that a member did not know."""

    t: float
    session: str
    member: str
    """The member that answered 404."""
    home: str | None
    """Where the session lived (its earlier requests, or the request that opened it)."""
    cause: str
    connection: str
    path: str


@dataclass
class SessionLosses:
    """The losses by cause: how many sessions, requests, and which moves."""

    cause: str
    sessions: list[str] = field(default_factory=list)
    """The sessions lost, each once, in the order they were."""
    requests: int = 0
    moves: dict[str, int] = field(default_factory=dict)
    """'c -> a' (where it lived -> where unknown), or 'c' for a restart: how many 404s.
    (A plain dict: `dataclasses.asdict` rebuilds a Counter wrongly, so `--json` fails.)"""
    first: float = 0.0

    @property
    def top_moves(self) -> str:
        return ", ".join(f"{move} ({n})" for move, n in Counter(self.moves).most_common(3))


def _ok(request: Request) -> bool:
    return request.status is not None and 200 <= request.status < 300


def session_losses(
    conns: Iterable[Connection], restarts: Iterable[tuple[float, int, str]] = ()
) -> list[SessionLoss]:
    """Every 404 for a session that a member did not know, named by its cause (see the
    module docstring), in time order; none without pool members or session keys."""
    conns = list(conns)
    exchanges = sorted(
        ((r.t, c, r) for c in conns for r in c.requests if r.member is not None),
        key=lambda item: item[0],
    )
    restarted = list(restarts)
    homes: dict[tuple[int, str], tuple[str, float, bool]] = {}
    """(run, session) -> (member, since, opened there by a request without the id)."""
    unnamed: dict[tuple[int, str], str] = {}
    """(run, client host) -> the member of its latest 2xx request without a session id."""
    found: list[SessionLoss] = []
    for t, conn, request in exchanges:
        member, run = request.member, conn.run
        assert member is not None
        if request.session is None:
            if request.session_answered and _ok(request):
                homes[(run, request.session_answered)] = (member, t, True)
            elif _ok(request):
                unnamed[(run, conn.host)] = member
            continue
        key = (run, request.session)
        home = homes.get(key)
        if request.status != 404:
            if _ok(request):
                homes[key] = (member, t, False)
            continue
        cause, where = None, home[0] if home else unnamed.get((run, conn.host))
        if home is not None and home[0] != member:
            cause = BORN_ELSEWHERE if home[2] else MOVED
        elif home is not None:
            since = home[1]
            if any(m == member and r == run and since < at <= t for at, r, m in restarted):
                cause = RESTARTED
        elif where is not None and where != member:
            cause = BORN_ELSEWHERE
        if cause is not None:
            found.append(
                SessionLoss(t, request.session, member, where, cause, conn.key, request.path)
            )
    return found


def loss_rows(losses: Iterable[SessionLoss]) -> list[SessionLosses]:
    """The losses grouped by cause, the most sessions first."""
    rows: dict[str, SessionLosses] = {}
    for loss in losses:
        row = rows.get(loss.cause)
        if row is None:
            row = rows[loss.cause] = SessionLosses(loss.cause, first=loss.t)
        if loss.session not in row.sessions:
            row.sessions.append(loss.session)
        row.requests += 1
        move = loss.member if loss.cause == RESTARTED else f"{loss.home or '?'} -> {loss.member}"
        row.moves[move] = row.moves.get(move, 0) + 1
    return sorted(rows.values(), key=lambda row: (-len(row.sessions), row.first))
