"""The EventSource client core, on memory streams in virtual time: exact times and counts."""

from __future__ import annotations

import pytest
import trio

from sseproxy.probe.runner import Probe
from tests.probe.scripted import (
    HEAD,
    REFUSED,
    Server,
    chunk,
    events,
    run_probe,
    settings,
    stream_of,
)


async def test_an_incomplete_chunked_body_is_seen_as_such_and_reconnected_after_3s(
    autojump_clock: object,
) -> None:
    probe, server = await run_probe(
        [stream_of(events(1), 2.0, close=True), stream_of(events(2), 2.0, close=True)], duration=6.0
    )
    first, second = probe.records[0].attempts
    assert (first.kind, first.label) == ("incomplete", "incomplete chunked body")
    assert first.duration == pytest.approx(2.0)
    assert first.silence == pytest.approx(2.0)
    assert second.delay_before == pytest.approx(3.0)  # the spec's default reconnection time
    assert server.connects == pytest.approx([0.0, 5.0])
    assert b"Last-Event-ID: 1\r\n" in server.requests[1]
    assert b"last-event-id" not in server.requests[0].lower()
    assert b"Accept: text/event-stream\r\n" in server.requests[0]
    assert second.kind == "run-end"
    assert probe.records[0].ids.lost == 0


async def test_a_clean_end_reconnects_and_retry_sets_the_delay(autojump_clock: object) -> None:
    probe, server = await run_probe(
        [stream_of(b"retry: 500\n\n", events(1), 1.0, end=b"0\r\n\r\n"), stream_of(events(2))],
        duration=3.0,
    )
    first, second = probe.records[0].attempts
    assert first.kind == "clean-end"
    assert second.delay_before == pytest.approx(0.5)
    assert server.connects[1] == pytest.approx(1.5)
    assert second.kind == "run-end"  # the probe's stop is not a drop


@pytest.mark.parametrize(
    ("head", "detail"),
    [
        (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", "HTTP 503"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", "204 No Content"),
        (b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nhi", "text/html"),
    ],
)
async def test_a_status_or_wrong_content_type_stops_the_client_for_good(
    autojump_clock: object, head: bytes, detail: str
) -> None:
    async def answer(stream: trio.abc.Stream, _: bytes) -> None:
        await stream.send_all(head)
        await trio.sleep_forever()

    probe, server = await run_probe([answer], duration=30.0)
    (only,) = probe.records[0].attempts
    assert (only.kind, only.final) == ("status", True)
    assert detail in only.detail
    assert len(server.connects) == 1
    assert probe.records[0].state == "stopped"


async def test_the_watchdog_counts_only_events_comments_do_not_reset_it(
    autojump_clock: object,
) -> None:
    async def comments(stream: trio.abc.Stream, _: bytes) -> None:
        await stream.send_all(HEAD + chunk(events(1)))
        for _ in range(20):
            await trio.sleep(1.0)
            await stream.send_all(chunk(b": keep-alive\n\n"))

    probe, _ = await run_probe([comments], duration=6.0, watchdog=4.0)
    first = probe.records[0].attempts[0]
    assert first.kind == "watchdog"
    assert first.duration == pytest.approx(4.0)  # from event 1 at 0 s, despite the comments
    assert first.longest_byte_gap == pytest.approx(1.0)
    assert first.longest_event_gap == pytest.approx(4.0)


async def test_refused_connects_are_retried_and_counted(autojump_clock: object) -> None:
    probe, server = await run_probe([REFUSED, REFUSED, stream_of(events(1))], duration=7.0)
    kinds = [a.kind for a in probe.records[0].attempts]
    assert kinds == ["refused", "refused", "run-end"]
    assert server.connects == pytest.approx([0.0, 3.0, 6.0])
    assert probe.records[0].attempts[2].established


async def test_ids_lost_and_repeated_across_reconnects(autojump_clock: object) -> None:
    # The server skips 3 and 4 on the first resume, then restarts from 1 on the second.
    probe, _ = await run_probe(
        [
            stream_of(events(1, 2), close=True),
            stream_of(events(5), close=True),
            stream_of(events(1, 2, 3, 4, 5, 6)),
        ],
        duration=7.0,
    )
    ids = probe.records[0].ids
    assert (ids.lost, ids.duplicated) == (2, 5)
    assert (ids.lost_in_stream, ids.duplicated_in_stream) == (0, 0)


async def test_last_event_id_option_is_sent_and_resumed_from(autojump_clock: object) -> None:
    probe, server = await run_probe([stream_of(events(9))], duration=1.0, last_event_id="7")
    assert b"Last-Event-ID: 7\r\n" in server.requests[0]
    assert probe.records[0].ids.lost == 1  # 8 never came


async def test_an_event_id_inherited_from_the_previous_connection(autojump_clock: object) -> None:
    # A block without `id` keeps the last event ID of the source, across connections.
    probe, server = await run_probe(
        [stream_of(events(3), close=True), stream_of(b"data: no id\n\n")], duration=4.0
    )
    assert b"Last-Event-ID: 3\r\n" in server.requests[1]
    assert probe.records[0].attempts[1].last_id == "3"


async def test_the_body_split_byte_by_byte_gives_the_same_events(autojump_clock: object) -> None:
    body = b"retry: 100\n" + events(1, 2, 3) + b": c\n\n"

    async def trickle(stream: trio.abc.Stream, _: bytes) -> None:
        await stream.send_all(HEAD)
        raw = chunk(body)
        for i in range(len(raw)):
            await stream.send_all(raw[i : i + 1])
        await trio.sleep_forever()

    probe, _ = await run_probe([trickle], duration=1.0)
    (attempt,) = probe.records[0].attempts
    assert (attempt.events, attempt.first_id, attempt.last_id) == (3, "1", "3")


async def test_ramp_spreads_the_clients_and_the_gaps_count_from_the_start(
    autojump_clock: object,
) -> None:
    probe, server = await run_probe(
        [stream_of(1.0, events(1)), stream_of(1.0, events(1))], clients=2, ramp=2.0, duration=5.0
    )
    assert server.connects == pytest.approx([0.0, 1.0])
    for record in probe.records:
        assert record.time_to_first_event == pytest.approx(1.0)
        assert record.longest_event_gap == pytest.approx(record.ended - record.first_event_at)  # type: ignore[operator]


async def test_stop_ends_open_attempts_as_run_end(autojump_clock: object) -> None:
    server = Server([stream_of(events(1))])
    async with trio.open_nursery() as nursery:
        server.nursery = nursery
        probe = Probe(settings(duration=100.0), server.connect)
        nursery.start_soon(probe.run)
        await trio.sleep(2.0)
        probe.stop()
        await trio.sleep(0)
        nursery.cancel_scope.cancel()
    (attempt,) = probe.records[0].attempts
    assert attempt.kind == "run-end" and attempt.duration == pytest.approx(2.0)
    assert probe.stopped_early


@pytest.mark.parametrize(
    ("raw", "kind", "label"),
    [
        (
            b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\n\r\n" + events(1),
            "clean-end",
            "clean end",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 99\r\n\r\n"
            + events(1),
            "incomplete",
            "incomplete body",
        ),
        (b"", "incomplete", "closed before the response head"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "protocol", "bad HTTP response"),
    ],
)
async def test_how_other_ends_are_seen(
    autojump_clock: object, raw: bytes, kind: str, label: str
) -> None:
    async def answer(stream: trio.abc.Stream, _: bytes) -> None:
        if raw:
            await stream.send_all(raw)

    probe, _ = await run_probe([answer], duration=1.0)
    attempt = probe.records[0].attempts[0]
    assert (attempt.kind, attempt.label, attempt.final) == (kind, label, False)
