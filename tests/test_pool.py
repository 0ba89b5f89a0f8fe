"""The pool's decisions, sans I/O: times are numbers passed in (virtual time, no trio)."""

from __future__ import annotations

from collections import Counter

import pytest

from sseproxy.balance import HashKey, Ring, ip_hash_bytes
from sseproxy.pool import Member, Pool

ABC = [Member("a"), Member("b"), Member("c")]


def first(pool: Pool, now: float = 0.0, **key: str) -> str | None:
    """The member picked for one exchange, released at once."""
    name = pool.attempt(**key).next(now)
    if name is not None:
        pool.released(name)
    return name


def test_round_robin_is_nginxs_smooth_weighted_round_robin() -> None:
    pool = Pool([Member("a", weight=5), Member("b"), Member("c")])
    assert [first(pool) for _ in range(7)] == ["a", "a", "b", "a", "c", "a", "a"]


def test_ip_hash_keys_on_three_octets_of_ipv4_and_all_of_ipv6() -> None:
    assert ip_hash_bytes("10.1.2.3") == ip_hash_bytes("10.1.2.250") == bytes([10, 1, 2])
    assert len(ip_hash_bytes("2001:db8::1")) == 16
    assert ip_hash_bytes("2001:db8::1") != ip_hash_bytes("2001:db8::2")
    assert ip_hash_bytes("memory") == b"\0\0\0"  # nginx's pseudo-address


def test_ip_hash_follows_nginxs_arithmetic() -> None:
    # by hand, ngx_http_upstream_ip_hash_module.c: hash = 89; for 10, 0, 0:
    # (89*113+10) % 6271 = 3796; (3796*113) % 6271 = 2520; (2520*113) % 6271 = 2565;
    # 2565 % total weight 3 = 0: the first server
    pool = Pool(ABC, "ip_hash")
    assert first(pool, client="10.0.0.7") == "a"
    # a /24 sticks to one member, whichever host in it
    assert {first(pool, client=f"192.168.7.{n}") for n in range(1, 255)} == {
        first(pool, client="192.168.7.1")
    }


def test_ip_hash_spreads_many_slash_24s_over_the_members() -> None:
    pool = Pool(ABC, "ip_hash")
    counts = Counter(first(pool, client=f"10.{n // 256}.{n % 256}.1") for n in range(3000))
    assert set(counts) == {"a", "b", "c"}
    assert min(counts.values()) > 800, counts


def test_a_failed_member_is_skipped_and_the_request_rehashed_until_fail_timeout() -> None:
    pool = Pool(ABC, "ip_hash")
    client = "10.0.0.7"  # -> a (see above)
    attempt = pool.attempt(client=client)
    assert attempt.next(0.0) == "a"
    pool.failed("a", 0.0)  # max_fails=1 (nginx's default): a is out for fail_timeout=10s
    moved = attempt.next(0.0)  # the same exchange moves on (proxy_next_upstream error)
    assert moved in ("b", "c")
    pool.connected(moved, 0.0)
    pool.released(moved)
    # later exchanges of that client go where the rehash leads, while a is failed ...
    assert [first(pool, t, client=client) for t in (1.0, 5.0, 10.0)] == [moved] * 3
    # ... and back to a once fail_timeout is over (nginx: now - checked > fail_timeout)
    assert first(pool, 10.5, client=client) == "a"


def test_max_fails_counts_failures_within_fail_timeout() -> None:
    pool = Pool([Member("a", max_fails=3, fail_timeout=30.0), Member("b")])
    for t in (0.0, 1.0):
        pool.failed("a", t)
        assert pool.available(0, t)
    pool.failed("a", 2.0)
    assert not pool.available(0, 2.0)
    assert not pool.available(0, 32.0)
    assert pool.available(0, 32.5)


def test_max_fails_zero_never_marks_a_member_failed() -> None:
    pool = Pool([Member("a", max_fails=0), Member("b")])
    for t in range(5):
        pool.failed("a", float(t))
    assert pool.available(0, 5.0)


def test_a_success_after_fail_timeout_clears_the_failures() -> None:
    pool = Pool([Member("a", max_fails=2), Member("b")])
    pool.failed("a", 0.0)
    pool.connected("a", 1.0)  # within fail_timeout: nginx keeps counting
    assert pool.state("a").fails == 1
    name = pool.attempt().next(11.0)  # picked again after fail_timeout: checked moves on
    assert name == "a"
    pool.connected("a", 11.0)
    assert pool.state("a").fails == 0


def test_one_exchange_tries_each_member_once_then_gives_up() -> None:
    pool = Pool(ABC)
    attempt = pool.attempt()
    tried = []
    while (name := attempt.next(0.0)) is not None:
        tried.append(name)
        pool.failed(name, 0.0)
    assert sorted(tried) == ["a", "b", "c"]
    assert not attempt.no_live


def test_no_live_upstreams_clears_every_failure_as_nginx_does() -> None:
    pool = Pool(ABC)
    for name in "abc":
        pool.failed(name, 0.0)
    attempt = pool.attempt()
    assert attempt.next(1.0) is None
    assert attempt.no_live
    assert first(pool, 2.0) is not None  # "mark them as live for quick recovery"


def test_a_lone_member_is_never_skipped() -> None:
    pool = Pool([Member("a")])
    pool.failed("a", 0.0)
    assert first(pool, 1.0) == "a"


def test_hash_is_consistent_when_a_member_comes_or_goes() -> None:
    keys = [f"session-{n}" for n in range(2000)]
    three = Pool(ABC, "hash")
    four = Pool([*ABC, Member("d")], "hash")
    before = {key: first(three, key=key) for key in keys}
    after = {key: first(four, key=key) for key in keys}
    moved = [key for key in keys if before[key] != after[key]]
    assert all(after[key] == "d" for key in moved)  # keys only move to the newcomer
    assert 0.1 < len(moved) / len(keys) < 0.45, len(moved)  # about a quarter, not all
    assert Counter(before.values()).keys() == {"a", "b", "c"}


def test_hash_moves_a_failed_members_keys_along_the_ring() -> None:
    ring = Ring(["a", "b", "c"], [1, 1, 1])
    assert sorted(ring.walk("k")) == [0, 1, 2]
    pool = Pool(ABC, "hash")
    key = next(k for k in (f"k{n}" for n in range(100)) if first(pool, key=k) == "b")
    pool.failed("b", 0.0)
    assert first(pool, 1.0, key=key) == ABC[ring.walk(key)[1]].name
    assert first(pool, 11.0, key=key) == "b"


def test_hash_keys_from_a_header_a_query_parameter_or_a_cookie() -> None:
    headers = {"mcp-session-id": "s1", "cookie": "theme=dark; sid=abc"}
    assert HashKey("header:Mcp-Session-Id").of(headers, "") == "s1"
    assert HashKey("query:sessionId").of({}, "x=1&sessionId=q9") == "q9"
    assert HashKey("cookie:sid").of(headers, "") == "abc"
    assert HashKey("cookie:none").of(headers, "") == ""
    with pytest.raises(ValueError, match="header:NAME"):
        HashKey("body:x")


def test_several_hash_keys_are_concatenated_as_nginx_variables() -> None:
    """`hash $arg_session_id$http_mcp_session_id`: one key for both MCP transports."""
    key = HashKey("query:session_id, header:Mcp-Session-Id")
    assert key.of({}, "session_id=legacy") == "legacy"
    assert key.of({"mcp-session-id": "s1"}, "") == "s1"
    assert key.of({}, "") == ""
    with pytest.raises(ValueError, match="several joined by commas"):
        HashKey("query:session_id,")


def test_random_is_weighted_and_replays_from_the_seed() -> None:
    pool = Pool([Member("a", weight=3), Member("b")], "random", seed=7)
    picks = [first(pool, number=n) for n in range(4000)]
    again = Pool([Member("a", weight=3), Member("b")], "random", seed=7)
    assert picks == [first(again, number=n) for n in range(4000)]
    share = picks.count("a") / len(picks)
    assert 0.7 < share < 0.8, share


def test_least_conn_picks_the_member_with_fewest_open_exchanges() -> None:
    pool = Pool(ABC, "least_conn")
    held = [pool.attempt().next(0.0) for _ in range(3)]
    assert sorted(held) == ["a", "b", "c"]  # ties: round robin
    pool.released("b")
    assert pool.attempt().next(0.0) == "b"
    pool.released("c")
    pool.released("a")
    assert pool.attempt().next(0.0) in ("a", "c")
