"""`scenarios validate` and `run --scenario` on files with many mistakes, deep nesting or too
many faults: every error, one line each, never a traceback (issues 9 and 15)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner, Result

from tests.test_scenario import TEN_MISTAKES, many

DEEP = '[[faults]]\ntype = "latency"\nmatch = ' + "[" * 5000 + "]" * 5000 + "\n"
DOTTED = '[[faults]]\ntype = "latency"\nmatch.' + ".".join(["a"] * 2000) + " = 1\n"


def invoke(*args: str) -> Result:
    from sseproxy.cli import main

    return CliRunner().invoke(main, list(args))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_reports_every_error_in_line_order(tmp_path: Path) -> None:
    path = write(tmp_path, "ten.toml", TEN_MISTAKES)
    result = invoke("scenarios", "validate", str(path))
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert len(lines) == 10
    assert all(line.startswith(f"invalid  {path}:") for line in lines)
    numbers = [int(line.split(":")[1]) for line in lines]
    assert numbers == sorted(numbers)
    assert "did you mean 'latency'?" in lines[2]
    assert "did you mean 'action'?" in lines[4]


def test_validate_goes_on_to_the_next_file(tmp_path: Path) -> None:
    bad = write(tmp_path, "ten.toml", TEN_MISTAKES)
    good = write(tmp_path, "good.toml", '[[faults]]\ntype = "stall"\n')
    result = invoke("scenarios", "validate", str(bad), str(good))
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(f"ok       {good}")


def test_run_prints_every_error_and_exits_2(tmp_path: Path) -> None:
    path = write(tmp_path, "ten.toml", TEN_MISTAKES)
    result = invoke("run", "--scenario", str(path))
    assert result.exit_code == 2
    lines = result.output.splitlines()
    assert len(lines) == 10
    assert all(line.startswith(f"Error: {path}:") for line in lines)
    assert "Traceback" not in result.output


def test_deep_nesting_is_one_line_for_validate_and_run(tmp_path: Path) -> None:
    for text in (DEEP, DOTTED):
        path = write(tmp_path, "deep.toml", text)
        validated = invoke("scenarios", "validate", str(path))
        assert validated.exit_code == 1, validated.exception
        (line,) = validated.output.splitlines()
        assert line.startswith(f"invalid  {path}") and "nested over 8 levels deep" in line
        ran = invoke("run", "--scenario", str(path))
        assert ran.exit_code == 2, ran.exception
        (line,) = ran.output.splitlines()
        assert line.startswith(f"Error: {path}") and "nested over 8 levels deep" in line


def test_too_many_faults_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "big.toml", many(13_000))
    validated = invoke("scenarios", "validate", str(path))
    assert validated.exit_code == 1
    assert validated.output == (
        f"invalid  {path}:4001: fault #1001: 13000 faults, over the limit of 1000; vary one "
        "fault with `every`, `first`, `probability` or `match` rather than repeating it\n"
    )


def test_the_real_command_prints_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "deep.toml", DEEP)
    done = subprocess.run(
        [sys.executable, "-m", "sseproxy", "run", "--scenario", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"Error: {path}: cannot read: tables or arrays nested")
