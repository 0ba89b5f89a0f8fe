"""The proxy's state shared by all connections: settings, scenario plan, journal, upstream.

A connection handler gets a `Proxy` and a `trio.abc.Stream`; whether that stream is a
socket or one end of a memory stream pair is not its business (nor is the upstream's:
`connect` may be replaced, which is how in-memory tests and `sseproxy.testing` work).
"""

from __future__ import annotations

import random
import ssl
import sys
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl

import trio

from sseproxy.admission import AcceptPlan, TurnedAway, decided_at_accept
from sseproxy.connection import Connection
from sseproxy.journal import Journal
from sseproxy.pool import MemberSpec
from sseproxy.scenario import Scenario
from sseproxy.timescale import scaled
from sseproxy.transport import UpstreamError, connect, upstream_error
from sseproxy.upstream_url import Upstream
from sseproxy.upstreams import Balancer, RestartHook, pool_spec

__all__ = ["Connector", "Proxy", "ProxySettings", "Upstream"]

Connector = Callable[[], Awaitable[trio.abc.Stream]]
MemberConnector = Callable[[str], Awaitable[trio.abc.Stream]]
Mode = Literal["http", "tcp"]


@dataclass(frozen=True)
class ProxySettings:
    upstream: Upstream
    mode: Mode = "http"
    connect_timeout: float = 10.0
    client_header_timeout: float = 60.0
    """Seconds a client has to send a whole request head (nginx `client_header_timeout`);
    then 408, or a close if it sent nothing. The upstream's response head has no limit."""
    max_head_size: int = 16 * 1024
    """Largest request or response head accepted (431 / 502 beyond it)."""
    session_keys: tuple[str, ...] = ("Mcp-Session-Id", "sessionId", "session_id")
    """Header or query parameter names whose value identifies a client session."""
    journal_events: bool = False
    """Write a journal line per SSE event delivered."""
    live: bool = False
    """Let faults be added and retired on open connections (control API, tests); every
    link then runs its fault chain, even an empty one (no fast path)."""
    max_connections: int | None = None
    """Client connections served at once; past it new ones are turned away at accept
    (HTTP: 503), journaled as `proxy-overloaded`. None: no cap."""
    time_scale: float = 1.0
    """Every duration of the scenario is multiplied by this (0.1: ten times faster;
    `sseproxy.timescale`); `Proxy.set_time_scale` changes it for new connections."""
    upstreams: tuple[MemberSpec, ...] = ()
    """A pool (`--upstream` repeated); empty: `upstream` alone, or the scenario's
    `[[upstreams]]` (see `sseproxy.upstreams`)."""
    balance: str | None = None
    """`--balance`: overrides the scenario's `balance`."""
    hash_key: str | None = None
    """`--hash-key`: overrides the scenario's `hash_key`."""
    client_ip_from: str | None = None
    """`--client-ip-from`: a request header whose first address ip_hash balances on."""
    upstream_tls: ssl.SSLContext | None = None
    """TLS for an `https://` upstream (`sseproxy.tls.client_context`); None: the system's CAs."""
    listen_tls: ssl.SSLContext | None = None
    """Clients speak TLS to the proxy (`sseproxy.tls.server_context`); None: plain."""


class Proxy:
    """Numbering, fault selection and the journal for every connection of one proxy run."""

    def __init__(
        self,
        settings: ProxySettings,
        scenario: Scenario,
        journal: Journal | None = None,
        *,
        seed: int | None = None,
        connector: Connector | None = None,
        member_connector: MemberConnector | None = None,
    ) -> None:
        self.settings = settings
        if seed is None:
            seed = scenario.seed if scenario.seed is not None else random.randrange(2**32)
        self.seed = seed
        self.journal = journal or Journal(scenario=scenario.name, seed=seed)
        self.journal.scenario, self.journal.seed = scenario.name, seed
        self.time_scale = settings.time_scale
        self.written = scenario
        """The scenario as written; the plan runs it scaled by `time_scale`."""
        self.plan = AcceptPlan(scaled(scenario, self.time_scale), seed, trio.current_time())
        self.connector = connector
        self.member_connector = member_connector
        """Like `connector`, per pool member (tests on memory streams)."""
        lone = not (settings.upstreams or scenario.upstreams)
        self.balancer = Balancer(
            pool_spec(settings, scenario, self.time_scale),
            seed,
            client_ip_from=settings.client_ip_from,
            lone=settings.upstream if lone else None,
        )
        """The upstream pool (one member for a lone `--upstream`); fixed at start."""
        self._session_headers = frozenset(
            key.lower().encode("latin-1") for key in settings.session_keys
        )
        self.on_restart: RestartHook | None = None
        """Called with a member's name when a `restart` fault restarts it."""
        self.connections = 0
        self.exchanges = 0
        self.listener = "memory"
        """The address clients connect to (set by the server; journal `opened` records)."""
        self.plan_changed = trio.Event()
        """Set (and replaced) whenever `set_scenario` puts a new scenario in force."""
        self.live: dict[str, Connection] = {}
        """Open connections by id."""
        self.serving = 0
        """Connections being served (those turned away at accept do not count)."""

    @property
    def scenario(self) -> Scenario:
        """The scenario in force, as written (its times unscaled)."""
        return self.written

    def set_time_scale(self, factor: float) -> None:
        """Run the scenario at time scale `factor` from now on: connections opened from
        now get it re-scaled from the scenario as written; open ones keep their faults."""
        self.time_scale = factor
        plan = AcceptPlan(scaled(self.written, factor), self.seed, self.plan.started)
        plan.counts, plan.picked = self.plan.counts, self.plan.picked  # the same faults
        self.plan = plan
        self.plan_changed.set()
        self.plan_changed = trio.Event()

    def set_scenario(self, scenario: Scenario) -> None:
        """Put a new scenario in force: new connections get its faults, and on open
        connections the faults that are gone or changed are retired and new or changed
        ones added (needs `ProxySettings.live`, else only new connections see it)."""
        self.written = scenario
        scenario = scaled(scenario, self.time_scale)
        old = {spec.name: spec for spec in self.plan.scenario.faults}
        new = {spec.name: spec for spec in scenario.faults}
        plan = AcceptPlan(scenario, self.seed, self.plan.started)
        plan.carry_counts(self.plan)
        self.plan = plan
        self.journal.scenario = scenario.name
        self.plan_changed.set()
        self.plan_changed = trio.Event()
        now = trio.current_time()
        for connection in list(self.live.values()):
            for name, spec in old.items():
                if new.get(name) != spec:
                    for links in connection.links.values():
                        for link in links:
                            link.retire(name)
            for index, spec in enumerate(scenario.faults):
                if old.get(spec.name) == spec or connection.number == 0:
                    continue
                if decided_at_accept(spec):
                    continue  # refuses new connections only
                request = connection.request
                chains = self.plan.select(
                    index,
                    connection.number,
                    request,
                    now,
                    opened=connection.started,
                    member=connection.member,
                )
                for direction, slots in (("down", chains.down), ("up", chains.up)):
                    for link in connection.links.get(direction, ()):  # type: ignore[call-overload]
                        for slot in slots:
                            link.add(slot)

    @property
    def counts_events(self) -> bool:
        """Frame SSE responses to count events for the journal (off when nobody reads it)."""
        return (
            self.journal.stream is not None or self.journal.keep or bool(self.journal.subscribers)
        )

    def session_of(self, headers: Mapping[str, str], query: str) -> str | None:
        """The session key of a request: a configured header, else a query parameter."""
        params = dict(parse_qsl(query, keep_blank_values=True)) if query else {}
        for key in self.settings.session_keys:
            value = headers.get(key.lower()) or params.get(key)
            if value:
                return value
        return None

    def session_answered(self, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        """The session a response opens or names (Streamable HTTP's `Mcp-Session-Id` on
        `initialize`): which member a session was born on, for `report`."""
        names = self._session_headers
        value = next((v for k, v in headers if k.lower() in names), None)
        return value.decode("latin-1") if value else None

    def next_exchange(self) -> int:
        self.exchanges += 1
        return self.exchanges

    async def connect(
        self, upstream: Upstream | None = None, member: str | None = None
    ) -> trio.abc.Stream:
        """A new upstream connection (to a pool member), or UpstreamError (refused,
        unreachable, timeout, a failed TLS handshake)."""
        upstream = upstream or self.settings.upstream
        timeout = self.settings.connect_timeout
        deadline = trio.current_time() + timeout
        stream = await self._connect(upstream, member, timeout)
        if not upstream.tls:
            return stream
        from sseproxy.tls import open_tls

        tls = self.settings.upstream_tls
        return await open_tls(stream, upstream.host, upstream.port, tls, timeout, deadline)

    async def _connect(
        self, upstream: Upstream, member: str | None, timeout: float
    ) -> trio.abc.Stream:
        if self.connector is None and self.member_connector is None:
            return await connect(upstream.host, upstream.port, timeout)
        with trio.move_on_after(timeout):
            try:
                if self.member_connector is not None and member is not None:
                    return await self.member_connector(member)
                assert self.connector is not None
                return await self.connector()
            except OSError as error:
                raise upstream_error(error, f"{upstream.host}:{upstream.port}") from None
        raise UpstreamError("timeout", f"upstream {upstream} did not accept within {timeout:g}s")

    async def handle(self, stream: trio.abc.Stream, client: str = "memory") -> None:
        """Serve one accepted connection until it ends. Network trouble is the journal's
        business; a bug is printed to stderr and ends only this connection (its `closed`
        record says `internal-error`), never the proxy."""
        from sseproxy.http import HttpConnection
        from sseproxy.tcp import TcpConnection

        self.connections += 1
        conn_id = f"c{self.connections}"
        handler = HttpConnection if self.settings.mode == "http" else TcpConnection
        limit = self.settings.max_connections
        full = limit is not None and self.serving >= limit
        refusal = None if full else self.plan.refusal(self.connections, trio.current_time())
        try:
            if full or refusal is not None:  # turned away at accept: nothing read or sent up
                await TurnedAway(self, stream, conn_id, client, refusal).run()
            else:
                self.serving += 1
                try:
                    await handler(self, stream, conn_id, client).run()
                finally:
                    self.serving -= 1
        except Exception:
            print(f"sseproxy: internal error on connection {conn_id}:", file=sys.stderr)
            traceback.print_exc(file=sys.stderr)
