"""`run_proxy`, `run_origin` and `BackgroundTrio`: trio in a thread, for sync and asyncio."""

from __future__ import annotations

import asyncio
import socket
import threading

import aiohttp
import httpx
import pytest
import requests
import trio

from sseproxy.errors import ConfigError
from sseproxy.testing import BackgroundTrio, open_proxy, parse_sse, run_origin, run_proxy

QUERY = "/events?interval=0&heartbeat=0&count=5"
CUT_AFTER_2 = "[[faults]]\ntype = 'cut'\nevents = 2\nhow = 'end'\n"


def ids_of(body: bytes) -> list[str]:
    return [event.id for event in parse_sse(body)]


def test_run_origin_serves_events() -> None:
    with run_origin(interval=0, heartbeat=0, count=3) as url:
        assert url.startswith("http://127.0.0.1:")
        assert ids_of(httpx.get(f"{url}/events").content) == ["1", "2", "3"]


def test_httpx_sync_through_a_proxy_in_front_of_an_origin() -> None:
    with run_origin() as origin, run_proxy(origin, CUT_AFTER_2) as proxy:
        assert proxy.url == f"http://127.0.0.1:{proxy.port}"
        assert ids_of(httpx.get(proxy.url + QUERY).content) == ["1", "2"]
        [closed] = proxy.wait_for_closed(1)
        assert closed["events_down"] == 2
        assert [r["fault"] for r in proxy.of_kind("fault")] == ["cut"]


def test_requests_resumes_with_last_event_id() -> None:
    with run_proxy(scenario=CUT_AFTER_2) as proxy:
        first = requests.get(proxy.url + QUERY)
        second = requests.get(proxy.url + QUERY, headers={"Last-Event-ID": "2"})
        assert ids_of(first.content) + ids_of(second.content) == ["1", "2", "3", "4"]
        assert [r.get("last_event_id") for r in proxy.of_kind("request")] == [None, "2"]


def test_aiohttp_and_httpx_async_from_asyncio() -> None:
    async def both(url: str) -> tuple[bytes, bytes]:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            via_aiohttp = await response.read()
        async with httpx.AsyncClient() as client:
            via_httpx = (await client.get(url)).content
        return via_aiohttp, via_httpx

    with run_proxy() as proxy:
        bodies = asyncio.run(both(proxy.url + QUERY))
        assert [ids_of(body) for body in bodies] == [["1", "2", "3", "4", "5"]] * 2


def test_set_scenario_applies_to_new_connections() -> None:
    with run_proxy() as proxy:
        assert len(ids_of(httpx.get(proxy.url + QUERY).content)) == 5
        proxy.set_scenario(CUT_AFTER_2)
        assert proxy.scenario.faults[0].type == "cut"
        assert len(ids_of(httpx.get(proxy.url + QUERY).content)) == 2
        assert [r["kind"] for r in proxy.records].count("scenario") == 1


def test_the_handle_is_thread_safe() -> None:
    with run_proxy() as proxy:
        results: list[int] = []

        def client() -> None:
            with httpx.Client() as http:
                results.append(len(ids_of(http.get(proxy.url + QUERY).content)))

        threads = [threading.Thread(target=client) for _ in range(8)]
        for thread in threads:
            thread.start()
        closed = proxy.wait_for_closed(8)  # while the clients run
        for thread in threads:
            thread.join()
        assert results == [5] * 8
        assert len(closed) == 8


def test_a_wait_that_cannot_finish_times_out() -> None:
    with run_proxy() as proxy, pytest.raises(TimeoutError, match="0 of 1 'closed'"):
        proxy.wait_for_closed(1, timeout=0.05)


def test_leaving_the_block_stops_the_proxy_and_its_thread() -> None:
    before = threading.active_count()
    with run_proxy() as proxy:
        port = proxy.port
    assert threading.active_count() == before
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_a_bad_upstream_is_reported_in_the_calling_thread() -> None:
    with pytest.raises(ConfigError, match="scheme 'ftp'"), run_proxy("ftp://x:1"):
        pass


def test_background_trio_runs_calls_and_holds_context_managers() -> None:
    with BackgroundTrio() as loop:
        assert loop.run_sync(lambda: 1 + 1) == 2
        assert loop.run(trio.sleep, 0) is None
        proxy = loop.enter(open_proxy())
        assert proxy.url.startswith("http://127.0.0.1:")
        assert ids_of(httpx.get(proxy.url + QUERY).content) == ["1", "2", "3", "4", "5"]
    with pytest.raises(RuntimeError, match="not running"):
        loop.run_sync(lambda: None)


async def fail_later(task_status: trio.TaskStatus[str]) -> None:
    task_status.started("started")
    raise ValueError("boom")


def test_an_error_inside_the_trio_thread_is_raised_on_close() -> None:
    loop = BackgroundTrio()
    with pytest.raises(ValueError, match="boom"), loop:
        assert loop.start(fail_later) == "started"
        loop._thread.join(5)


def test_an_error_in_the_block_wins_and_notes_one_from_the_thread() -> None:
    loop = BackgroundTrio()
    with pytest.raises(KeyError) as caught, loop:
        loop.start(fail_later)
        loop._thread.join(5)
        raise KeyError("the test's own failure")
    assert "ValueError('boom')" in caught.value.__notes__[0]


def test_the_handle_shows_its_upstream_and_journal() -> None:
    with run_origin() as origin, run_proxy(origin) as proxy:
        assert proxy.upstream == origin
        assert proxy.journal.records[0]["kind"] == "started"
        assert proxy.loop.run_sync(lambda: proxy.handle.port) == proxy.port
