"""The `sseproxy` command through click's CliRunner: help, scenarios, and usage errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from sseproxy.cli import main
from sseproxy.faults import all_faults
from sseproxy.scenario import COMMON_FIELDS, load_scenario, preset_names
from tests.subprocesses import Lines

GOOD = '[scenario]\ndescription = "fine"\n\n[[faults]]\ntype = "latency"\n'
BAD = '[[faults]]\ntype = "latency"\nprobability = 1.5\n'


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    yield path
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))
        else:
            yield (*path, name)


_NO_EXAMPLE = pytest.mark.xfail(
    strict=True, reason="cli.py: this command's docstring has no example command line"
)
_MISSING_EXAMPLES: set[tuple[str, ...]] = set()


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(path, id=" ".join(path) or "main", marks=[_NO_EXAMPLE])
        if path in _MISSING_EXAMPLES
        else pytest.param(path, id=" ".join(path) or "main")
        for path in commands(main)
    ],
)
def test_help_shows_an_example(path: tuple[str, ...]) -> None:
    result = invoke(*path, "--help")
    assert result.exit_code == 0, result.output
    # the prog name is "main" under CliRunner, so only the docstring can say "sseproxy ..."
    lines = [line.strip() for line in result.output.splitlines() if "Usage:" not in line]
    wanted = " ".join(("sseproxy", *path)) if path else "sseproxy run"
    assert any(wanted in line for line in lines), result.output


def test_short_help_flag_and_version() -> None:
    assert invoke("-h").exit_code == 0
    result = invoke("--version")
    assert result.exit_code == 0
    assert "version" in result.output


# -- scenarios describe ---------------------------------------------------------------------


def test_describe_lists_every_fault_and_its_params() -> None:
    result = invoke("scenarios", "describe")
    assert result.exit_code == 0, result.output
    out = result.output
    assert all_faults(), "no fault registered"
    for name, cls in all_faults().items():
        assert f"{name}: {cls.summary}\n" in out
        section = out.split(f"{name}: ", 1)[1].split("\n\n", 1)[0]
        for param in cls.params:
            assert f"  {param.name:12} {param.help}" in section
            assert param.allowed() in section
    common = out.split("Fields every fault takes:\n", 1)[1]
    for param in COMMON_FIELDS:
        assert f"  {param.name:12} " in common


def test_describe_says_required_optional_and_defaults() -> None:
    out = invoke("scenarios", "describe", "idle-timeout").output
    assert "(>= 1ms); required" in out
    assert "one of 'bytes', 'events'; default 'bytes'" in out
    common = out.split("Fields every fault takes:\n", 1)[1]
    assert "a number (>= 0 and <= 1); default 1.0" in common
    assert "(>= 0s); default '0s'" in common
    assert "a whole number (>= 1); optional" in common


def test_describe_one_fault() -> None:
    result = invoke("scenarios", "describe", "latency")
    assert result.exit_code == 0
    assert result.output.startswith("latency: ")
    others = [name for name in all_faults() if name != "latency"]
    assert not any(f"{name}: " in result.output for name in others)
    assert "Fields every fault takes:" in result.output


def test_describe_unknown_fault_exits_2() -> None:
    result = invoke("scenarios", "describe", "nope")
    assert result.exit_code == 2
    assert result.output.startswith("Error: unknown fault 'nope'; known: ")
    assert "latency" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("field", ["window", "match"])
def test_describe_does_not_call_tables_strings(field: str) -> None:
    common = invoke("scenarios", "describe").output.split("Fields every fault takes:\n", 1)[1]
    entry = common.split(f"  {field:12} ", 1)[1].split("\n  ", 2)[:2]
    assert "a string" not in entry[1]  # a string is refused: they are tables
    assert "a table" in entry[1]


# -- scenarios validate / list / show -------------------------------------------------------


def test_validate_reports_each_file(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(GOOD, encoding="utf-8")
    bad.write_text(BAD, encoding="utf-8")
    result = invoke("scenarios", "validate", str(good), str(bad))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == f"ok       {good} (1 fault)"
    assert lines[1].startswith(f"invalid  {bad}:3: fault #1 (latency), field 'probability': ")
    assert "1.5 is above the maximum" in lines[1]
    assert len(lines) == 2


def test_validate_all_good_exits_0(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(GOOD, encoding="utf-8")
    result = invoke("scenarios", "validate", str(good), str(good))
    assert result.exit_code == 0
    assert result.output.count("ok       ") == 2


def test_validate_missing_file(tmp_path: Path) -> None:
    result = invoke("scenarios", "validate", str(tmp_path / "gone.toml"))
    assert result.exit_code == 1
    assert result.output.startswith(f"invalid  {tmp_path / 'gone.toml'}: no such file")


def test_validate_needs_a_file() -> None:
    assert invoke("scenarios", "validate").exit_code == 2


def test_list_shows_every_preset() -> None:
    result = invoke("scenarios", "list")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == len(preset_names())
    for name, line in zip(preset_names(), lines, strict=True):
        assert line.split()[0] == name
        assert line.endswith(load_scenario(name).description)
        assert "(invalid" not in line


def test_presets_say_nothing_from_outside_and_cite_public_sources() -> None:
    listed = invoke("scenarios", "list").output
    assert "user story" not in listed.lower()
    root = Path(__file__).resolve().parent.parent
    for name in preset_names():
        scenario = load_scenario(name)
        assert "user story" not in (scenario.description or "").lower(), name
        for part in (scenario.source or "").split(";"):
            part = part.strip()
            assert not part.startswith(("../", "/", "~")), f"{name}: {part}"
            if part.startswith("docs/"):
                assert (root / part.split()[0]).is_file(), f"{name}: {part}"


def test_show_prints_the_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text("# my scenario\n" + GOOD + "\n\n", encoding="utf-8")
    result = invoke("scenarios", "show", str(path))
    assert result.exit_code == 0
    assert result.output == "# my scenario\n" + GOOD


def test_show_a_preset() -> None:
    for name in preset_names()[:1]:
        result = invoke("scenarios", "show", name)
        assert result.exit_code == 0
        assert "[[faults]]" in result.output


def test_show_missing_exits_2(tmp_path: Path) -> None:
    result = invoke("scenarios", "show", str(tmp_path / "gone.toml"))
    assert result.exit_code == 2
    assert "no such file" in result.output
    assert "Traceback" not in result.output


# -- usage errors: one line, exit 2, nothing started ----------------------------------------


def assert_usage_error(result: Result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    for part in parts:
        assert part in lines[0]


def test_run_bad_listen() -> None:
    assert_usage_error(invoke("run", "--listen", "nonsense"), "'nonsense' is not HOST:PORT")


@pytest.mark.parametrize("listen", ["127.0.0.1:99999", "host:port", "127.0.0.1:"])
def test_run_other_bad_listens(listen: str) -> None:
    assert_usage_error(invoke("run", "--listen", listen), "is not HOST:PORT")


def test_run_unknown_upstream_scheme() -> None:
    assert_usage_error(invoke("run", "--upstream", "ftp://x:1"), "'ftp://x:1'", "scheme 'ftp'")


@pytest.mark.parametrize(
    ("upstream", "why"),
    [("http://x:port", "not a number"), ("x", "give a port"), ("http://x:1/path", "no path")],
)
def test_run_other_bad_upstreams(upstream: str, why: str) -> None:
    assert_usage_error(invoke("run", "--upstream", upstream), why)


def test_run_missing_scenario(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert_usage_error(
        invoke("run", "--scenario", "missing.toml"), "missing.toml: no such file", "presets:"
    )


def test_run_invalid_scenario(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD, encoding="utf-8")
    assert_usage_error(invoke("run", "--scenario", str(path)), f"{path}:3:", "'probability'")


def test_run_match_needs_http_mode(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('[[faults]]\ntype = "latency"\nmatch = { path = "/x" }\n', encoding="utf-8")
    assert_usage_error(
        invoke("run", "--mode", "tcp", "--scenario", str(path)), "needs HTTP requests"
    )


def test_run_bad_connect_timeout() -> None:
    assert_usage_error(invoke("run", "--connect-timeout", "soon"), "'soon'")


def test_run_bad_mode() -> None:
    result = invoke("run", "--mode", "udp")
    assert result.exit_code == 2
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("option", "value"),
    [("--interval", "abc"), ("--size", "1.5B"), ("--hb", "loud"), ("--count", "-1")],
)
def test_serve_bad_settings(option: str, value: str) -> None:
    name = option.removeprefix("--")
    assert_usage_error(invoke("serve", option, value), f"invalid {name}={value!r}")


def test_serve_bad_listen() -> None:
    assert_usage_error(invoke("serve", "--listen", "nonsense"), "is not HOST:PORT")


def test_run_records_the_scenario_file_and_report_finds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hint names a path to fill in; `started` has the scenario's path; `report` finds
    the scenario by that path, and next to the journal once both were moved."""
    here, elsewhere, moved = tmp_path / "here", tmp_path / "elsewhere", tmp_path / "moved"
    for folder in (here, elsewhere, moved):
        folder.mkdir()
    (here / "my-scenario.toml").write_text('[[faults]]\ntype = "idle-timeout"\ntimeout = "3s"\n')
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        upstream = f"http://127.0.0.1:{free.getsockname()[1]}"
    command = [sys.executable, "-m", "sseproxy", "run", "--listen", "127.0.0.1:0"]
    command += ["--upstream", upstream, "--scenario", "my-scenario.toml", "--journal", "run.jsonl"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(command, cwd=here, stdout=subprocess.PIPE, text=True, env=env) as proc:
        try:
            assert proc.stdout is not None
            lines = Lines(proc.stdout)
            hint = lines.wait_for(r"^try: curl -N (http://127\.0\.0\.1:\d+)(\S*)(.*)$")
            assert hint.group(2) == "/PATH" and upstream in hint.group(3)
            lines.wait_for("^stop with Ctrl-C$")
        finally:
            proc.send_signal(signal.SIGINT)
            assert proc.wait(timeout=10) == 0
    started = json.loads((here / "run.jsonl").read_text().splitlines()[0])
    assert started["kind"] == "started"
    assert started["scenario"] == "my-scenario"
    assert started["scenario_file"] == str(here / "my-scenario.toml")

    def notes(journal: Path) -> list[str]:
        result = invoke("report", str(journal), "--json")
        assert result.exit_code == 0, result.output
        return list(json.loads(result.output)["notes"])

    monkeypatch.chdir(elsewhere)
    assert not any("my-scenario" in note for note in notes(here / "run.jsonl"))
    for name in ("run.jsonl", "my-scenario.toml"):
        (here / name).rename(moved / name)
    assert not any("my-scenario" in note for note in notes(moved / "run.jsonl"))
    (moved / "my-scenario.toml").unlink()
    assert any("'my-scenario' is neither" in note for note in notes(moved / "run.jsonl"))


def test_serve_help_says_what_status_n_and_unknown_parameters_get() -> None:
    text = invoke("serve", "--help").output
    assert "an empty response" not in text
    assert "/status/N a response with status N (body: 'status N')" in text
    assert "(any other parameter: 400)" in text
