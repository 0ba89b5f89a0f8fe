"""`sseproxy ctl`: drive a running proxy's control API (`sseproxy run --control ...`).

The client is the standard library's `http.client`, so `ctl` needs nothing beyond
sseproxy's own dependencies. Output is for people unless `--json` is given. Exit status:
0 done, 1 the proxy refused the change (unknown fault, name taken, invalid value...),
2 a usage or connection problem (no proxy there, wrong token). Errors are one line.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping

import click

from sseproxy.ctl.client import DEFAULT_URL, ControlClient
from sseproxy.ctl.output import JSON_KEY
from sseproxy.ctl.values import parse_assignment
from sseproxy.ctl.values import parse_value as parse_value

__all__ = ["DEFAULT_URL", "ControlClient", "ctl", "parse_assignment"]


class _Subcommands(MutableMapping[str, click.Command]):
    """ctl's commands, imported when first looked up or listed: their modules load the
    scenario registry, which `sseproxy --help` and `sseproxy run` have no use for."""

    def __init__(self) -> None:
        self._commands: dict[str, click.Command] | None = None

    def _loaded(self) -> dict[str, click.Command]:
        if self._commands is None:
            from sseproxy.ctl.connections import connections, kill
            from sseproxy.ctl.faults import faults
            from sseproxy.ctl.scenario import scenario
            from sseproxy.ctl.timescale import time_scale
            from sseproxy.ctl.watch import journal, metrics, status

            commands = (status, faults, connections, kill, scenario, metrics, journal, time_scale)
            self._commands = {command.name or "": command for command in commands}
        return self._commands

    def __getitem__(self, name: str) -> click.Command:
        return self._loaded()[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded()[name] = command

    def __delitem__(self, name: str) -> None:
        del self._loaded()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())


@click.group(commands=_Subcommands(), context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--control",
    "url",
    envvar="SSEPROXY_CONTROL",
    default=DEFAULT_URL,
    show_default=True,
    metavar="URL",
    help="The control API (`sseproxy run --control HOST:PORT`); also $SSEPROXY_CONTROL.",
)
@click.option(
    "--token",
    envvar="SSEPROXY_CONTROL_TOKEN",
    metavar="TOKEN",
    help="The proxy's --control-token; also $SSEPROXY_CONTROL_TOKEN.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON for machines (the same as the command's own --json).",
)
@click.pass_context
def ctl(ctx: click.Context, url: str, token: str | None, as_json: bool) -> None:
    """Change a running proxy's faults, list and kill its connections.

    The proxy must run with a control API: `sseproxy run --control 127.0.0.1:8474`.
    Exit status: 0 done, 1 refused by the proxy, 2 usage or connection problem.

    \b
    Examples:
      sseproxy ctl status
      sseproxy ctl --json status        (or: sseproxy ctl status --json)
      sseproxy ctl faults add --type latency --set delay=200ms
      sseproxy ctl kill --all --reset
      sseproxy ctl --control http://10.0.0.5:8474 --token "$TOKEN" connections
    """
    ctx.obj = ControlClient(url, token)
    ctx.meta[JSON_KEY] = as_json
