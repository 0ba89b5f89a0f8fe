"""`GET /metrics`: Prometheus text format (read back with prometheus_client's own parser),
counting what the journal records."""

from __future__ import annotations

from collections import Counter
from typing import Any

import trio
from prometheus_client.parser import text_string_to_metric_families

from sseproxy.metrics import Metrics
from tests.test_control import control_stack, wait_closed

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> tuple[dict[str, str], Samples]:
    """(family name -> type, (sample name, labels) -> value), by the reference parser."""
    types: dict[str, str] = {}
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate sample {key}"
            samples[key] = sample.value
    return types, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def labelled(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: v for (sample, labels), v in samples.items() if sample == name}


def test_records_become_metrics_in_the_text_format() -> None:
    metrics = Metrics()
    records: list[dict[str, Any]] = [
        {"kind": "opened", "conn": "c1"},
        {"kind": "request", "conn": "c1", "method": "GET"},
        {"kind": "response", "conn": "c1", "status": 200},
        {"kind": "fault", "conn": "c1", "fault": 'odd "name"\\\n', "action": "reset"},
        {
            "kind": "closed",
            "conn": "c1",
            "by": "proxy",
            "reason": "reset",
            "duration": 12.5,
            "bytes_down": 300,
            "bytes_up": 80,
            "events_down": 4,
        },
        {"kind": "opened", "conn": "c2"},
        {
            "kind": "closed",
            "conn": "c2",
            "by": "client",
            "reason": "client-closed",
            "duration": 0.5,
        },
        {
            "kind": "closed",
            "conn": "c3",
            "by": "client",
            "reason": "client-closed",
            "duration": "?",
        },
    ]
    for record in records:
        metrics.observe(record)
    types, samples = parse(metrics.render(scenario='with "quotes"', seed=42))
    assert types["sseproxy_connections_open"] == "gauge"
    assert types["sseproxy_connections"] == "counter"
    assert types["sseproxy_connection_duration_seconds"] == "histogram"
    assert value(samples, "sseproxy_connections_open") == 0
    assert value(samples, "sseproxy_connections_total") == 2
    assert labelled(samples, "sseproxy_connections_closed_total") == {
        frozenset({("by", "proxy"), ("reason", "reset")}): 1,
        frozenset({("by", "client"), ("reason", "client-closed")}): 2,
    }
    assert value(samples, "sseproxy_bytes_total", direction="down") == 300
    assert value(samples, "sseproxy_bytes_total", direction="up") == 80
    assert value(samples, "sseproxy_events_total", direction="down") == 4
    assert (
        value(samples, "sseproxy_faults_fired_total", fault='odd "name"\\\n', action="reset") == 1
    )
    assert value(samples, "sseproxy_requests_total", method="GET") == 1
    assert value(samples, "sseproxy_responses_total", status="200") == 1
    buckets = labelled(samples, "sseproxy_connection_duration_seconds_bucket")
    assert buckets[frozenset({("le", "1.0")})] == 1
    assert buckets[frozenset({("le", "10.0")})] == 1
    assert buckets[frozenset({("le", "60.0")})] == 2
    assert buckets[frozenset({("le", "+Inf")})] == 2
    assert value(samples, "sseproxy_connection_duration_seconds_count") == 2
    assert value(samples, "sseproxy_connection_duration_seconds_sum") == 13.0
    assert value(samples, "sseproxy_scenario_info", scenario='with "quotes"', seed="42") == 1


async def test_metrics_count_what_the_journal_records() -> None:
    scenario = (
        '[[faults]]\nname = "kick"\ntype = "reset"\nevents = 2\nmatch = { path = "/events" }\n'
    )
    async with control_stack(scenario) as stack:
        reset = await stack.open_stream()
        assert await reset.read_to_end() == "reset"
        await wait_closed(stack, 1)
        status = await stack.open_stream("/status/503")
        await status.read_until(b"status 503")
        await status.aclose()
        await wait_closed(stack, 2)
        flowing = await stack.open_stream("/events?interval=0.01")
        await stack.api.delete("/faults/kick")  # this one flows
        await flowing.read_until(b"id: 5\n")

        scrape = await stack.api.get("/metrics")
        assert scrape.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        _, during = parse(scrape.text)
        assert value(during, "sseproxy_connections_open") == 1
        assert value(during, "sseproxy_connections_total") == 3
        closed_bytes = sum(r.get("bytes_down", 0) for r in stack.journal.of_kind("closed"))
        assert value(during, "sseproxy_bytes_total", direction="down") > closed_bytes  # + live
        await trio.sleep(0.05)
        _, later = parse((await stack.api.get("/metrics")).text)
        for direction in ("down", "up"):
            for name in ("sseproxy_bytes_total", "sseproxy_events_total"):
                assert value(later, name, direction=direction) >= value(
                    during, name, direction=direction
                )

        await stack.api.delete("/connections")
        _, after = parse((await stack.api.get("/metrics")).text)
        journal = stack.journal
        closed = journal.of_kind("closed")
        assert len(closed) == 3
        assert value(after, "sseproxy_connections_open") == 0
        assert value(after, "sseproxy_connections_total") == len(journal.of_kind("opened"))
        by_reason = Counter((r["by"], r["reason"]) for r in closed)
        assert labelled(after, "sseproxy_connections_closed_total") == {
            frozenset({("by", by), ("reason", reason)}): n for (by, reason), n in by_reason.items()
        }
        assert ("proxy", "killed") in by_reason
        for direction in ("down", "up"):
            recorded = sum(r.get(f"bytes_{direction}", 0) for r in closed)
            assert value(after, "sseproxy_bytes_total", direction=direction) == recorded
            events = sum(r.get(f"events_{direction}", 0) for r in closed)
            assert value(after, "sseproxy_events_total", direction=direction) == events
        assert value(after, "sseproxy_events_total", direction="down") >= 7
        fired = Counter((r["fault"], r["action"]) for r in journal.of_kind("fault"))
        assert fired == {("kick", "reset"): 1}
        assert value(after, "sseproxy_faults_fired_total", fault="kick", action="reset") == 1
        assert value(after, "sseproxy_requests_total", method="GET") == 3
        assert value(after, "sseproxy_responses_total", status="503") == 1
        assert value(after, "sseproxy_responses_total", status="200") == 2
        assert value(after, "sseproxy_connection_duration_seconds_count") == 3
        assert value(after, "sseproxy_scenario_info", scenario="scenario", seed="7") == 1
        assert value(after, "sseproxy_journal_records_total") == len(journal.records)
