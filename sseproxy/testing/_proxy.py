"""Trio-native context managers: a proxy on loopback sockets, and the built-in server.

    async with open_proxy(upstream=origin_url, scenario=scenario) as proxy:
        ... connect to proxy.url ...
        await proxy.wait_for_closed(1)

Everything runs in a nursery of the calling task and stops when the block ends.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from sseproxy import origin
from sseproxy.journal import Journal
from sseproxy.pool import BALANCES
from sseproxy.proxy import Proxy, ProxySettings, Upstream
from sseproxy.scenario import Scenario, load_scenario, parse_scenario
from sseproxy.server import listen, serve_proxy
from sseproxy.sse import Event, Framer
from sseproxy.upstreams import RestartHook, parse_members

__all__ = [
    "ProxyHandle",
    "Record",
    "ScenarioLike",
    "SocketProxy",
    "as_scenario",
    "open_origin",
    "open_proxy",
    "origin_settings",
    "parse_sse",
]

Record = dict[str, Any]
ScenarioLike = Scenario | str | None
"""A `Scenario`, TOML text, a scenario file or preset name, or None (no faults)."""

_watchers: list[Callable[[Journal], None]] = []
"""Called with the journal of every proxy started here (the pytest plugin keeps them)."""


def as_scenario(scenario: ScenarioLike) -> Scenario:
    """`scenario` as a `Scenario`: TOML text has a newline or a '['; other strings name a
    file or a preset (`nginx-default`)."""
    if scenario is None:
        return Scenario(name="none")
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, str):
        if "\n" in scenario or "[" in scenario:
            return parse_scenario(scenario)
        return load_scenario(scenario)
    raise TypeError(f"scenario must be a Scenario, TOML text or a name, not {scenario!r}")


def parse_sse(data: bytes) -> list[Event]:
    """The events a browser's EventSource dispatches for `data` (an incomplete last block
    is discarded, as the spec says): the reference to check a client's parser against."""
    framer = Framer()
    events = [block.event for block in framer.feed(data) if block.event is not None]
    framer.close()
    return events


def origin_settings(
    settings: origin.OriginSettings | None, fields: dict[str, Any]
) -> origin.OriginSettings:
    """`settings` (default: the built-in defaults) with `fields` replaced."""
    base = settings or origin.OriginSettings()
    return dataclasses.replace(base, **fields) if fields else base


@asynccontextmanager
async def background() -> AsyncIterator[trio.Nursery]:
    """A nursery for the tasks behind a context manager, cancelled when its block ends.

    A single error (from the block or a task) comes out as itself, not wrapped in an
    ExceptionGroup, so `pytest.raises(AssertionError)` around the block works.
    """
    try:
        async with trio.open_nursery() as nursery:
            try:
                yield nursery
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        inner = group.exceptions[0] if len(group.exceptions) == 1 else group
        if isinstance(inner, BaseExceptionGroup):
            raise
        raise inner from inner.__cause__


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class ProxyHandle:
    """A running proxy as a test sees it: its journal, waits on it, its scenario.

    Waits are event-driven (they return as soon as the journal has the records); wrap
    them in `trio.fail_after` to bound them.
    """

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        for watch in _watchers:
            watch(proxy.journal)

    @property
    def journal(self) -> Journal:
        return self.proxy.journal

    @property
    def records(self) -> list[Record]:
        """Every journal record so far (a copy), oldest first."""
        return list(self.proxy.journal.records)

    @property
    def scenario(self) -> Scenario:
        return self.proxy.scenario

    def of_kind(self, kind: str) -> list[Record]:
        """The records of one kind: 'opened', 'request', 'fault', 'ended', 'closed'..."""
        return self.proxy.journal.of_kind(kind)

    async def wait_for(self, kind: str, count: int = 1) -> list[Record]:
        """Wait until `count` records of `kind` exist; returns all records of that kind."""
        return await self.proxy.journal.wait_for(kind, count)

    async def wait_for_connections(self, count: int = 1) -> list[Record]:
        """Wait until `count` client connections were accepted ('opened' records)."""
        return await self.wait_for("opened", count)

    async def wait_for_closed(self, count: int = 1) -> list[Record]:
        """Wait until `count` client connections ended ('closed' records)."""
        return await self.wait_for("closed", count)

    def set_scenario(self, scenario: ScenarioLike, *, seed: int | None = None) -> None:
        """Put `scenario` in force: new connections get its faults, and (unless the proxy
        was opened with `live=False`) open connections lose the faults that are gone or
        changed and get the new ones.

        Scenario time (windows) goes on from the proxy's start. Unlike the control API,
        the seed changes to `seed`, else the scenario's own (so a drawn scenario behaves
        as when replayed from its TOML), else stays. A 'scenario' record marks it.
        """
        new = as_scenario(scenario)
        if seed is None:
            seed = new.seed if new.seed is not None else self.proxy.seed
        self.proxy.seed = self.journal.seed = seed
        self.proxy.set_scenario(new)
        faults = [spec.name for spec in new.faults]
        self.journal.write("scenario", "-", change="replace", by="testing", faults=faults)


class SocketProxy(ProxyHandle):
    """A proxy listening on a loopback socket: `url` is where clients connect."""

    def __init__(self, proxy: Proxy, host: str, port: int) -> None:
        super().__init__(proxy)
        self.host, self.port = host, port
        self.url = _url(host, port)

    @property
    def upstream(self) -> str:
        return str(self.proxy.settings.upstream)


@asynccontextmanager
async def open_origin(
    settings: origin.OriginSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **fields: Any,
) -> AsyncIterator[str]:
    """The built-in SSE server (`sseproxy serve`); yields its base URL.

    Events are at `{url}/events`. Give `OriginSettings` or its fields (`interval=0.1`,
    `count=10`, `heartbeat=0`, ...); a request's query string overrides them.
    """
    chosen = origin_settings(settings, fields)
    async with background() as nursery:
        bound = await nursery.start(origin.serve, host, port, chosen)
        yield _url(host, bound)


@asynccontextmanager
async def open_proxy(
    upstream: str | Upstream | None = None,
    scenario: ScenarioLike = None,
    *,
    mode: str = "http",
    seed: int | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    connect_timeout: float = 10.0,
    live: bool = True,
    upstream_tls: ssl.SSLContext | None = None,
    upstreams: Sequence[str] = (),
    balance: str | None = None,
    hash_key: str | None = None,
    client_ip_from: str | None = None,
    on_restart: RestartHook | None = None,
    time_scale: float = 1.0,
) -> AsyncIterator[SocketProxy]:
    """A proxy on `host:port` (port 0: a free one) in front of `upstream`.

    `upstream`: 'http://127.0.0.1:9000', '127.0.0.1:9000' or an `Upstream`; None starts
    the built-in server behind the proxy (its events at `{proxy.url}/events`). The
    journal keeps every record in memory (`proxy.records`). `live`: `set_scenario`
    reaches open connections too (else only new ones, and relaying takes a fast path).

    A pool (`docs/pools.md`): `upstreams` as `run --upstream` takes them ('URL' or
    'NAME=URL', instead of `upstream`), or the scenario's `[[upstreams]]`; `balance`,
    `hash_key` and `client_ip_from` as `run`'s options; `on_restart` is called with a
    member's name when a `restart` fault restarts it (a function or coroutine function;
    see `Proxy.on_restart`). `upstream_tls` serves every `https://` member. `time_scale`
    multiplies every duration of the scenario, `fail_timeout` too (`run --time-scale`).
    """
    if mode not in ("http", "tcp"):
        raise ValueError(f"mode must be 'http' or 'tcp', not {mode!r}")
    if balance is not None and balance not in BALANCES:
        raise ValueError(f"balance must be one of {', '.join(BALANCES)}, not {balance!r}")
    if upstreams and upstream is not None:
        raise ValueError("give `upstream` or `upstreams`, not both")
    chosen = as_scenario(scenario)
    members = parse_members(upstreams, chosen, hash_key)
    pool = members or chosen.upstreams
    if pool:
        upstream = pool[0].url
    target = upstream if isinstance(upstream, Upstream | None) else Upstream.parse(upstream)
    async with background() as nursery:
        if target is None:
            origin_port = await nursery.start(origin.serve, "127.0.0.1", 0, origin.OriginSettings())
            target = Upstream("127.0.0.1", origin_port)
        listener = await listen(host, port)
        bound = listener.socket.getsockname()[1]
        settings = ProxySettings(
            target,
            "tcp" if mode == "tcp" else "http",
            connect_timeout,
            live=live,
            upstream_tls=upstream_tls,
            upstreams=members,
            balance=balance,
            hash_key=hash_key,
            client_ip_from=client_ip_from,
            time_scale=time_scale,
        )
        proxy = Proxy(settings, chosen, Journal(keep=True), seed=seed)
        proxy.on_restart = on_restart
        named = proxy.balancer
        proxy.journal.write(
            "started",
            "-",
            listen=f"{host}:{bound}",
            upstream=str(target),
            upstreams={n: str(u) for n, u in named.upstreams.items()} if named.named else None,
            balance=named.spec.balance if named.named else None,
            mode=mode,
            scenario_file=str(Path(chosen.path).resolve()) if chosen.path else None,
        )
        await nursery.start(serve_proxy, proxy, listener)
        yield SocketProxy(proxy, host, bound)
