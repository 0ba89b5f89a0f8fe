"""Pass/fail checks on a probe's result: `--max-drops`, `--max-gap`, `--no-loss`,
`--min-duration`. Each failed check is one line that says what happened and why, so a CI
log shows the cause without the rest of the report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sseproxy.words import plural

__all__ = ["Thresholds", "check", "drops_in_words"]


@dataclass(frozen=True)
class Thresholds:
    max_drops: int | None = None
    max_gap: float | None = None
    """Seconds a client may go without an event, across reconnects."""
    no_loss: bool = False
    min_duration: float | None = None
    """Seconds every stream that ended must have lived."""

    @property
    def any(self) -> bool:
        return (
            self.max_drops is not None
            or self.max_gap is not None
            or self.no_loss
            or self.min_duration is not None
        )


@dataclass(frozen=True)
class Verdict:
    option: str
    ok: bool
    line: str

    def json(self) -> dict[str, Any]:
        return {"option": self.option, "ok": self.ok, "line": self.line}


def _s(seconds: float) -> str:
    return f"{seconds:.1f} s"


def drops_in_words(result: dict[str, Any]) -> str:
    """'4 incomplete chunked body (each ~2.0 s after the last byte: an idle timeout); 1 RST
    ...': how the drops looked and, when their silences agree, their cause."""
    parts = []
    for group in result["drops"]:
        silence = group["silence_before"]
        when = ""
        if silence is not None:
            if group["pattern"]:
                when = f" (each ~{_s(silence['p50'])} after the last byte: an idle timeout)"
            else:
                when = f" ({_s(silence['p50'])} after the last byte, p50)"
        parts.append(f"{group['count']} {group['seen_as']}{when}")
    return "; ".join(parts)


def check(result: dict[str, Any], thresholds: Thresholds) -> list[Verdict]:
    """One `Verdict` per threshold given, in option order."""
    totals = result["totals"]
    verdicts = []
    if thresholds.max_drops is not None:
        limit, drops = thresholds.max_drops, totals["drops"]
        line = f"--max-drops {limit}: {plural(drops, 'drop')}"
        if drops:
            line += f": {drops_in_words(result)}"
        verdicts.append(Verdict("max-drops", drops <= limit, line))
    if thresholds.max_gap is not None:
        gap_limit = thresholds.max_gap
        worst = max(result["per_client"], key=lambda c: c["longest_event_gap"] or 0, default=None)
        gap = (worst or {}).get("longest_event_gap") or 0.0
        line = f"--max-gap {gap_limit:g}s: the longest time without an event was {_s(gap)}"
        if worst is not None and gap > gap_limit:
            line += f" (client {worst['client']}, across reconnects)"
        verdicts.append(Verdict("max-gap", gap <= gap_limit, line))
    if thresholds.no_loss:
        ids = totals["ids"]
        if not ids["numeric"]:
            line = "--no-loss: the ids are not integers, so losses cannot be counted"
            verdicts.append(Verdict("no-loss", False, line))
        else:
            lost = ids["lost"] + ids["lost_in_stream"]
            line = (
                f"--no-loss: {plural(lost, 'event')} lost ({ids['lost']} across reconnects, "
                f"{ids['lost_in_stream']} inside streams); {ids['duplicated']} repeated"
            )
            verdicts.append(Verdict("no-loss", lost == 0, line))
    if thresholds.min_duration is not None:
        least = thresholds.min_duration
        ended = [
            c
            for c in result["connections"]
            if c["established"] and c["ended"] != "run-end" and c["duration"] is not None
        ]
        short = [c for c in ended if c["duration"] < least]
        line = f"--min-duration {least:g}s: {len(short)} of {plural(len(ended), 'stream')}"
        line += " ended sooner"
        if short:
            shortest = min(short, key=lambda c: c["duration"])
            line += f" (shortest {_s(shortest['duration'])}: {shortest['seen_as']})"
        verdicts.append(Verdict("min-duration", not short, line))
    return verdicts
