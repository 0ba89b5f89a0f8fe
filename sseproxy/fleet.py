"""Several named proxies in one process, sharing one journal.

`sseproxy run --config FILE` starts the proxies a file lists; the toxiproxy API creates,
disables, enables and deletes them while the process runs. Each `Member` is an ordinary
`Proxy` with its own scenario, listener and upstream; its journal records carry
`proxy: NAME` (a `ProxyJournal` over the shared `Journal`), so one journal and one
report cover them all. Every member is live: faults change on open connections too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from sseproxy.errors import ConfigError
from sseproxy.journal import Journal, Record
from sseproxy.proxy import Mode, Proxy, ProxySettings, Upstream
from sseproxy.scenario import FaultSpec, Scenario
from sseproxy.server import serve_proxy

__all__ = ["Fleet", "ListenError", "Member", "ProxyJournal", "split_listen"]


class ListenError(Exception):
    """A listen address that cannot be used; worded as Go's net.Listen words it."""


class ProxyJournal(Journal):
    """One proxy's face of a shared journal: its records say `proxy: NAME`, and carry its
    own scenario and seed. Everything else (the file, kept records, subscribers) is the
    shared journal's."""

    def __init__(self, shared: Journal, name: str) -> None:  # no super(): state is shared's
        self.shared = shared
        self.name = name
        self.scenario = shared.scenario
        self.seed = shared.seed

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.shared, attribute)

    def subscribe(self, callback: Callable[[Record], None]) -> Callable[[], None]:
        """Only this proxy's records (the control API of one member: metrics, /journal)."""

        def mine(record: Record) -> None:
            if record.get("proxy") == self.name:
                callback(record)

        return self.shared.subscribe(mine)

    def write(self, kind: str, conn: str, **fields: Any) -> Record:
        shared = self.shared
        saved = shared.scenario, shared.seed
        shared.scenario, shared.seed = self.scenario, self.seed
        try:
            return shared.write(kind, conn, proxy=self.name, **fields)
        finally:
            shared.scenario, shared.seed = saved


def split_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:8080', '[::1]:0', ':8080' (loopback) -> (host, port), or ListenError.
    '' is any free port on loopback (toxiproxy: on every interface)."""
    if not text:
        return "127.0.0.1", 0
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ListenError(f"address {text}: missing port in address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ListenError(f"address {text}: too many colons in address")
    if not port.isdigit() or int(port) > 65535:
        raise ListenError(f"lookup tcp/{port}: unknown port")
    return host or "127.0.0.1", int(port)


def _shown(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@dataclass
class Member:
    """One named proxy: what it was asked for, and its running state."""

    name: str
    listen: str
    """As toxiproxy shows it: the bound address while enabled, else as given."""
    upstream: str
    proxy: Proxy
    base: Scenario
    """The scenario it was started with."""
    enabled: bool = False
    toxics: list[Any] = field(default_factory=list)
    """The toxiproxy API's toxics on this proxy (sseproxy.toxiproxy.toxics.Toxic)."""
    _scope: trio.CancelScope | None = None
    _stopped: trio.Event | None = None

    @property
    def mode(self) -> Mode:
        return self.proxy.settings.mode

    _extra: frozenset[str] = frozenset()

    def set_faults(self, extra: tuple[FaultSpec, ...]) -> None:
        """Replace the faults last given here by `extra` (the toxics), leaving the others
        (the scenario's, or the control API's) alone; on open connections too."""
        scenario = self.proxy.scenario
        kept = tuple(spec for spec in scenario.faults if spec.name not in self._extra)
        self.proxy.set_scenario(replace(scenario, faults=kept + extra))
        self._extra = frozenset(spec.name for spec in extra)


def upstream_of(text: str) -> Upstream:
    """toxiproxy accepts any upstream and fails on connect: so do we."""
    try:
        return Upstream.parse(text)
    except ConfigError:
        return Upstream(text or "invalid", 0)


class Fleet:
    """The named proxies of one process, served in `nursery`."""

    def __init__(
        self,
        journal: Journal,
        nursery: trio.Nursery,
        *,
        seed: int | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.journal = journal
        self.nursery = nursery
        self.seed = seed
        self.members: dict[str, Member] = {}
        self.on_change = on_change

    def create(
        self,
        name: str,
        listen: str,
        upstream: str,
        *,
        mode: Mode = "tcp",
        scenario: Scenario | None = None,
        settings: ProxySettings | None = None,
    ) -> Member:
        """A member, not yet listening (see `start`), not yet in `members` (see `add`)."""
        scenario = scenario or Scenario(name=name)
        base = settings or ProxySettings(upstream_of(upstream))
        base = replace(base, upstream=upstream_of(upstream), mode=mode, live=True)
        journal = ProxyJournal(self.journal, name)
        proxy = Proxy(base, scenario, journal, seed=self.seed)
        return Member(name, listen, upstream, proxy, scenario)

    def add(self, member: Member) -> None:
        self.members[member.name] = member

    async def start(self, member: Member) -> None:
        """Listen and serve (ListenError when the address cannot be used)."""
        if member.enabled:
            return
        host, port = split_listen(member.listen)
        try:
            listeners = await trio.open_tcp_listeners(port, host=host)
        except OSError as error:
            reason = (error.strerror or str(error)).lower()
            raise ListenError(f"listen tcp {_shown(host, port)}: bind: {reason}") from None
        for extra in listeners[1:]:
            await extra.aclose()
        listener = listeners[0]
        bound = listener.socket.getsockname()
        member.listen = _shown(bound[0], bound[1])
        member.enabled = True
        member._stopped = trio.Event()
        await self.nursery.start(self._serve, member, listener)
        member.proxy.journal.write(  # not `started`: that begins a run in the report
            "listening",
            "-",
            listen=member.listen,
            upstream=member.upstream,
            mode=member.mode,
            max_connections=member.proxy.settings.max_connections,
            scenario_file=member.base.path,
        )

    async def _serve(
        self,
        member: Member,
        listener: trio.SocketListener,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        stopped = member._stopped
        try:
            with trio.CancelScope() as scope:
                member._scope = scope
                await serve_proxy(member.proxy, listener, task_status=task_status)
        finally:
            if stopped is not None:
                stopped.set()

    async def stop(self, member: Member) -> None:
        """Stop listening and close its connections (toxiproxy's disable); waits until the
        address is free again."""
        if not member.enabled:
            return
        member.enabled = False
        if member._scope is not None:
            member._scope.cancel()
        if member._stopped is not None:
            with trio.move_on_after(5):
                await member._stopped.wait()
        member.proxy.journal.write("stopped", "-", listen=member.listen)

    async def remove(self, name: str) -> None:
        member = self.members.pop(name)
        await self.stop(member)

    def connections(self) -> list[Any]:
        return [conn for member in self.members.values() for conn in member.proxy.live.values()]
