"""A scenario's pool: `balance`, `hash_key`, `[[upstreams]]` and `match.upstream`, read,
refused with file, line, table, field and value, and written back (replays)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sseproxy.cli import main
from sseproxy.errors import ConfigError, ScenarioError
from sseproxy.scenario import Scenario, parse_scenario
from sseproxy.upstreams import parse_members

GOOD = """\
[scenario]
name = "pool"
balance = "hash"
hash_key = "header:Mcp-Session-Id"

[[upstreams]]
url = "http://127.0.0.1:9001"

[[upstreams]]
name = "b"
url = "http://127.0.0.1:9002"
weight = 2
max_fails = 3
fail_timeout = "5s"
restart_url = "http://127.0.0.1:9002/admin/restart"

[[faults]]
type = "restart"
downtime = "2s"
window = { from = "20s" }
match = { upstream = "b" }
"""


def refusal(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, file="p.toml")
    return caught.value.lines


def test_a_pool_is_read_and_written_back() -> None:
    scenario = parse_scenario(GOOD, file="p.toml")
    assert (scenario.balance, scenario.hash_key) == ("hash", "header:Mcp-Session-Id")
    a, b = scenario.upstreams
    assert (a.name, a.weight, a.max_fails, a.fail_timeout) == ("a", 1, 1, 10.0)  # nginx's
    assert (b.name, b.weight, b.max_fails, b.fail_timeout) == ("b", 2, 3, 5.0)
    assert scenario.faults[0].match.upstream == "b"
    again = parse_scenario(scenario.to_toml(), file="p.toml")
    assert again == Scenario(**{**vars(scenario), "path": again.path})


def test_every_pool_mistake_names_file_line_table_field_and_value() -> None:
    lines = refusal(
        """\
[scenario]
balance = "ip_hsh"

[[upstreams]]
name = "a"
url = "http://127.0.0.1:x"
wieght = 2

[[upstreams]]
name = "a"
url = "http://127.0.0.1:9002"
max_fails = -1

[[faults]]
type = "down"
match = { upstream = "z", uptream = "a" }
"""
    )
    assert lines == [
        "p.toml:2: field 'balance': 'ip_hsh' is not a balancing method; allowed: "
        "'round_robin', 'ip_hash', 'hash', 'random', 'least_conn'",
        "p.toml:6: upstream #1 (a), field 'url': upstream 'http://127.0.0.1:x': "
        "the port is not a number",
        "p.toml:7: upstream #1 (a), field 'wieght': unknown field; did you mean 'weight'? "
        "an upstream takes: name, url, weight, max_fails, fail_timeout, restart_url",
        "p.toml:12: upstream #2 (a), field 'max_fails': -1 is below the minimum; "
        "allowed: a whole number (>= 0)",
        "p.toml:16: fault #1 (down), field 'match.uptream': unknown key; did you mean "
        "'upstream'? allowed: path, method, headers, upstream",
    ]


def test_a_match_must_name_a_member_and_hash_needs_a_key() -> None:
    lines = refusal(
        '[scenario]\nbalance = "hash"\n\n[[upstreams]]\nurl = "http://127.0.0.1:9001"\n\n'
        '[[faults]]\ntype = "down"\nmatch = { upstream = "z" }\n'
    )
    assert lines == [
        "p.toml:2: field 'balance': balance = 'hash' needs hash_key (header:NAME, query:NAME "
        "or cookie:NAME)",
        "p.toml:9: fault #1 (down), field 'match.upstream': 'z' is not a member of "
        "[[upstreams]]; members: a",
    ]
    assert refusal('[scenario]\nhash_key = "body:x"\n') == [
        "p.toml:2: field 'hash_key': 'body:x' is not a hash key; use header:NAME, "
        "query:NAME or cookie:NAME (e.g. header:Mcp-Session-Id)"
    ]


def test_upstream_options_name_members_and_check_the_scenario() -> None:
    scenario = parse_scenario('[[faults]]\ntype = "down"\nmatch = { upstream = "c" }\n')
    members = parse_members(["http://127.0.0.1:1", "b=http://127.0.0.1:2", ":3"], scenario)
    assert [(m.name, m.url) for m in members] == [
        ("a", "http://127.0.0.1:1"),
        ("b", "http://127.0.0.1:2"),
        ("c", ":3"),
    ]
    with pytest.raises(ConfigError, match="'c', which is not a pool member"):
        parse_members(["http://127.0.0.1:1"], scenario)
    with pytest.raises(ConfigError, match="distinct NAME=URL"):
        parse_members(["a=:1", "a=:2"], Scenario(name="x"))
    with pytest.raises(ConfigError, match="--hash-key"):
        parse_members([":1"], Scenario(name="x"), "nope")


def test_run_refuses_a_bad_upstream_in_one_line_with_exit_2() -> None:
    result = CliRunner().invoke(main, ["run", "--upstream", "a=:1", "--upstream", "a=:2"])
    assert result.exit_code == 2
    assert "give each member a distinct NAME=URL" in result.output
    assert "Traceback" not in result.output


def test_upstream_option_keeps_the_scenario_members_settings_time_scale_scales_them() -> None:
    from sseproxy.proxy import ProxySettings, Upstream
    from sseproxy.upstreams import pool_spec

    scenario = parse_scenario(
        '[[upstreams]]\nname = "b"\nurl = "http://127.0.0.1:9002"\nweight = 3\n'
        'fail_timeout = "5s"\nrestart_url = "http://127.0.0.1:9002/_restart"\n',
        file="p.toml",
    )
    members = parse_members(["a=:7001", "b=:7002"], scenario)
    settings = ProxySettings(Upstream("127.0.0.1", 7001), upstreams=members)
    a, b = pool_spec(settings, scenario).members
    assert (a.weight, a.fail_timeout) == (1, 10.0)  # not in the scenario: nginx's defaults
    assert (b.url, b.weight, b.fail_timeout, b.restart_url) == (":7002", 3, 5.0, None)
    a, b = pool_spec(settings, scenario, time_scale=0.1).members
    assert (a.fail_timeout, b.fail_timeout) == pytest.approx((1.0, 0.5))
