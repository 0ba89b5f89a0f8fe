"""Start-up: the CLI loads trio, h11, hypothesis and http.client only in the commands that
need them.

`sseproxy --help` and `sseproxy scenarios list` should answer at once (issue 10: trio alone
took a third of `--help`'s time, http.client a fifth of what was left). Not a timing test:
a fresh interpreter runs the command and reports which of those libraries it imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import sseproxy

HEAVY = ("trio", "h11", "hypothesis", "http.client")
_PROBE = """
import sys
try:
    {code}
except SystemExit as exit:
    assert not exit.code, exit.code
print(*sorted(m for m in {heavy!r} if m in sys.modules), file=sys.stderr)
"""


def imported(code: str) -> set[str]:
    """Which of HEAVY a fresh interpreter has imported after running `code`."""
    here = str(Path(sseproxy.__file__).parents[1])  # this copy of sseproxy, not another
    path = os.pathsep.join(filter(None, (here, os.environ.get("PYTHONPATH"))))
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(code=code, heavy=HEAVY)],
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stderr.split())


@pytest.mark.parametrize(
    "code",
    [
        "import sseproxy",
        "import sseproxy.cli",
        "from sseproxy.cli import main; main(['--help'])",
        "from sseproxy.cli import main; main(['scenarios', 'list'])",
        "from sseproxy.cli import main; main(['scenarios', 'describe', 'latency'])",
        "from sseproxy.cli import main; main(['ctl', '--help'])",
        "from sseproxy.cli import main; main(['report', '--help'])",
    ],
)
def test_quick_commands_import_none_of_the_heavy_libraries(code: str) -> None:
    assert imported(code) == set()


def test_the_probe_sees_what_the_proxy_imports() -> None:
    assert imported("import sseproxy.proxy") >= {"trio"}
    assert imported("from sseproxy.cli import main; main(['serve', '--help'])") >= {"trio", "h11"}


def test_public_names_load_on_first_use() -> None:
    from sseproxy.proxy import Proxy

    assert sseproxy.Proxy is Proxy
    assert set(sseproxy.__all__) <= set(dir(sseproxy))
    for name in sseproxy.__all__:
        assert getattr(sseproxy, name).__name__ == name
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = sseproxy.Nothing  # type: ignore[attr-defined]


def test_run_help_shows_the_control_apis_default_address() -> None:
    """`run --help` takes its example from ctl's default URL (control imports trio)."""
    from click.testing import CliRunner

    from sseproxy.cli import main
    from sseproxy.control import DEFAULT_PORT, control_url
    from sseproxy.ctl import DEFAULT_URL

    assert control_url("127.0.0.1", DEFAULT_PORT) == DEFAULT_URL
    shown = " ".join(CliRunner().invoke(main, ["run", "--help"]).output.split())
    assert f"e.g. 127.0.0.1:{DEFAULT_PORT}: change faults live" in shown
