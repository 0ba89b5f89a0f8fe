"""Many clients at once: start them over the ramp, stop them at the end of the run.

`Probe` owns the records; `run` fills them in. Stopping early (Ctrl-C) is `stop()`: the
clients are cancelled, and each one's open attempt is closed as `run-end`, so a stopped
probe still has a whole result to report.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import trio

from sseproxy.probe.client import Client, Hooks, Settings, counter
from sseproxy.probe.record import ClientRecord, IdCheck
from sseproxy.probe.target import Connect, Target, connector

__all__ = ["Probe", "ProbeSettings", "user_agent"]


def user_agent() -> str:
    try:
        return f"sseproxy-probe/{version('sseproxy')}"
    except PackageNotFoundError:  # pragma: no cover - running from a checkout, uninstalled
        return "sseproxy-probe"


@dataclass(frozen=True)
class ProbeSettings:
    target: Target
    clients: int = 1
    duration: float = 60.0
    ramp: float = 0.0
    """Client k (from 0) starts k * ramp / clients seconds after the first."""
    headers: tuple[tuple[str, str], ...] = ()
    """Extra request headers; each replaces an EventSource header of the same name."""
    last_event_id: str = ""
    """What the first connection of every client sends as Last-Event-ID."""
    watchdog: float | None = None
    connect_timeout: float = 10.0
    tls: ssl.SSLContext | None = None
    """For https:// targets: `sseproxy.tls.client_context(--ca, insecure=--insecure)`;
    None trusts the system's CAs."""


class Probe:
    """One probe run: `await run()`, then read `records` (or `summary.summarize`)."""

    def __init__(
        self, settings: ProbeSettings, connect: Connect | None = None, hooks: Hooks | None = None
    ) -> None:
        self.settings = settings
        self.connect = connect or connector(settings.target, settings.connect_timeout, settings.tls)
        self.hooks = hooks
        self.records = [
            ClientRecord(number, IdCheck(settings.last_event_id))
            for number in range(1, settings.clients + 1)
        ]
        self.client_settings = Settings(
            settings.target.authority,
            settings.target.target,
            headers=settings.headers,
            watchdog=settings.watchdog,
            user_agent=user_agent(),
        )
        self.origin = 0.0
        self.elapsed = 0.0
        self.stopped_early = False
        self._scope = trio.CancelScope()
        self._next_conn = counter()

    def now(self) -> float:
        return trio.current_time() - self.origin

    def stop(self) -> None:
        """End the run now (Ctrl-C): every open attempt ends as `run-end`."""
        self.stopped_early = True
        self._scope.cancel()

    async def run(
        self, progress: Callable[[Probe], None] | None = None, every: float = 0.5
    ) -> None:
        """Run every client until the duration is over (or all stopped for good)."""
        self.origin = trio.current_time()
        async with trio.open_nursery() as outer:
            if progress is not None:
                outer.start_soon(self._tick, progress, every)
            with self._scope, trio.move_on_at(self.origin + self.settings.duration):
                async with trio.open_nursery() as nursery:
                    for index, record in enumerate(self.records):
                        nursery.start_soon(self._client, index, record)
            self.elapsed = self.now()
            outer.cancel_scope.cancel()

    async def _client(self, index: int, record: ClientRecord) -> None:
        settings = self.settings
        await trio.sleep_until(self.origin + settings.ramp * index / settings.clients)
        client = Client(
            record,
            self.client_settings,
            self.connect,
            origin=self.origin,
            last_event_id=settings.last_event_id,
            hooks=self.hooks,
            next_conn=self._next_conn,
        )
        await client.run()

    async def _tick(self, progress: Callable[[Probe], None], every: float) -> None:
        while True:
            progress(self)
            await trio.sleep(every)
