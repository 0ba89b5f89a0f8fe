"""Each preset does, in virtual time, what the product it imitates does."""

from __future__ import annotations

import trio
import trio.testing

from sseproxy import origin
from sseproxy.scenario import load_scenario, preset_names
from tests.harness import memory_proxy

QUIET = origin.OriginSettings(interval=10_000, heartbeat=0)


def preset(name: str) -> str:
    path = load_scenario(name).path
    assert path is not None
    with open(path, encoding="utf-8") as file:
        return file.read()


def test_every_preset_cites_a_source_or_explains_itself() -> None:
    for name in preset_names():
        scenario = load_scenario(name)
        assert scenario.description, name
        assert scenario.faults, name
        assert scenario.seed is not None, name


async def cut_time(name: str, settings: origin.OriginSettings) -> tuple[str, float, str]:
    """How the stream ended, after how long (from the request), and the journal's reason."""
    async with memory_proxy(preset(name), settings) as mp:
        client = mp.client()
        got = await client.get("/events")
        (ended,) = await mp.journal.wait_for("ended")
        await client.stream.aclose()
        return got.ending, ended["duration"], ended["reason"]


async def test_nginx_default_closes_a_silent_stream_at_60s(autojump_clock: object) -> None:
    assert await cut_time("nginx-default", QUIET) == ("closed", 60.0, "proxy_read_timeout")


async def test_nginx_seed_presets_wait_300s_then_600s(autojump_clock: object) -> None:
    assert (await cut_time("nginx-seed-before", QUIET))[1:] == (300.0, "proxy_read_timeout")
    assert (await cut_time("nginx-seed-after", QUIET))[1:] == (600.0, "proxy_read_timeout")


async def test_envoy_cuts_a_flowing_stream_at_15s(autojump_clock: object) -> None:
    flowing = origin.OriginSettings(interval=1, heartbeat=0)
    assert await cut_time("envoy-default", flowing) == ("closed", 15.0, "route-timeout")


async def test_spring_async_timeout_ends_cleanly_at_30s(autojump_clock: object) -> None:
    flowing = origin.OriginSettings(interval=1, heartbeat=0)
    assert await cut_time("spring-mvc-async", flowing) == ("end", 30.0, "async-request-timeout")


async def test_heroku_answers_503_when_the_first_byte_is_late(autojump_clock: object) -> None:
    async def silent() -> trio.abc.Stream:
        proxy_end, upstream_end = trio.testing.memory_stream_pair()
        kept.append(upstream_end)
        return proxy_end

    kept: list[trio.abc.Stream] = []
    async with memory_proxy(preset("heroku")) as mp:
        mp.proxy.connector = silent
        got = await mp.client().get("/events")
        assert (got.status, got.ended_at) == (503, 30.0)


async def test_heartbeat_check_comment_heartbeats_die_event_heartbeats_live(
    autojump_clock: object,
) -> None:
    comments = origin.OriginSettings(interval=600, heartbeat=30, hb="comment")
    assert await cut_time("heartbeat-check", comments) == (
        "closed",
        45.0,
        "client-event-watchdog",
    )
    events = origin.OriginSettings(interval=600, heartbeat=15, hb="event", count=2)
    ending, at, _ = await cut_time("heartbeat-check", events)
    assert (ending, at) == ("end", 600.0)  # both events delivered, never cut


async def test_cloudflare_cuts_after_100s_and_answers_524_before_headers(
    autojump_clock: object,
) -> None:
    assert (await cut_time("cloudflare", QUIET))[1] == 100.0
    text = preset("cloudflare")
    assert "status = 524" in text


async def test_reconnect_storm_resets_streams_open_at_60s(autojump_clock: object) -> None:
    flowing = origin.OriginSettings(interval=1, heartbeat=0)
    async with memory_proxy(preset("reconnect-storm"), flowing) as mp:
        await trio.sleep(10)  # a stream opened at t=10 is live when the storm hits
        got = await mp.client().get("/events")
        assert (got.ending, got.ended_at) == ("closed", 60.0)
        await trio.sleep(1)  # the window is [60 s, 61 s)
        later = await mp.client().get("/events", limit=len(origin.encode_event(1)) * 3)
        assert later.ending == ""  # opened after the window: untouched


async def test_haproxy_default_delivers_every_chunk_200ms_late(autojump_clock: object) -> None:
    settings = origin.OriginSettings(interval=1, heartbeat=0, count=3)
    async with memory_proxy(preset("haproxy-default"), settings) as mp:
        got = await mp.client().get("/events")
        assert [at for at, _ in got.chunks] == [0.2, 1.2, 2.2]
        assert got.body == b"".join(origin.encode_event(n) for n in (1, 2, 3))
