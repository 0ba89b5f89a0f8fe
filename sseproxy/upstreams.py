"""The proxy's upstream pool at work: pick a member, connect, fail over, and faults on members.

`sseproxy.pool` decides (sans I/O); this module connects. Per HTTP exchange (TCP:
per connection) a member is picked before the fault chains are chosen, so a fault's
`match = { upstream = "b" }` sees it. Connecting then goes through, in order:

- the member's `restart` faults whose moment passed: the member forgets its sessions
  (its `restart_url` gets a POST, `Proxy.on_restart` is called) before it is contacted;
- a `down` fault (or a restart's `downtime`): a refused connect, or a canned 502;
- the connect itself; a `connect-retries` fault in the chain retries a failed one on the
  same member (HAProxy's `retries`) and sets the final status;
- on a connect error or timeout, the next member, as nginx's `proxy_next_upstream`
  default (`error timeout`) does, each member at most once per exchange. Every failed
  try is journaled (`upstream-failed`), and the pool counts it toward `max_fails`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import h11
import trio

from sseproxy.balance import HashKey
from sseproxy.errors import ConfigError
from sseproxy.faults.connect_retry import ConnectRetry
from sseproxy.faults.down import Down
from sseproxy.faults.restart import Restart
from sseproxy.link import FaultSlot
from sseproxy.pool import BALANCES, Attempt, MemberSpec, Pool, PoolSpec
from sseproxy.transport import UpstreamError, connect

if TYPE_CHECKING:
    from sseproxy.connection import Connection
    from sseproxy.proxy import Proxy, ProxySettings, Upstream
    from sseproxy.scenario import Scenario, Window

__all__ = [
    "RESTART_PATH",
    "Balancer",
    "RestartHook",
    "builtin_members",
    "choose",
    "open_upstream",
    "parse_members",
    "pool_spec",
    "release",
]

RestartHook = Callable[[str], Awaitable[None] | None]
"""Called with a member's name when a `restart` fault restarts it (`Proxy.on_restart`)."""

ADMIN_TIMEOUT = 2.0
"""Seconds a member's `restart_url` has to answer the POST."""

_BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\n502 Bad Gateway\n"
)


class Balancer:
    """The members of the proxy's pool, their addresses, and the pool's state."""

    def __init__(
        self,
        spec: PoolSpec,
        seed: int,
        *,
        client_ip_from: str | None = None,
        lone: Upstream | None = None,
    ) -> None:
        from sseproxy.proxy import Upstream

        self.spec = spec
        self.named = len(spec.members) > 1 or any(m.name != "a" for m in spec.members)
        """False for a lone `--upstream URL`: the journal then names no member."""
        self.pool = Pool([m.member for m in spec.members], spec.balance, seed=seed)
        self.members: dict[str, MemberSpec] = {m.name: m for m in spec.members}
        self.upstreams: dict[str, Upstream] = {
            m.name: lone or Upstream.parse(m.url) for m in spec.members
        }
        self.hash_key = HashKey(spec.hash_key) if spec.hash_key else None
        self.client_ip_from = client_ip_from.lower() if client_ip_from else None
        self.restarted: set[tuple[str, str, Window]] = set()
        """(restart fault, member, its window) whose restart was carried out."""

    def client_of(self, peer: str, headers: Mapping[str, str]) -> str:
        """The client address that ip_hash balances on: the first address of the
        `--client-ip-from` header when the request has one, else the peer's host."""
        if self.client_ip_from is not None:
            given = headers.get(self.client_ip_from, "").split(",")[0].strip()
            if given:
                return given
        host, sep, port = peer.rpartition(":")
        return host.strip("[]") if sep and port.isdigit() else peer

    def attempt(self, peer: str, headers: Mapping[str, str], query: str, number: int) -> Attempt:
        """The walk of one exchange; the client and key are read only where they count."""
        balance = self.pool.balance
        key = self.hash_key.of(headers, query) if self.hash_key and balance == "hash" else ""
        client = self.client_of(peer, headers) if balance == "ip_hash" else ""
        return self.pool.attempt(client=client, key=key, number=number)


def choose(proxy: Proxy, conn: Connection, headers: Mapping[str, str], query: str) -> str | None:
    """Pick the member for `conn`'s exchange (HTTP) or connection (TCP): `conn.member`,
    None when every member is failed (the connect then answers 502)."""
    balancer = proxy.balancer
    conn.attempt = attempt = balancer.attempt(conn.client_address, headers, query, proxy.exchanges)
    conn.member = attempt.next(trio.current_time())
    return conn.member


def release(proxy: Proxy, conn: Connection) -> None:
    """The exchange (or TCP connection) is over: the member serves one fewer (least_conn)."""
    if conn.attempt is not None and conn.member is not None:
        proxy.balancer.pool.released(conn.member)
    conn.attempt = None


def member_fields(proxy: Proxy, conn: Connection) -> dict[str, Any]:
    """The `member` field of an `upstream` journal record (none for a lone upstream)."""
    return {"member": conn.member} if proxy.balancer.named else {}


async def open_upstream(
    proxy: Proxy, conn: Connection, slots: Sequence[FaultSlot]
) -> tuple[trio.abc.Stream, Upstream]:
    """A connection to `conn.member`, or to the next members when it fails; raises the
    last UpstreamError when none is left."""
    balancer, attempt = proxy.balancer, conn.attempt
    assert attempt is not None
    retry = _retry_policy(slots, trio.current_time())
    if conn.member is None:
        raise UpstreamError(
            "unreachable",
            "no live upstreams: every pool member failed within its fail_timeout",
            answer=retry.status if retry is not None else None,
        )
    while True:
        member = conn.member
        assert member is not None
        where = balancer.upstreams[member]
        try:
            stream = await _connect_member(proxy, member, where, retry)
        except UpstreamError as error:
            if error.kind == "overloaded":
                raise
            now = trio.current_time()
            balancer.pool.failed(member, now)
            if balancer.named:  # a lone upstream's failure is the exchange's end, no more
                conn.write(
                    "upstream-failed", upstream=str(where), member=member, reason=error.reason
                )
            conn.member = attempt.next(now)
            if conn.member is None:
                raise
            continue
        balancer.pool.connected(member, trio.current_time())
        return stream, where


def _retry_policy(slots: Sequence[FaultSlot], now: float) -> ConnectRetry | None:
    for slot in slots:
        if isinstance(slot.fault, ConnectRetry) and slot.active_from <= now < slot.active_until:
            return slot.fault
    return None


async def _connect_member(
    proxy: Proxy, member: str, where: Upstream, retry: ConnectRetry | None
) -> trio.abc.Stream:
    """Connect to one member, retrying as `retry` says (HAProxy: the same server)."""
    tries = 0
    while True:
        try:
            return await _connect_once(proxy, member, where)
        except UpstreamError as error:
            if retry is None or error.kind == "overloaded":
                raise
            if tries >= retry.retries:
                connects = f"{tries + 1} connect" + ("s" if tries else "")
                message = f"{error.message} ({connects}, fault connect-retries)"
                raise UpstreamError(error.kind, message, answer=retry.status) from None
            tries += 1
            await trio.sleep(min(retry.wait, proxy.settings.connect_timeout))


async def _connect_once(proxy: Proxy, member: str, where: Upstream) -> trio.abc.Stream:
    await _restarts_due(proxy, member)
    down = _down(proxy, member, trio.current_time())
    if down == "refuse":
        raise UpstreamError(
            "refused", f"cannot connect to upstream {where.host}:{where.port}: refused (down)"
        )
    if down == "502":
        return CannedResponse(_BAD_GATEWAY)
    return await proxy.connect(where, member)


def _aimed_at(spec: Any, member: str) -> bool:
    return spec.match.upstream is None or spec.match.upstream == member


def _down(proxy: Proxy, member: str, now: float) -> str | None:
    """'refuse' or '502' while a `down` fault (or a restart's downtime) holds `member`."""
    t = now - proxy.plan.started
    for spec in proxy.plan.scenario.faults:
        if not _aimed_at(spec, member):
            continue
        cls = spec.fault_class
        if issubclass(cls, Down) and spec.window.start <= t < spec.window.end:
            return str(spec.settings["how"])
        if issubclass(cls, Restart):
            start = spec.window.start
            if start <= t < min(spec.window.end, start + spec.settings["downtime"]):
                return "refuse"
    return None


async def _restarts_due(proxy: Proxy, member: str) -> None:
    """Carry out the `restart` faults of `member` whose moment passed: it forgets its
    sessions before the proxy contacts it again."""
    t = trio.current_time() - proxy.plan.started
    for spec in proxy.plan.scenario.faults:
        if not issubclass(spec.fault_class, Restart) or not _aimed_at(spec, member):
            continue
        done = (spec.name, member, spec.window)  # a live change keeps it done
        if spec.window.start > t or done in proxy.balancer.restarted:
            continue
        proxy.balancer.restarted.add(done)
        detail = "sessions forgotten"
        if proxy.on_restart is not None:
            result = proxy.on_restart(member)
            if inspect.isawaitable(result):
                await result
        url = proxy.balancer.members[member].restart_url
        if url is not None:
            detail = await _post(url)
        proxy.journal.write("member-restarted", "-", member=member, fault=spec.name, detail=detail)


async def _post(url: str) -> str:
    """POST to a member's admin URL; what happened, in words (never an exception)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(
        method="POST",
        target=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        headers=[("host", parts.netloc), ("content-length", "0"), ("connection", "close")],
    )
    try:
        with trio.fail_after(ADMIN_TIMEOUT):
            stream = await connect(host, port, ADMIN_TIMEOUT)
            async with stream:
                await stream.send_all(conn.send(request) + conn.send(h11.EndOfMessage()))
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(bytes(await stream.receive_some(4096)))
                    elif isinstance(event, h11.Response):
                        return f"POST {url}: {event.status_code}"
                    else:
                        return f"POST {url}: no response"
    except (
        UpstreamError,
        OSError,
        trio.TooSlowError,
        trio.BrokenResourceError,
        h11.ProtocolError,
    ) as error:
        return f"POST {url} failed: {error or type(error).__name__}"


class CannedResponse(trio.abc.Stream):
    """A member that answers with fixed bytes whatever it is sent (`down` how = "502")."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        data, self.data = self.data, b""
        return data

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def pool_spec(settings: ProxySettings, scenario: Scenario, time_scale: float = 1.0) -> PoolSpec:
    """The pool in force: `--upstream`s (each keeping the `weight`, `max_fails` and
    `fail_timeout` of the scenario's `[[upstreams]]` member of its name), else the
    scenario's `[[upstreams]]`, else the one upstream (member "a"); `--balance` and
    `--hash-key` over the scenario's. `fail_timeout` is scaled by `time_scale`."""
    written = {member.name: member for member in scenario.upstreams}
    members = tuple(_merged(m, written.get(m.name)) for m in settings.upstreams)
    members = members or scenario.upstreams
    if not members:
        members = (MemberSpec("a", str(settings.upstream)),)
    if time_scale != 1:
        members = tuple(replace(m, fail_timeout=m.fail_timeout * time_scale) for m in members)
    balance = settings.balance or scenario.balance or "round_robin"
    assert balance in BALANCES, balance
    return PoolSpec(
        members=members,
        balance=balance,  # type: ignore[arg-type]
        hash_key=settings.hash_key or scenario.hash_key,
    )


def _merged(given: MemberSpec, written: MemberSpec | None) -> MemberSpec:
    """A command-line member takes its balancing settings from the scenario's member of
    the same name; its URL and `restart_url` stay its own (the scenario's `restart_url`
    is for the scenario's URL)."""
    if written is None:
        return given
    return replace(written, url=given.url, restart_url=given.restart_url)


RESTART_PATH = "/_restart"
"""The built-in server instances' restart endpoint (`sseproxy.origin_mcp`)."""


async def builtin_members(
    scenario: Scenario,
    count: int,
    *,
    task_status: trio.TaskStatus[tuple[MemberSpec, ...]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """`run --instances N`: N built-in server instances on free loopback ports, as pool
    members named as the scenario's `[[upstreams]]` (by position, else a, b, c...) with
    their balancing settings, each with its `restart_url` (`POST /_restart`), so that a
    `restart` fault makes it forget its sessions with no more configuration. Serves them
    until cancelled; reports the members to `nursery.start`."""
    from sseproxy.origin import OriginSettings
    from sseproxy.origin_mcp import serve_instances
    from sseproxy.pool_scenario import member_name

    written = list(scenario.upstreams)
    names = [written[k].name if k < len(written) else member_name(k) for k in range(count)]
    async with trio.open_nursery() as nursery:
        serve = partial(serve_instances, "127.0.0.1", 0, count, OriginSettings(), names=names)
        instances = await nursery.start(serve)
        members = []
        for k, instance in enumerate(instances):
            url = f"http://127.0.0.1:{instance.port}"
            given = MemberSpec(instance.name, url, restart_url=url + RESTART_PATH)
            members.append(_merged(given, written[k] if k < len(written) else None))
        task_status.started(tuple(members))


def parse_members(
    texts: Sequence[str], scenario: Scenario, hash_key: str | None = None
) -> tuple[MemberSpec, ...]:
    """`--upstream` values ('URL' or 'NAME=URL') as pool members, checked against the
    scenario (a fault's `match.upstream` must name one); ConfigError says what to fix."""
    from sseproxy.pool_scenario import check_url, member_name

    members: list[MemberSpec] = []
    for index, text in enumerate(texts):
        name, sep, url = text.partition("=")
        if not sep or any(c in name for c in ":/["):
            name, url = member_name(index), text
        if not name or any(m.name == name for m in members):
            raise ConfigError(f"--upstream {text!r}: give each member a distinct NAME=URL")
        check_url(url)
        members.append(MemberSpec(name, url))
    if hash_key is not None:
        try:
            HashKey(hash_key)
        except ValueError as error:
            raise ConfigError(f"--hash-key: {error}") from None
    names = [m.name for m in members or scenario.upstreams]
    for spec in scenario.faults:
        wanted = spec.match.upstream
        if wanted is not None and names and wanted not in names:
            raise ConfigError(
                f"fault {spec.name!r} matches upstream {wanted!r}, which is not a pool "
                f"member (members: {', '.join(names)}); name them with --upstream NAME=URL"
            )
    return tuple(members)
