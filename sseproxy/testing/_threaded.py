"""The same for sync and asyncio code: trio runs in a background thread.

    with run_proxy(upstream=url, scenario=scenario) as proxy:
        requests.get(f"{proxy.url}/events", stream=True)
        proxy.wait_for_closed(1)

`BackgroundTrio` is the bridge: one thread running `trio.run`, calls into it from any
thread (`run`, `run_sync`), and async context managers held open inside it (`enter`).
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, contextmanager, suppress
from typing import Any, TypeVar

import trio

from sseproxy import origin
from sseproxy.journal import Journal
from sseproxy.proxy import Upstream
from sseproxy.scenario import Scenario
from sseproxy.testing._proxy import Record, ScenarioLike, SocketProxy, open_origin, open_proxy
from sseproxy.upstreams import RestartHook

__all__ = ["BackgroundTrio", "ThreadedProxy", "run_origin", "run_proxy"]

T = TypeVar("T")


class BackgroundTrio:
    """A trio event loop in a daemon thread, used from other threads. A context manager:
    leaving it cancels everything inside and joins the thread.

    `clock` is passed to `trio.run` (a `MockClock` lets a test drive time itself).
    """

    def __init__(self, *, clock: trio.abc.Clock | None = None) -> None:
        self._clock = clock
        self._ready = threading.Event()
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        self._stop: trio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._thread_main, name="sseproxy-trio", daemon=True)

    def __enter__(self) -> BackgroundTrio:
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, kind: object, error: BaseException | None, traceback: object) -> None:
        try:
            self.close()
        except BaseException as late:
            if error is None:
                raise
            error.add_note(f"and in the background trio thread: {late!r}")

    def _thread_main(self) -> None:
        try:  # errors are reported to the thread that joins
            trio.run(self._main, clock=self._clock)
        except BaseExceptionGroup as group:
            self._error = group.exceptions[0] if len(group.exceptions) == 1 else group
        except BaseException as error:
            self._error = error
        finally:
            self._ready.set()

    async def _main(self) -> None:
        self._stop = trio.Event()
        async with trio.open_nursery() as nursery:
            self._nursery, self._token = nursery, trio.lowlevel.current_trio_token()
            self._ready.set()
            await self._stop.wait()
            nursery.cancel_scope.cancel()

    def run(self, afn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run `await afn(*args)` in the trio thread and return its result here."""
        return trio.from_thread.run(afn, *args, trio_token=self._live_token())

    def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in the trio thread (between its tasks) and return its result."""
        return trio.from_thread.run_sync(fn, *args, trio_token=self._live_token())

    def start(self, afn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Start `afn(*args, task_status=...)` as a background task of the trio thread
        (as `nursery.start` does) and return what it passes to `task_status.started()`.
        It is cancelled at `close()`; an error it raises later is raised by `close()`."""
        assert self._nursery is not None
        return self.run(self._nursery.start, afn, *args)

    def enter(self, manager: AbstractAsyncContextManager[T]) -> T:
        """Enter `manager` in a task of the trio thread; it is exited at `close()`."""

        async def hold(task_status: trio.TaskStatus[T]) -> None:
            async with manager as value:
                task_status.started(value)
                await trio.sleep_forever()

        result: T = self.start(hold)
        return result

    def _live_token(self) -> trio.lowlevel.TrioToken:
        if self._token is None or not self._thread.is_alive():
            raise RuntimeError("the background trio thread is not running")
        return self._token

    def close(self) -> None:
        """Cancel every task and held context manager, join the thread, raise its error."""
        if self._thread.is_alive() and self._stop is not None:
            stop = self._stop
            with suppress(trio.RunFinishedError):
                self.run_sync(stop.set)
            self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error


class ThreadedProxy:
    """A thread-safe handle on a proxy running in a background trio thread.

    Waits take a `timeout` (seconds, default 10) and raise `TimeoutError` after it.
    """

    def __init__(self, handle: SocketProxy, loop: BackgroundTrio) -> None:
        self._handle, self._loop = handle, loop
        self.url, self.host, self.port = handle.url, handle.host, handle.port
        self.upstream = handle.upstream

    @property
    def handle(self) -> SocketProxy:
        """The trio-side handle (use it only from the trio thread: `loop.run_sync`)."""
        return self._handle

    @property
    def loop(self) -> BackgroundTrio:
        return self._loop

    @property
    def journal(self) -> Journal:
        """The journal itself; the trio thread appends to it, so prefer `records`."""
        return self._handle.journal

    @property
    def records(self) -> list[Record]:
        """Every journal record so far (a copy), oldest first."""
        return self._loop.run_sync(lambda: self._handle.records)

    @property
    def scenario(self) -> Scenario:
        return self._handle.scenario

    def of_kind(self, kind: str) -> list[Record]:
        return self._loop.run_sync(lambda: list(self._handle.of_kind(kind)))

    def wait_for(self, kind: str, count: int = 1, *, timeout: float = 10.0) -> list[Record]:
        """Block until `count` records of `kind` exist; TimeoutError after `timeout`."""

        async def wait() -> list[Record]:
            with trio.move_on_after(timeout):
                return list(await self._handle.wait_for(kind, count))
            found = len(self._handle.of_kind(kind))
            raise TimeoutError(f"{found} of {count} {kind!r} records after {timeout:g}s")

        return self._loop.run(wait)

    def wait_for_connections(self, count: int = 1, *, timeout: float = 10.0) -> list[Record]:
        """Block until `count` client connections were accepted ('opened' records)."""
        return self.wait_for("opened", count, timeout=timeout)

    def wait_for_closed(self, count: int = 1, *, timeout: float = 10.0) -> list[Record]:
        """Block until `count` client connections ended ('closed' records)."""
        return self.wait_for("closed", count, timeout=timeout)

    def set_scenario(self, scenario: ScenarioLike, *, seed: int | None = None) -> None:
        """Put `scenario` in force (see `ProxyHandle.set_scenario`)."""
        self._loop.run_sync(lambda: self._handle.set_scenario(scenario, seed=seed))


@contextmanager
def run_proxy(
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
) -> Iterator[ThreadedProxy]:
    """`open_proxy` (same arguments) in a background thread, for sync and asyncio code
    (`on_restart` runs in the proxy's trio thread)."""
    proxy = open_proxy(
        upstream,
        scenario,
        mode=mode,
        seed=seed,
        host=host,
        port=port,
        connect_timeout=connect_timeout,
        live=live,
        upstream_tls=upstream_tls,
        upstreams=upstreams,
        balance=balance,
        hash_key=hash_key,
        client_ip_from=client_ip_from,
        on_restart=on_restart,
        time_scale=time_scale,
    )
    with BackgroundTrio() as loop:
        yield ThreadedProxy(loop.enter(proxy), loop)


@contextmanager
def run_origin(
    settings: origin.OriginSettings | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    **fields: Any,
) -> Iterator[str]:
    """`open_origin` (same arguments) in a background thread; yields its base URL."""
    with BackgroundTrio() as loop:
        yield loop.enter(open_origin(settings, host=host, port=port, **fields))
