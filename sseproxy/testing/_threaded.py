"""The same for sync and asyncio code: trio runs in a background thread.

    with run_proxy(upstream=url, scenario=scenario) as proxy:
        requests.get(f"{proxy.url}/events", stream=True)
        proxy.wait_for_closed(1)

`BackgroundTrio` is the bridge: one thread running `trio.run`, calls into it from any
thread (`run`, `run_sync`), and async context managers held open inside it (`enter`).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, suppress
from typing import Any, TypeVar

import trio

from sseproxy import origin
from sseproxy.scenario import Scenario
from sseproxy.testing._proxy import Record, ScenarioLike, SocketProxy, open_origin, open_proxy

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

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _thread_main(self) -> None:
        try:
            trio.run(self._main, clock=self._clock)
        except BaseException as error:  # reported to the thread that joins
            single = isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1
            self._error = error.exceptions[0] if single else error  # type: ignore[attr-defined]
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

    def enter(self, manager: AbstractAsyncContextManager[T]) -> T:
        """Enter `manager` in a task of the trio thread; it is exited at `close()`."""

        async def hold(task_status: trio.TaskStatus[T]) -> None:
            async with manager as value:
                task_status.started(value)
                await trio.sleep_forever()

        assert self._nursery is not None
        nursery = self._nursery

        async def start() -> T:
            result: T = await nursery.start(hold)
            return result

        return self.run(start)

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

    @property
    def handle(self) -> SocketProxy:
        """The trio-side handle (use it only from the trio thread)."""
        return self._handle

    @property
    def records(self) -> list[Record]:
        """Every journal record so far (a copy), oldest first."""
        return self._loop.run_sync(lambda: self._handle.records)

    @property
    def scenario(self) -> Scenario:
        return self._handle.scenario

    def of_kind(self, kind: str) -> list[Record]:
        return self._loop.run_sync(self._handle.of_kind, kind)

    def wait_for(self, kind: str, count: int = 1, *, timeout: float = 10.0) -> list[Record]:
        """Block until `count` records of `kind` exist; TimeoutError after `timeout`."""

        async def wait() -> list[Record]:
            with trio.move_on_after(timeout):
                return list(await self._handle.wait_for(kind, count))
            found = len(self._handle.of_kind(kind))
            raise TimeoutError(f"{found} of {count} {kind!r} records after {timeout:g}s")

        return self._loop.run(wait)

    def wait_for_connections(self, count: int = 1, *, timeout: float = 10.0) -> list[Record]:
        return self.wait_for("opened", count, timeout=timeout)

    def wait_for_closed(self, count: int = 1, *, timeout: float = 10.0) -> list[Record]:
        return self.wait_for("closed", count, timeout=timeout)

    def set_scenario(self, scenario: ScenarioLike, *, seed: int | None = None) -> None:
        """Apply `scenario` to connections opened from now on (see `ProxyHandle`)."""
        self._loop.run_sync(lambda: self._handle.set_scenario(scenario, seed=seed))


@contextmanager
def run_proxy(
    upstream: str | None = None, scenario: ScenarioLike = None, **options: Any
) -> Iterator[ThreadedProxy]:
    """`open_proxy` (same arguments) in a background thread, for sync and asyncio tests."""
    with BackgroundTrio() as loop:
        yield ThreadedProxy(loop.enter(open_proxy(upstream, scenario, **options)), loop)


@contextmanager
def run_origin(settings: origin.OriginSettings | None = None, **options: Any) -> Iterator[str]:
    """`open_origin` (same arguments) in a background thread; yields its base URL."""
    with BackgroundTrio() as loop:
        yield loop.enter(open_origin(settings, **options))
