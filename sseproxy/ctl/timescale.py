"""`sseproxy ctl time-scale [F]`: show or change the running proxy's time scale."""

from __future__ import annotations

import click

from sseproxy.ctl.client import ControlClient, Unreachable
from sseproxy.ctl.output import _dump, _json_option

__all__ = ["time_scale"]


@click.command("time-scale")
@click.argument("factor", required=False, metavar="[F]")
@_json_option
@click.pass_obj
def time_scale(client: ControlClient, factor: str | None, as_json: bool) -> None:
    """Show the time scale, or set it to F for new connections (0.1: every duration in
    the scenario ten times shorter; 1: real time).

    \b
    Examples:
      sseproxy ctl time-scale
      sseproxy ctl time-scale 0.1
    """
    if factor is None:
        answer = client.json("GET", "/time-scale")
    else:
        try:
            value = float(factor)
        except ValueError:
            raise Unreachable(f"time scale {factor!r} is not a number; e.g. 0.1") from None
        answer = client.json("PUT", "/time-scale", data={"factor": value})
    if as_json:
        _dump(answer)
    else:
        click.echo(f"time scale {answer['factor']:g}")
