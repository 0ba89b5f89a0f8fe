"""What a person reads: the live status line while a probe runs, and the report after.

The status line uses click, not rich: click is already a dependency (the package uses
only the standard library, trio, h11 and click), and one line rewritten in place needs
nothing more than a carriage return and an erase-to-end-of-line, which `click.echo`
writes to stderr (stripping the escape when it is not a terminal, which never happens
here: the line is only shown on a terminal, so a log or a pipe gets no progress noise).
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import click

from sseproxy.probe.runner import Probe
from sseproxy.probe.verdicts import Verdict
from sseproxy.words import plural

__all__ = ["CLIENT_ROWS", "Progress", "render_text"]

CLIENT_ROWS = 20
"""Clients shown in the text's table (--json has every one)."""


class Progress:
    """One status line on stderr, rewritten in place; silent when stderr is no terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.shown = False

    def __call__(self, probe: Probe) -> None:
        if self.enabled:
            click.echo(f"\r{status_line(probe)}\x1b[K", file=self.stream, nl=False)
            self.shown = True

    def clear(self) -> None:
        if self.shown:
            click.echo("\r\x1b[K", file=self.stream, nl=False)
            self.shown = False


def status_line(probe: Probe) -> str:
    records = probe.records
    states = [r.state for r in records]
    attempts = [a for r in records for a in r.attempts]
    drops = sum(a.kind not in (None, "run-end") for a in attempts)
    events = sum(a.events for a in attempts)
    return (
        f"probe {probe.now():.0f}/{probe.settings.duration:g}s  "
        f"open {states.count('open')}/{len(records)}  "
        f"reconnecting {states.count('reconnecting') + states.count('connecting')}  "
        f"connects {sum(a.established for a in attempts)}  drops {drops}  events {events}"
    )


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _c(value: float | None) -> str:
    """Compact, for the table's columns."""
    return "-" if value is None else f"{value:.1f}s"


def _stats(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "-"
    return f"p50 {_s(stats['p50'])}  p90 {_s(stats['p90'])}  max {_s(stats['max'])}"


def render_text(result: dict[str, Any], verdicts: list[Verdict]) -> str:
    totals = result["totals"]
    ids = totals["ids"]
    lines = [
        f"probe {result['url']}: {plural(result['clients'], 'client')} for "
        f"{result['elapsed']:.1f} s" + (" (stopped early)" if result["stopped_early"] else ""),
        f"connects {totals['connects']} of {plural(totals['attempts'], 'attempt')}, "
        f"drops {totals['drops']}, events {totals['events']}, streams open at the end "
        f"{totals['open_at_end']}",
    ]
    if ids["numeric"]:
        lines.append(
            f"ids: {ids['lost']} lost and {ids['duplicated']} repeated across reconnects, "
            f"{ids['lost_in_stream']} skipped and {ids['duplicated_in_stream']} repeated "
            "inside streams (integer ids, assumed to count up by one)"
        )
    else:
        lines.append(
            f"ids: {ids['duplicated']} repeated across reconnects, "
            f"{ids['duplicated_in_stream']} inside streams (ids are not integers: losses "
            "cannot be told)"
        )
    if result["drops"]:
        lines += ["", "drops, as the clients saw them:"]
    for group in result["drops"]:
        silence, lived = group["silence_before"], group["durations"]
        what = f"  {group['count']:>4}  {group['seen_as']}"
        if silence is not None:
            what += f", {_s(silence['p50'])} after the last byte (p50; max {_s(silence['max'])})"
        if lived is not None:
            what += f", streams lived p50 {_s(lived['p50'])}"
        lines.append(what)
        if group["pattern"]:
            lines.append(f"        {group['pattern']}")
        if group["meaning"]:
            lines.append(f"        {group['meaning']}")
        if group["example"]:
            lines.append(f"        e.g. {group['example']}")
    lines += [
        "",
        f"time to first event   {_stats(totals['time_to_first_event'])}",
        f"reconnect delay       {_stats(totals['reconnect_delays'])}",
        f"stream durations      {_stats(totals['durations'])} (streams that ended)",
        f"longest gap           {_s(totals['longest_byte_gap'])} between bytes (in a stream), "
        f"{_s(totals['longest_event_gap'])} between events (across reconnects)",
        "",
        "client  connects  drops  events  lost  dup  1st event  gap bytes  gap events  "
        "lived p50  how it ended",
    ]
    shown = result["per_client"][:CLIENT_ROWS]
    for client in shown:
        lived = client["durations"]
        ended = client["stopped_for_good"] or ", ".join(
            f"{n} {label}" for label, n in client["drops_by"].items()
        )
        lines.append(
            f"{client['client']:>6}  {client['connects']:>8}  {client['drops']:>5}  "
            f"{client['events']:>6}  {client['lost']:>4}  {client['duplicated']:>3}  "
            f"{_c(client['time_to_first_event']):>9}  {_c(client['longest_byte_gap']):>9}  "
            f"{_c(client['longest_event_gap']):>10}  "
            f"{_c(lived['p50'] if lived else None):>9}  {ended or '-'}"
        )
    if len(result["per_client"]) > len(shown):
        more = len(result["per_client"]) - len(shown)
        lines.append(f"({plural(more, 'more client')}: --json has them all)")
    if verdicts:
        lines.append("")
        lines += [f"{'ok  ' if v.ok else 'FAIL'} {v.line}" for v in verdicts]
    return "\n".join(lines) + "\n"
