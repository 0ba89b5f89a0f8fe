"""Each toxiproxy toxic does through sseproxy what it does through toxiproxy.

The same TCP upstream, client and toxic go through the real toxiproxy-server (skipped
when absent) and through sseproxy's toxiproxy API; each test asserts what the client
observes (when the first byte came, how much, how it ended) against both. Real sockets and
real time, so the durations are short and the bounds generous.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from sseproxy.toxiproxy.toxics import Toxic, extension_types, parse_toxic
from tests.toxiproxy_rig import (
    HOST,
    Seen,
    call,
    read_all,
    real_toxiproxy,
    sseproxy_api,
    tcp_upstream,
)

_names = itertools.count()


@pytest.fixture(scope="module", params=["toxiproxy", "sseproxy"])
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "toxiproxy":
        with real_toxiproxy() as url:
            yield url
    else:
        with sseproxy_api() as api:
            yield api.url


def through(server: str, payload: bytes, toxic: dict[str, Any] | None, **kwargs: Any) -> Seen:
    """`payload` from a fresh upstream, through a fresh proxy with `toxic`, to a client."""
    linger = kwargs.pop("linger", 0.0)
    with tcp_upstream(payload, linger=linger) as upstream:
        name = f"p{next(_names)}"
        created = call(
            server,
            "POST",
            "/proxies",
            {"name": name, "listen": f"{HOST}:0", "upstream": f"{HOST}:{upstream}"},
        )
        assert created.status == 201, created.body
        port = int(created.json()["listen"].rsplit(":", 1)[1])
        try:
            if toxic is not None:
                added = call(server, "POST", f"/proxies/{name}/toxics", toxic)
                assert added.status == 200, added.body
            return read_all(port, **kwargs)
        finally:
            call(server, "DELETE", f"/proxies/{name}")


def test_no_toxic_passes_everything(server: str) -> None:
    seen = through(server, b"x" * 5000, None)
    assert seen.data == b"x" * 5000
    assert seen.end == "eof"


def test_latency_delays_the_first_byte(server: str) -> None:
    seen = through(server, b"hello", {"type": "latency", "attributes": {"latency": 300}})
    assert seen.data == b"hello"
    assert seen.first_at is not None and 0.28 <= seen.first_at < 2.0


def test_bandwidth_paces_in_kilobytes_per_second(server: str) -> None:
    seen = through(server, b"x" * 10_000, {"type": "bandwidth", "attributes": {"rate": 20}})
    assert seen.data == b"x" * 10_000
    assert 0.4 <= seen.reads[-1][0] < 2.5  # 10 kB at 20 kB/s: half a second


def test_timeout_holds_the_data_then_closes(server: str) -> None:
    toxic = {"type": "timeout", "attributes": {"timeout": 300}}
    seen = through(server, b"hello", toxic, linger=2.0)
    assert seen.data == b""
    assert seen.end == "eof"
    assert 0.28 <= seen.ended_at < 2.0


def test_timeout_zero_holds_for_good(server: str) -> None:
    toxic = {"type": "timeout", "attributes": {"timeout": 0}}
    seen = through(server, b"hello", toxic, linger=2.0, timeout=0.6)
    assert (seen.data, seen.end) == (b"", "timeout")


def test_reset_peer_resets_after_its_timeout(server: str) -> None:
    seen = through(server, b"hello", {"type": "reset_peer", "attributes": {"timeout": 300}})
    assert seen.data == b""
    assert seen.end == "reset"
    assert 0.28 <= seen.ended_at < 2.0


def test_slow_close_passes_the_data_and_delays_the_end(server: str) -> None:
    seen = through(server, b"hello", {"type": "slow_close", "attributes": {"delay": 400}})
    assert seen.data == b"hello"
    assert seen.first_at is not None and seen.first_at < 0.3
    assert seen.end == "eof"
    assert 0.38 <= seen.ended_at < 2.0


def test_slicer_cuts_and_spaces_the_stream(server: str) -> None:
    toxic = {
        "type": "slicer",
        "attributes": {"average_size": 10, "size_variation": 2, "delay": 30_000},  # 30 ms
    }
    seen = through(server, bytes(range(100)), toxic)
    assert seen.data == bytes(range(100))
    assert len(seen.reads) >= 5
    assert max(len(chunk) for _, chunk in seen.reads) <= 24
    assert seen.reads[-1][0] - seen.reads[0][0] >= 0.1


def test_limit_data_closes_after_so_many_bytes(server: str) -> None:
    seen = through(server, b"x" * 100, {"type": "limit_data", "attributes": {"bytes": 10}})
    assert seen.data == b"x" * 10
    assert seen.end == "eof"


def test_upstream_toxics_act_on_what_the_client_sends(server: str) -> None:
    toxic = {"type": "timeout", "stream": "upstream", "attributes": {"timeout": 300}}
    seen = through(server, b"hello", toxic, send=b"ping", linger=2.0)
    assert seen.end in ("eof", "reset")  # the upstream link closes, and the connection with it
    assert 0.28 <= seen.ended_at < 2.0


def test_toxicity_zero_leaves_connections_alone(server: str) -> None:
    toxic = {"type": "timeout", "toxicity": 0, "attributes": {"timeout": 300}}
    seen = through(server, b"hello", toxic)
    assert (seen.data, seen.end) == (b"hello", "eof")


# -- sseproxy only: where toxiproxy has a known bug, and our own faults as toxics


def test_reset_peer_honours_toxicity_unlike_toxiproxy_issue_603() -> None:
    with sseproxy_api() as api:
        toxic = {"type": "reset_peer", "toxicity": 0, "attributes": {"timeout": 0}}
        seen = through(api.url, b"hello", toxic)
    assert (seen.data, seen.end) == (b"hello", "eof")


def test_every_fault_is_a_toxic_type() -> None:
    types = extension_types()
    assert types["sse_idle_timeout"] == "idle-timeout"
    assert types["http_status"] == "status"
    assert types["sse_drop_events"] == "drop-events"
    assert len(types) == len(set(types.values()))


def test_an_extension_toxic_is_validated_as_its_fault() -> None:
    toxic = parse_toxic({"type": "sse_idle_timeout", "attributes": {"timeout": "2s"}})
    assert toxic.attributes == {
        "timeout": "2s",
        "counts": "bytes",
        "action": "close",
        "status": 504,
        "lazy": "0s",
    }
    table = toxic.fault_table()
    assert table is not None and table["type"] == "idle-timeout"
    with pytest.raises(Exception, match="timeout"):
        parse_toxic({"type": "sse_idle_timeout", "attributes": {"timeout": "soon"}})


def test_sse_idle_timeout_closes_a_silent_tcp_stream() -> None:
    with sseproxy_api() as api:
        toxic = {"type": "sse_idle_timeout", "attributes": {"timeout": "300ms"}}
        seen = through(api.url, b"hello", toxic, linger=3.0)
    assert seen.data == b"hello"
    assert seen.end == "eof"
    assert 0.28 <= seen.ended_at < 2.0


def test_toxics_apply_to_open_connections() -> None:
    """A toxic added while a client is connected acts on that connection (live)."""
    import socket
    import time

    with sseproxy_api() as api, tcp_upstream(b"", linger=5.0) as upstream:
        created = call(
            api.url,
            "POST",
            "/proxies",
            {"name": "live", "listen": f"{HOST}:0", "upstream": f"{HOST}:{upstream}"},
        )
        port = int(created.json()["listen"].rsplit(":", 1)[1])
        with socket.create_connection((HOST, port), timeout=5) as conn:
            deadline = time.monotonic() + 5
            while not api.journal.of_kind("opened") and time.monotonic() < deadline:
                time.sleep(0.01)
            added = call(
                api.url,
                "POST",
                "/proxies/live/toxics",
                {"type": "reset_peer", "attributes": {"timeout": 0}},
            )
            assert added.status == 200
            with pytest.raises(ConnectionResetError):
                while conn.recv(100):
                    pass


def test_cut_exact_stops_right_after_so_many_bytes() -> None:
    import random

    from sseproxy.faults.base import Close, Deliver, Piece
    from sseproxy.faults.cut import Cut

    cut = Cut({"bytes": 10, "events": None, "where": "exact", "how": "close"}, random.Random(1))
    assert cut.on_piece(Piece(b"x" * 4), 0.0) == [Deliver(Piece(b"x" * 4), 0.0)]
    actions = cut.on_piece(Piece(b"y" * 100), 1.0)
    assert actions == [Deliver(Piece(b"y" * 6), 1.0), Close("after 10B")]


def test_native_toxics_map_to_faults() -> None:
    def table(kind: str, **attributes: int) -> dict[str, Any] | None:
        return Toxic("t", kind, "downstream", 1.0, {**_zeros(kind), **attributes}).fault_table()

    assert table("latency", latency=100, jitter=10) == {
        "type": "latency",
        "delay": "100ms",
        "jitter": "10ms",
        "name": "t",
        "direction": "down",
        "probability": 1.0,
    }
    assert table("latency") is None
    assert table("bandwidth", rate=0) is None
    assert table("bandwidth", rate=5)["rate"] == "5000B"  # type: ignore[index]
    assert table("timeout", timeout=0)["type"] == "stall"  # type: ignore[index]
    assert table("reset_peer", timeout=0)["type"] == "reset"  # type: ignore[index]
    assert table("slicer", average_size=4, size_variation=9)["variation"] == "3B"  # type: ignore[index]
    assert table("limit_data", bytes=7)["bytes"] == "7B"  # type: ignore[index]
    up = Toxic("t", "latency", "upstream", 1.7, {"latency": 1, "jitter": 0}).fault_table()
    assert up is not None and up["direction"] == "up" and up["probability"] == 1.0


def _zeros(kind: str) -> dict[str, int]:
    from sseproxy.toxiproxy.toxics import NATIVE

    return {name: 0 for name, _ in NATIVE[kind].attributes}
