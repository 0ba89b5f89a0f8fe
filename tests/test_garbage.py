"""A connection that ends is freed as it ends (reference counting), not at the next full
garbage collection: a full collection walks every object of every open stream, and with
a thousand streams open that paused the event loop for tens of milliseconds."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import trio

from sseproxy.testing import open_origin, open_proxy

IDLE = '[[faults]]\ntype = "idle-timeout"\ntimeout = "1h"\ncounts = "events"\n'


@contextmanager
def collector_off() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@pytest.mark.parametrize("scenario", [None, IDLE], ids=["fast path", "framed"])
async def test_ended_connections_leave_no_cycles(scenario: str | None) -> None:
    async with (
        open_origin(count=3, interval=0.001) as origin,
        open_proxy(origin, scenario, live=False) as proxy,
    ):
        async with httpx.AsyncClient() as client:
            await client.get(f"{proxy.url}/events")  # warm: first-use allocations
        with collector_off():
            async with httpx.AsyncClient() as client:
                for _ in range(10):
                    response = await client.get(
                        f"{proxy.url}/events", headers={"Connection": "close"}
                    )
                    assert response.text.count("data:") == 3
            with trio.fail_after(5):
                while proxy.proxy.live:
                    await trio.sleep(0.01)
            gc.set_debug(gc.DEBUG_SAVEALL)
            try:
                gc.collect()
                ours = [o for o in gc.garbage if type(o).__module__.startswith("sseproxy.")]
            finally:
                gc.set_debug(0)
                gc.garbage.clear()
    assert not ours, sorted({type(o).__qualname__ for o in ours})
